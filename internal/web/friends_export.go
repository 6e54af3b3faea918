package web

import (
	"context"
	"encoding/csv"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
)

// The CSV export of the (filtered) friend list. It needs friends:export and a recent
// proof of identity (staff.ReauthWindow): a session left open on a shop's shared PC
// must not be enough to carry the customer list away. The download is a POST carrying
// the form token, so no link on another site can start one.

// exportData is what the export page shows.
type exportData struct {
	Filter      friendQuery
	Count       int
	Masked      bool // the member may not read personal data: the file has masked values
	Fresh       bool // recently authenticated: the download button is shown
	NeedsCode   bool // the member signs in with a second factor
	HasPassword bool
	Problem     string
	Tags        map[int64]string
	// Action and ReauthAction are where the forms post, the filter in their query.
	Action, ReauthAction string
}

func (c *Console) exportPage(w http.ResponseWriter, r *http.Request, q *request) {
	c.showExport(w, r, q, http.StatusOK, "")
}

// showExport renders the export page: what will be exported, and either the download
// button or the password (and code) form that comes first.
func (c *Console) showExport(w http.ResponseWriter, r *http.Request, q *request, status int, problem string) {
	ctx := r.Context()
	fq, tags, _, err := c.exportFilter(r, q)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	cur, err := c.Staff.Current(ctx, q.session)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	d := exportData{Filter: fq, Masked: !q.P.Can(access.FriendsReadPII), Fresh: c.Staff.RecentlyAuthenticated(cur, staff.ReauthWindow),
		NeedsCode: cur.TOTPEnabled, HasPassword: cur.HasPassword, Problem: problem, Tags: map[int64]string{},
		Action: c.exportURL(q, fq), ReauthAction: "/console/channels/" + q.Channel.ID + "/friends/export/reauth"}
	if fq.Query != "" {
		d.ReauthAction += "?" + fq.Query
	}
	for _, t := range tags {
		d.Tags[t.ID] = t.Name
	}
	if fq.Problem == "" {
		if d.Count, _, err = c.Friends.Count(ctx, q.Channel.ID, fq.Search); err != nil && !errors.Is(err, friend.ErrInvalid) {
			c.fail(w, r, q, err)
			return
		}
	}
	c.render(w, r, status, "export", "export.title", q, d)
}

// exportFilter reads the filter of the export from the query string, as the list does.
func (c *Console) exportFilter(r *http.Request, q *request) (friendQuery, []friend.Tag, []friend.Field, error) {
	tags, err := c.Friends.Tags(r.Context(), q.Channel.ID)
	if err != nil {
		return friendQuery{}, nil, nil, err
	}
	defs, err := c.Friends.Fields(r.Context(), q.Channel.ID)
	if err != nil {
		return friendQuery{}, nil, nil, err
	}
	return c.parseFriendQuery(q, r.URL.Query(), tags, defs), tags, defs, nil
}

func (c *Console) exportURL(q *request, fq friendQuery) string {
	u := "/console/channels/" + q.Channel.ID + "/friends/export"
	if fq.Query != "" {
		u += "?" + fq.Query
	}
	return u
}

// exportReauth checks the password (and code) and returns to the export page.
func (c *Console) exportReauth(w http.ResponseWriter, r *http.Request, q *request) {
	fq, _, _, err := c.exportFilter(r, q)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	err = c.Staff.Reauthenticate(r.Context(), q.session, r.PostFormValue("password"), strings.TrimSpace(r.PostFormValue("code")),
		staff.Client{Addr: clientAddr(r), UserAgent: r.UserAgent()})
	switch {
	case errors.Is(err, staff.ErrBadCredentials):
		c.showExport(w, r, q, http.StatusUnauthorized, "export.err.password")
	case errors.Is(err, staff.ErrSecondFactorRequired), errors.Is(err, staff.ErrBadCode):
		c.showExport(w, r, q, http.StatusUnauthorized, "export.err.code")
	case errors.Is(err, staff.ErrInvalidToken):
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	case err != nil:
		c.fail(w, r, q, err)
	default:
		http.Redirect(w, r, c.exportURL(q, fq), http.StatusSeeOther)
	}
}

// exportCSV streams the filtered friends as CSV: UTF-8 with a byte order mark (so that
// Excel in Japan opens it as UTF-8), every cell through audit.SafeCell, personal values
// masked unless the member may read them.
//
// The audit record is written, with the row count, before the first row leaves: the
// rows are then fixed to the friends counted (MaxID), and a file that was sent is never
// missing from the log. Reading every row inside the recording transaction would hold
// SQLite's one writer for the whole download.
func (c *Console) exportCSV(w http.ResponseWriter, r *http.Request, q *request) {
	ctx := r.Context()
	fq, _, defs, err := c.exportFilter(r, q)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	cur, err := c.Staff.Current(ctx, q.session)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	if !c.Staff.RecentlyAuthenticated(cur, staff.ReauthWindow) {
		http.Redirect(w, r, c.exportURL(q, fq), http.StatusSeeOther)
		return
	}
	if fq.Problem != "" {
		c.showExport(w, r, q, http.StatusUnprocessableEntity, "")
		return
	}
	count, maxID, err := c.Friends.Count(ctx, q.Channel.ID, fq.Search)
	if errors.Is(err, friend.ErrInvalid) {
		c.showExport(w, r, q, http.StatusUnprocessableEntity, "friends.err.fieldvalue")
		return
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	pii := q.P.Can(access.FriendsReadPII)
	header := []string{"id", "line_user_id", "display_name", "status", "followed_at", "blocked_at", "last_message_at", "tags"}
	var unmasked []string
	if pii {
		unmasked = []string{"line_user_id", "display_name"}
	}
	for _, d := range defs {
		header = append(header, d.Key)
		if pii && d.Sensitivity.Personal() {
			unmasked = append(unmasked, d.Key)
		}
	}
	search := "none"
	switch {
	case fq.Search.Exact != "":
		search = "exact"
	case fq.Search.Partial != "":
		search = "partial"
	}
	detail := map[string]string{"rows": strconv.Itoa(count), "masked": auditYesNo(!pii), "status": fq.Status,
		"tags": joinFriendIDs(fq.Search.TagIDs), "field": fq.FieldKey, "search": search}
	err = c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		return c.record(ctx, tx, r, q, audit.Record{Action: audit.FriendsExport, Fields: unmasked, Detail: detail})
	})
	if err != nil {
		c.fail(w, r, q, err)
		return
	}

	name := "friends-" + q.Channel.ID + "-" + c.Clock.Now().In(tokyo).Format("20060102-1504") + ".csv"
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write([]byte("\uFEFF")); err != nil {
		return
	}
	out := csv.NewWriter(w)
	out.UseCRLF = true // what Excel writes and expects
	writeRow := func(cells []string) {
		for i := range cells {
			cells[i] = audit.SafeCell(cells[i])
		}
		_ = out.Write(cells)
	}
	writeRow(header)
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.In(tokyo).Format("2006-01-02 15:04:05")
	}
	filter := fq.Search
	filter.MaxID, filter.Limit = maxID, 500
	for maxID > 0 {
		page, err := c.Friends.Search(ctx, q.Channel.ID, filter)
		if err == nil && len(page) > 0 {
			err = c.exportRows(ctx, q, page, defs, writeRow, stamp)
		}
		if err != nil {
			// The status line is gone; the log says why the file is short.
			c.Logger.Error("console: export failed", "channel", q.Channel.ID, "err", err)
			return
		}
		out.Flush()
		if out.Error() != nil || len(page) < filter.Limit {
			break
		}
		filter.After = page[len(page)-1].ID
	}
	out.Flush()
}

// exportRows writes one page of friends.
func (c *Console) exportRows(ctx context.Context, q *request, page []friend.Friend, defs []friend.Field,
	writeRow func([]string), stamp func(time.Time) string) error {
	ids := make([]int64, len(page))
	for i, f := range page {
		ids[i] = f.ID
	}
	values, tags, err := c.Friends.ValuesOf(ctx, c.DB, ids)
	if err != nil {
		return err
	}
	for _, f := range page {
		row := []string{strconv.FormatInt(f.ID, 10), q.P.Show(f.LineUserID, true), q.P.Show(f.DisplayName, true),
			string(f.Status), stamp(f.FollowedAt), stamp(f.BlockedAt), stamp(f.LastMessageAt), strings.Join(tags[f.ID], " / ")}
		for _, d := range defs {
			row = append(row, q.P.Show(values[f.ID][d.Key], d.Sensitivity.Personal()))
		}
		writeRow(row)
	}
	return nil
}
