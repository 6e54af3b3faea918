package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/store"
)

// The friend pages. Personal values — display names, pictures, the values of fields
// whose sensitivity is not "attribute" — reach a page only through q.P.Show, so a member
// without friends:read_pii sees them masked everywhere: the list, search results, the
// detail page, the CSV export. Whenever they are shown unmasked, an audit record says
// who saw which friend's which fields, from where; a masked page showed nothing
// personal and is not recorded. Revealing one value is its own audited act.
func (c *Console) friendRoutes(mux *http.ServeMux) {
	base := "/console/channels/{channelID}/friends"
	c.handle(mux, "GET", base, access.FriendsRead, c.friendList)
	c.handle(mux, "GET", base+"/export", access.FriendsExport, c.exportPage)
	c.handle(mux, "POST", base+"/export", access.FriendsExport, c.exportCSV)
	c.handle(mux, "POST", base+"/export/reauth", access.FriendsExport, c.exportReauth)
	c.handle(mux, "GET", base+"/{friendID}", access.FriendsRead, c.friendDetail)
	c.handle(mux, "POST", base+"/{friendID}/reveal", access.FriendsReveal, c.friendReveal)
	c.handle(mux, "POST", base+"/{friendID}/tags", access.FriendsWrite, c.friendAddTag)
	c.handle(mux, "POST", base+"/{friendID}/tags/{tagID}/remove", access.FriendsWrite, c.friendRemoveTag)
	c.handle(mux, "POST", base+"/{friendID}/fields", access.FriendsWrite, c.friendSetField)
	c.handle(mux, "POST", base+"/{friendID}/erase", access.FriendsErase, c.friendErase)
	c.handle(mux, "POST", base+"/{friendID}/consent", access.FriendsWrite, c.friendConsent)
	c.handle(mux, "POST", base+"/{friendID}/disclosure", access.FriendsExport, c.friendDisclosure)
}

// friendPage is the size of a page of the list.
const friendPage = 50

// minExact is the shortest exact search (after normalising) a member without
// friends:read_pii may run. An exact search reveals only what the searcher already knew
// of one person; a very short value ("A", "1") would instead list everyone sharing it —
// a blood type, an age — which is exactly what masking hides.
const minExact = 6

// friendQuery is the list's filter as the member asked for it.
type friendQuery struct {
	Search     friend.SearchFilter
	Text       string // the search box as typed
	Exact      bool   // Text is searched as an exact value (no friends:read_pii)
	Status     string
	Tags       map[int64]bool
	FieldKey   string
	FieldValue string
	Problem    string // a text key: the filter cannot be run as asked
	// Query is the filter as a query string, without paging: for the next page, the
	// export link, and the export's own filter.
	Query string
}

// active reports whether anything narrows the list.
func (fq friendQuery) active() bool { return fq.Query != "" }

// parseFriendQuery reads the list's filter from a query string: q (search), status, tag
// (repeated: friends with all of them), fk and fv (a field's key and value).
func (c *Console) parseFriendQuery(q *request, v url.Values, tags []friend.Tag, defs []friend.Field) friendQuery {
	fq := friendQuery{Tags: map[int64]bool{}}
	keep := url.Values{}
	switch st := friend.Status(v.Get("status")); st {
	case friend.Following, friend.Blocked, friend.Unknown:
		fq.Status, fq.Search.Status = string(st), st
		keep.Set("status", string(st))
	}
	for _, s := range v["tag"] {
		id, _ := strconv.ParseInt(s, 10, 64)
		if slices.ContainsFunc(tags, func(t friend.Tag) bool { return t.ID == id }) && !fq.Tags[id] {
			fq.Tags[id] = true
			fq.Search.TagIDs = append(fq.Search.TagIDs, id)
			keep.Add("tag", s)
		}
	}
	if key, val := v.Get("fk"), strings.TrimSpace(v.Get("fv")); key != "" && val != "" {
		fq.FieldKey, fq.FieldValue = key, val
		keep.Set("fk", key)
		keep.Set("fv", val)
		i := slices.IndexFunc(defs, func(d friend.Field) bool { return d.Key == key })
		switch {
		case i < 0:
			fq.Problem = "friends.err.nofield"
		case defs[i].Sensitivity.Personal() && !q.P.Can(access.FriendsReadPII):
			// A personal field compared with a value the member chose would list
			// everyone sharing it; the exact search (one known value) is their tool.
			fq.Problem = "friends.err.fieldpii"
		default:
			if _, err := defs[i].CheckValue(val); err != nil && defs[i].Type != friend.TextField {
				fq.Problem = "friends.err.fieldvalue"
			}
			fq.Search.Fields = append(fq.Search.Fields, friend.FieldMatch{Field: defs[i], Value: val})
		}
	}
	if text := strings.TrimSpace(v.Get("q")); text != "" {
		fq.Text = text
		keep.Set("q", text)
		if q.P.Can(access.FriendsReadPII) {
			fq.Search.Partial = text
		} else {
			fq.Exact, fq.Search.Exact = true, text
			if utf8.RuneCountInString(friend.NormalizeExact(text)) < minExact {
				fq.Problem = "friends.err.exactshort"
			}
		}
	}
	fq.Query = keep.Encode()
	return fq
}

// friendRow is one friend as the list shows it: personal values already as the member
// may see them.
type friendRow struct {
	ID            int64
	Name          string
	Picture       string
	Status        friend.Status
	FollowedAt    time.Time
	LastMessageAt time.Time
	Tags          []string
	Values        []shownValue
}

// shownValue is a field value as shown: masked or not.
type shownValue struct {
	Key, Label, Value string
	Masked            bool
}

func (c *Console) friendList(w http.ResponseWriter, r *http.Request, q *request) {
	ctx := r.Context()
	ch := q.Channel
	tags, err := c.Friends.Tags(ctx, ch.ID)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	defs, err := c.Friends.Fields(ctx, ch.ID)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	fq := c.parseFriendQuery(q, r.URL.Query(), tags, defs)
	var list []friend.Friend
	total := 0
	if fq.Problem == "" {
		fq.Search.After, _ = strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		fq.Search.Limit = friendPage
		list, err = c.Friends.Search(ctx, ch.ID, fq.Search)
		if err == nil {
			total, _, err = c.Friends.Count(ctx, ch.ID, fq.Search)
		}
		if errors.Is(err, friend.ErrInvalid) {
			fq.Problem, list, err = "friends.err.fieldvalue", nil, nil
		}
		if err != nil {
			c.fail(w, r, q, err)
			return
		}
	}
	ids := make([]int64, len(list))
	for i, f := range list {
		ids[i] = f.ID
	}
	values, friendTags, err := c.Friends.ValuesOf(ctx, c.DB, ids)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	rows := make([]friendRow, len(list))
	shown := map[string]bool{}
	for i, f := range list {
		row := friendRow{ID: f.ID, Name: q.P.Show(f.DisplayName, true), Status: f.Status,
			FollowedAt: f.FollowedAt, LastMessageAt: f.LastMessageAt, Tags: friendTags[f.ID]}
		if q.P.Can(access.FriendsReadPII) {
			row.Picture = f.PictureURL
			shown["display_name"] = shown["display_name"] || f.DisplayName != ""
			shown["picture"] = shown["picture"] || f.PictureURL != ""
		}
		// The values that made the friend match: the filtered field and what the
		// search found, so that a search result says why it is one.
		for _, d := range defs {
			v, ok := values[f.ID][d.Key]
			if !ok || !listedValue(fq, d, v) {
				continue
			}
			sv := shownValue{Key: d.Key, Label: d.Label, Value: q.P.Show(v, d.Sensitivity.Personal())}
			sv.Masked = sv.Value != v
			if d.Sensitivity.Personal() && !sv.Masked {
				shown[d.Key] = true
			}
			row.Values = append(row.Values, sv)
		}
		rows[i] = row
	}
	// A page of unmasked names is one record: the friends' IDs and what was shown of
	// them (the search text itself is not kept: it may be a phone number). A masked
	// page showed nothing personal and writes nothing.
	if q.P.Can(access.FriendsReadPII) && len(list) > 0 {
		if err := c.recordFriendView(ctx, r, q, "", shownKeys(shown), map[string]string{
			"page": "friends", "count": strconv.Itoa(len(ids)), "friends": joinFriendIDs(ids), "filtered": auditYesNo(fq.active()),
		}); err != nil {
			c.fail(w, r, q, err)
			return
		}
	}
	next := ""
	if len(list) == friendPage {
		v := url.Values{}
		if fq.Query != "" {
			v, _ = url.ParseQuery(fq.Query)
		}
		v.Set("after", strconv.FormatInt(list[len(list)-1].ID, 10))
		next = "/console/channels/" + q.Channel.ID + "/friends?" + v.Encode()
	}
	var fieldChoices []friend.Field
	for _, d := range defs {
		if !d.Sensitivity.Personal() || q.P.Can(access.FriendsReadPII) {
			fieldChoices = append(fieldChoices, d)
		}
	}
	c.render(w, r, http.StatusOK, "friends", "friends.title", q, map[string]any{
		"Channel": q.Channel, "Friends": rows, "Total": total, "NextURL": next, "Filter": fq, "ExportURL": c.exportURL(q, fq),
		"AllTags": tags, "Fields": fieldChoices, "PII": q.P.Can(access.FriendsReadPII),
		"Erased": r.URL.Query().Get("done") == "erased",
	})
}

// listedValue says whether the list shows a friend's value of field d: the field of the
// filter, or a text value the search matched.
func listedValue(fq friendQuery, d friend.Field, v string) bool {
	if d.Key == fq.FieldKey {
		return true
	}
	if d.Type != friend.TextField {
		return false
	}
	n := friend.NormalizeExact(v)
	switch {
	case fq.Search.Exact != "":
		return n == friend.NormalizeExact(fq.Search.Exact)
	case fq.Search.Partial != "":
		p := strings.ToLower(fq.Search.Partial)
		return strings.Contains(strings.ToLower(v), p) || (friend.NormalizeExact(p) != "" && strings.Contains(n, friend.NormalizeExact(p)))
	}
	return false
}

// recordFriendView writes a friend.view audit record in a transaction of its own: for pages
// that only read (the detail page records inside the transaction it reads in).
func (c *Console) recordFriendView(ctx context.Context, r *http.Request, q *request, subject string, fields []string, detail map[string]string) error {
	return c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		return c.record(ctx, tx, r, q, audit.Record{Action: audit.FriendView, Subject: subject, Fields: fields, Detail: detail})
	})
}

// shownKeys lists the set members in a stable order: display_name and picture first, then
// field keys alphabetically.
func shownKeys(set map[string]bool) []string {
	var out []string
	for k, on := range set {
		if on {
			out = append(out, k)
		}
	}
	rank := func(k string) int {
		switch k {
		case "display_name":
			return 0
		case "picture":
			return 1
		}
		return 2
	}
	slices.SortFunc(out, func(a, b string) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return out
}

func joinFriendIDs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ",")
}

func auditYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
