package web

import (
	"net/http"
	"strings"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/store"
)

// The settings of a channel: its name, time zone and quiet hours. The channel secret
// and access token are sealed in the database; nothing here shows or prints them.

func (c *Console) settingsRoutes(mux *http.ServeMux) {
	c.handle(mux, "GET", "/console/channels/{channelID}/settings", access.SettingsRead, c.settingsPage)
	c.handle(mux, "POST", "/console/channels/{channelID}/settings", access.SettingsWrite, c.settingsSave)
}

type settingsPage struct {
	Name, TimeZone     string
	QuietFrom, QuietTo string
	WebhookURL         string
	Created            string
	Zones              []string
	Problems           []formProblem
	Saved              bool
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
		QuietFrom: strings.TrimSpace(r.PostFormValue("quiet_from")), QuietTo: strings.TrimSpace(r.PostFormValue("quiet_to"))}
	st := channel.Settings{Name: page.Name, TimeZone: page.TimeZone}
	switch {
	case page.QuietFrom == "" && page.QuietTo == "":
	case page.QuietFrom == "" || page.QuietTo == "":
		page.Problems = formProblemf(q.Lang, "quiet_hours", "set.quiet.both")
	default:
		st.QuietHours = page.QuietFrom + "-" + page.QuietTo
	}
	if page.Problems == nil {
		if ps := channel.CheckSettings(&st); ps != nil {
			page.Problems, _ = formProblems(q.Lang, ps)
		}
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
			Fields: []string{"name", "time_zone", "quiet_hours"},
			Detail: map[string]string{"time_zone": st.TimeZone, "quiet_hours": st.QuietHours}})
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
