package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/store"
)

// The settings of a channel: its name, time zone, quiet hours and how long it keeps what
// it sent and its conversations. The channel secret and access token are sealed in the
// database; nothing here shows or prints them.

func (c *Console) settingsRoutes(mux *http.ServeMux) {
	c.handle(mux, "GET", "/console/channels/{channelID}/settings", access.SettingsRead, c.settingsPage)
	c.handle(mux, "POST", "/console/channels/{channelID}/settings", access.SettingsWrite, c.settingsSave)
}

type settingsPage struct {
	Name, TimeZone     string
	QuietFrom, QuietTo string
	// Retention in days as typed ("0": keep everything).
	DeliveryDays, ConversationDays string
	WebhookURL                     string
	Created                        string
	Zones                          []string
	Problems                       []formProblem
	Saved                          bool
}

// commonZones are offered as suggestions; any IANA name is accepted.
var commonZones = []string{"Asia/Tokyo", "Asia/Seoul", "Asia/Taipei", "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Bangkok",
	"Asia/Singapore", "Asia/Jakarta", "Australia/Sydney", "Pacific/Honolulu", "America/Los_Angeles", "America/New_York",
	"Europe/London", "Europe/Paris", "UTC"}

func webhookURL(r *http.Request, ch *channel.Channel) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + ch.WebhookPath()
}

func (c *Console) settingsPage(w http.ResponseWriter, r *http.Request, q *request) {
	st, err := c.Channels.Settings(r.Context(), q.Channel.ID)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	from, to, _ := strings.Cut(st.QuietHours, "-")
	c.renderSettings(w, r, q, http.StatusOK, settingsPage{Name: st.Name, TimeZone: st.TimeZone, QuietFrom: from, QuietTo: to,
		DeliveryDays: strconv.Itoa(st.DeliveryRetentionDays), ConversationDays: strconv.Itoa(st.ConversationRetentionDays),
		Saved: r.URL.Query().Get("saved") == "1"})
}

func (c *Console) renderSettings(w http.ResponseWriter, r *http.Request, q *request, status int, page settingsPage) {
	page.WebhookURL = webhookURL(r, q.Channel)
	page.Created = zoneTime(q.Lang, channelZone(q.Channel.TimeZone), q.Channel.CreatedAt)
	page.Zones = commonZones
	c.render(w, r, status, "settings", "set.title", q, page)
}

func (c *Console) settingsSave(w http.ResponseWriter, r *http.Request, q *request) {
	ctx := r.Context()
	page := settingsPage{Name: r.PostFormValue("name"), TimeZone: r.PostFormValue("time_zone"),
		QuietFrom: strings.TrimSpace(r.PostFormValue("quiet_from")), QuietTo: strings.TrimSpace(r.PostFormValue("quiet_to")),
		DeliveryDays:     strings.TrimSpace(r.PostFormValue("delivery_retention_days")),
		ConversationDays: strings.TrimSpace(r.PostFormValue("conversation_retention_days"))}
	st := channel.Settings{Name: page.Name, TimeZone: page.TimeZone}
	for _, d := range []struct {
		path, text string
		days       *int
	}{{"delivery_retention_days", page.DeliveryDays, &st.DeliveryRetentionDays},
		{"conversation_retention_days", page.ConversationDays, &st.ConversationRetentionDays}} {
		n, err := strconv.Atoi(d.text)
		if err != nil {
			page.Problems = append(page.Problems, formProblemf(q.Lang, d.path, "set.retention.number")...)
			continue
		}
		*d.days = n
	}
	switch {
	case page.QuietFrom == "" && page.QuietTo == "":
	case page.QuietFrom == "" || page.QuietTo == "":
		page.Problems = append(page.Problems, formProblemf(q.Lang, "quiet_hours", "set.quiet.both")...)
	default:
		st.QuietHours = page.QuietFrom + "-" + page.QuietTo
	}
	if ps := channel.CheckSettings(&st); ps != nil {
		more, _ := formProblems(q.Lang, ps)
		page.Problems = append(page.Problems, more...)
	}
	if page.Problems != nil {
		c.renderSettings(w, r, q, http.StatusUnprocessableEntity, page)
		return
	}
	err := c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		if err := c.Channels.SaveSettings(ctx, tx, q.Channel.ID, st); err != nil {
			return err
		}
		// What changed is said by field name; the values are the shop's, not personal.
		return c.record(ctx, tx, r, q, audit.Record{Action: audit.SettingsChange, Subject: "channel:" + q.Channel.ID,
			Fields: []string{"name", "time_zone", "quiet_hours", "delivery_retention_days", "conversation_retention_days"},
			Detail: map[string]string{"time_zone": st.TimeZone, "quiet_hours": st.QuietHours,
				"delivery_retention_days":     strconv.Itoa(st.DeliveryRetentionDays),
				"conversation_retention_days": strconv.Itoa(st.ConversationRetentionDays)}})
	})
	if ps, ok := formProblems(q.Lang, err); ok {
		page.Problems = ps
		c.renderSettings(w, r, q, http.StatusUnprocessableEntity, page)
		return
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, inChannel(q, "/settings?saved=1"), http.StatusSeeOther)
}
