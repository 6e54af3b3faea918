package web

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
)

// The audit log: who did what, to what, when and from where. Readers filter it; those
// allowed export it as CSV, after confirming who they are, and the export is itself
// recorded before the first byte leaves.

func (c *Console) auditRoutes(mux *http.ServeMux) {
	c.handle(mux, "GET", "/console/audit", access.AuditRead, c.auditPage)
	c.handle(mux, "POST", "/console/audit/export", access.AuditExport, c.auditExport)
	c.loginsRoutes(mux)
}

// auditPageSize is how many records a page shows.
const auditPageSize = 50

// auditActions are the action groups the filter offers (an action matches its group).
var auditActions = []string{"signin", "reauth", "signout", "password", "twofactor", "staff", "role", "permission",
	"settings", "friend", "friends", "channel", "scenario", "token", "retention", "audit"}

// auditQuery is the filter as the form gives it.
type auditQuery struct {
	Actor, Action, Channel, Subject, From, To string
}

func readAuditQuery(v url.Values) auditQuery {
	return auditQuery{Actor: v.Get("actor"), Action: v.Get("action"), Channel: v.Get("channel"),
		Subject: strings.TrimSpace(v.Get("subject")), From: v.Get("from"), To: v.Get("to")}
}

// filter turns the form into an audit filter; dates are days in Japan, both inclusive.
func (a auditQuery) filter() audit.Filter {
	var f audit.Filter
	if _, err := strconv.ParseInt(a.Actor, 10, 64); err == nil {
		f.ActorKind, f.ActorID = audit.ActorStaff, a.Actor
	}
	if slices.Contains(auditActions, a.Action) {
		f.Action = audit.Action(a.Action)
	}
	f.ChannelID, f.Subject = a.Channel, a.Subject
	if t, err := time.ParseInLocation("2006-01-02", a.From, tokyo); err == nil {
		f.Since = t
	}
	if t, err := time.ParseInLocation("2006-01-02", a.To, tokyo); err == nil {
		f.Until = t.AddDate(0, 0, 1)
	}
	return f
}

func (a auditQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"actor": a.Actor, "action": a.Action, "channel": a.Channel,
		"subject": a.Subject, "from": a.From, "to": a.To} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

type auditRow struct {
	audit.Record
	Who     string
	Action  string
	Channel string
	Subject string
	Detail  string
}

type auditView struct {
	Query    auditQuery
	Actors   []choice
	Actions  []choice
	Channels []choice
	Rows     []auditRow
	Next     string // the next page's query, "" on the last
}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, q *request) {
	ctx := r.Context()
	aq := readAuditQuery(r.URL.Query())
	f := aq.filter()
	scopeAudit(&f, q.P)
	f.Limit = auditPageSize + 1
	if b, err := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64); err == nil && b > 0 {
		f.Before = b
	}
	recs, err := c.Audit.Query(ctx, f)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	members, err := c.Staff.List(ctx)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	chans, err := c.Channels.List(ctx)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	roles, err := c.Access.Roles(ctx)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	v := auditView{Query: aq}
	subjects := map[string]string{}
	chanNames := map[string]string{}
	for _, ch := range chans {
		chanNames[ch.ID] = ch.Name
		if !q.P.OnChannel(ch.ID) {
			continue
		}
		v.Channels = append(v.Channels, choice{Value: ch.ID, Label: ch.Name, On: ch.ID == aq.Channel})
	}
	for _, m := range members {
		id := strconv.FormatInt(m.ID, 10)
		if shares, err := c.sharesAChannel(ctx, q.P, m); err != nil {
			c.fail(w, r, q, err)
			return
		} else if !shares {
			continue // works on other accounts only: not the reader's to know of
		}
		v.Actors = append(v.Actors, choice{Value: id, Label: m.Name + " (" + m.Login + ")", On: id == aq.Actor})
		subjects["staff:"+id] = m.Name + " (staff:" + id + ")"
	}
	for _, a := range auditActions {
		v.Actions = append(v.Actions, choice{Value: a, Label: label(q.Lang, "actgroup.", a), On: a == aq.Action})
	}
	if len(recs) > auditPageSize {
		recs = recs[:auditPageSize]
		next := aq.values()
		next.Set("before", strconv.FormatInt(recs[len(recs)-1].Seq, 10))
		v.Next = next.Encode()
	}
	for _, rec := range recs {
		v.Rows = append(v.Rows, auditRow{Record: rec, Who: actorText(q.Lang, rec.Actor),
			Action: label(q.Lang, "act.", string(rec.Action)), Channel: cmpOr(chanNames[rec.ChannelID], rec.ChannelID),
			Subject: subjectText(q.Lang, rec.Subject, subjects, roles), Detail: detailText(q.Lang, rec.Detail, roles)})
	}
	c.render(w, r, http.StatusOK, "audit", "auditlog.title", q, v)
}

// sharesAChannel reports whether a member works on one of the accounts of a reader bound
// to some (owners work on all).
func (c *Console) sharesAChannel(ctx context.Context, p access.Principal, m staff.Member) (bool, error) {
	if p.AllChannels() || string(m.Role) == access.Owner {
		return true, nil
	}
	theirs, err := c.Access.Channels(ctx, c.DB, m.ID)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(theirs, p.OnChannel), nil
}

// scopeAudit narrows what a reader bound to some channels sees to their channels' records
// (audit:read may be part of a custom role given to one account's manager).
func scopeAudit(f *audit.Filter, p access.Principal) {
	if !p.AllChannels() {
		f.Scoped, f.Within = true, p.Channels()
	}
}

// actorText names an actor: a member by login, a token by name, linestep by its part;
// a failed sign-in with an unknown login has none.
func actorText(lang string, a audit.Actor) string {
	switch {
	case a.Kind == audit.ActorSystem:
		return translate(lang, "auditlog.system") + " (" + a.Name + ")"
	case a.Kind == audit.ActorToken:
		return translate(lang, "auditlog.token") + " " + a.Name
	case a.Name == "":
		return translate(lang, "auditlog.unknown")
	}
	return a.Name
}

// detailText shows a record's details as "what: value" in the page's language, where
// the key and value are known; as stored otherwise.
func detailText(lang string, d map[string]string, roles []access.Role) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := d[k]
		if v == "" {
			continue
		}
		switch k {
		case "step", "outcome", "factor":
			v = label(lang, k+".", v)
		case "from", "to", "role":
			v = roleLabel(lang, roles, v)
		case "require_totp", "new", "deleted", "invited":
			v = translate(lang, map[bool]string{true: "yes", false: "no"}[v == "true"])
		}
		name := label(lang, "detail.", k)
		if f, ok := strings.CutPrefix(k, "filter_"); ok {
			name = translate(lang, "detail.filter") + "(" + label(lang, "detail.", f) + ")"
		}
		parts = append(parts, name+": "+v)
	}
	return strings.Join(parts, " / ")
}

// subjectText names a record's subject: a member by name, a role by its label.
func subjectText(lang, subject string, names map[string]string, roles []access.Role) string {
	if n, ok := names[subject]; ok {
		return n
	}
	if r, ok := strings.CutPrefix(subject, "role:"); ok {
		return roleLabel(lang, roles, r) + " (" + subject + ")"
	}
	return subject
}

// auditExport streams the filtered log as CSV (cells a spreadsheet would run as a formula
// are neutralised by audit.SafeCell). The export is recorded first, in its own
// transaction: an export that could not be recorded does not happen.
func (c *Console) auditExport(w http.ResponseWriter, r *http.Request, q *request) {
	aq := readAuditQuery(r.PostForm)
	if !c.recent(w, r, q, "/console/audit?"+aq.values().Encode()) {
		return
	}
	ctx := r.Context()
	f := aq.filter()
	scopeAudit(&f, q.P)
	err := c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		detail := map[string]string{}
		for k, v := range aq.values() {
			detail["filter_"+k] = v[0]
		}
		return c.record(ctx, tx, r, q, audit.Record{Action: audit.AuditExport, Detail: detail})
	})
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	name := "linestep-audit-" + c.Clock.Now().In(tokyo).Format("20060102-1504") + ".csv"
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	// A byte order mark: Excel, which many shops open CSV files with, otherwise reads
	// UTF-8 as Shift_JIS and garbles every Japanese name.
	w.Write([]byte("\ufeff"))
	if _, err := c.Audit.ExportCSV(ctx, w, f); err != nil {
		// The header is sent: all that is left is to log and cut the download short.
		c.Logger.Error("console: audit export", "err", err)
	}
}
