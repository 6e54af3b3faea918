package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/inbox"
)

// The 1:1 chat inbox. Message bodies are shown to everyone who handles chats (that is
// the job, and they are the friend's own words to the shop); the friend's name and
// picture are personal values like anywhere else: masked without friends:read_pii, and
// an audit record when shown unmasked.
func (c *Console) inboxRoutes(mux *http.ServeMux) {
	base := "/console/channels/{channelID}/inbox"
	c.handle(mux, "GET", base, access.ChatsRead, c.inboxList)
	c.handle(mux, "GET", base+"/{friendID}", access.ChatsRead, c.inboxChat)
	c.handle(mux, "GET", base+"/{friendID}/poll", access.ChatsRead, c.inboxPoll)
	c.handle(mux, "POST", base+"/{friendID}/reply", access.ChatsReply, c.inboxReply)
	c.handle(mux, "POST", base+"/{friendID}/status", access.ChatsReply, c.inboxStatus)
	c.handle(mux, "POST", base+"/{friendID}/assign", access.ChatsAssign, c.inboxAssign)
}

// inboxRow is one conversation in the list, the friend as the member may see them.
type inboxRow struct {
	inbox.Conversation
	Name     string
	Assignee string
}

// inboxView is the list's tab and view: a status, and all / mine / unassigned.
type inboxView struct {
	Status inbox.Status
	View   string
}

// link is the list's address for a status and view.
func (v inboxView) link(channelID string, status inbox.Status, view, before string) string {
	u := url.Values{"status": {string(status)}}
	if view != "all" {
		u.Set("view", view)
	}
	if before != "" {
		u.Set("before", before)
	}
	return "/console/channels/" + channelID + "/inbox?" + u.Encode()
}

func (c *Console) inboxList(w http.ResponseWriter, r *http.Request, q *request) {
	ctx := r.Context()
	ch := q.Channel
	v := inboxView{Status: inbox.Status(r.URL.Query().Get("status")), View: r.URL.Query().Get("view")}
	if !v.Status.Valid() {
		v.Status = inbox.Open
	}
	var f inbox.Filter
	switch v.View {
	case "mine":
		f.AssigneeID = q.Member.ID
	case "unassigned":
		f.Unassigned = true
	default:
		v.View = "all"
	}
	counts, err := c.Inbox.Counts(ctx, ch.ID, f)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	f.Status, f.Before, f.Limit = v.Status, r.URL.Query().Get("before"), 50
	list, err := c.Inbox.List(ctx, ch.ID, f)
	if errors.Is(err, inbox.ErrBadCursor) {
		f.Before = ""
		list, err = c.Inbox.List(ctx, ch.ID, f)
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	names, err := c.staffNames(ctx)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	pii := q.P.Can(access.FriendsReadPII)
	rows := make([]inboxRow, len(list))
	ids := make([]int64, len(list))
	shown := map[string]bool{}
	for i, conv := range list {
		ids[i] = conv.FriendID
		shown["display_name"] = shown["display_name"] || (pii && conv.DisplayName != "")
		shown["picture"] = shown["picture"] || (pii && conv.PictureURL != "")
		if !pii {
			conv.PictureURL = ""
		}
		rows[i] = inboxRow{Conversation: conv, Name: q.P.Show(conv.DisplayName, true), Assignee: names[conv.AssigneeID]}
	}
	if pii && len(list) > 0 {
		if err := c.recordFriendView(ctx, r, q, "", shownKeys(shown), map[string]string{
			"page": "inbox", "count": strconv.Itoa(len(ids)), "friends": joinFriendIDs(ids),
		}); err != nil {
			c.fail(w, r, q, err)
			return
		}
	}
	next := ""
	if len(list) == f.Limit {
		next = list[len(list)-1].Cursor()
	}
	tabs := []struct {
		Status inbox.Status
		Count  int
		URL    string
	}{
		{inbox.Open, counts.Open, v.link(ch.ID, inbox.Open, v.View, "")},
		{inbox.Pending, counts.Pending, v.link(ch.ID, inbox.Pending, v.View, "")},
		{inbox.Resolved, counts.Resolved, v.link(ch.ID, inbox.Resolved, v.View, "")},
	}
	views := []struct{ Name, URL string }{
		{"all", v.link(ch.ID, v.Status, "all", "")}, {"mine", v.link(ch.ID, v.Status, "mine", "")},
		{"unassigned", v.link(ch.ID, v.Status, "unassigned", "")},
	}
	nextURL := ""
	if next != "" {
		nextURL = v.link(ch.ID, v.Status, v.View, next)
	}
	c.render(w, r, http.StatusOK, "inbox", "inbox.title", q, map[string]any{
		"Rows": rows, "View": v, "Tabs": tabs, "Views": views, "Unread": counts.Unread, "NextURL": nextURL,
	})
}

// chatAssignee is a staff member a conversation can be assigned to.
type chatAssignee struct {
	ID   int64
	Name string
}

// assignable lists the active members who work on the channel and may read its chats.
func (c *Console) assignable(ctx context.Context, channelID string) ([]chatAssignee, error) {
	all, err := c.Staff.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []chatAssignee
	for _, m := range all {
		if m.Disabled() {
			continue
		}
		p, err := c.Access.StaffPrincipal(ctx, m.ID, m.Login, string(m.Role))
		if err != nil {
			return nil, err
		}
		if p.CanOn(channelID, access.ChatsRead) {
			out = append(out, chatAssignee{ID: m.ID, Name: m.Name})
		}
	}
	return out, nil
}

// chatData is what the conversation page shows.
type chatData struct {
	Friend     friend.Friend // DisplayName and PictureURL as the member may see them
	NameMasked bool
	Conv       *inbox.Conversation // nil: the friend has not written yet
	Assignee   string
	Messages   []chatMessage
	Older      int64 // the oldest message shown, for the page before it (0: none)
	Last       int64 // the newest message shown, for polling
	Members    []chatAssignee
	Text       string // the reply being written, kept when it is refused
	Problem    string // in the page's language
	Done       string // a text key
	Blocked    bool
}
