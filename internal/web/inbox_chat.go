package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/inbox"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
)

func (c *Console) inboxChat(w http.ResponseWriter, r *http.Request, q *request) {
	d := chatData{}
	switch r.URL.Query().Get("sent") {
	case "reply":
		d.Done = "inbox.sent.reply"
	case "push":
		d.Done = "inbox.sent.push"
	}
	switch r.URL.Query().Get("done") {
	case "status":
		d.Done = "inbox.done.status"
	case "assign":
		d.Done = "inbox.done.assign"
	}
	c.showChat(w, r, q, http.StatusOK, d)
}

// showChat renders a friend's conversation; d carries a refused reply and its problem.
// Seeing the newest messages marks them read.
func (c *Console) showChat(w http.ResponseWriter, r *http.Request, q *request, status int, d chatData) {
	ctx := r.Context()
	id, ok := pathInt(r, "friendID")
	if !ok {
		c.render(w, r, http.StatusNotFound, "error", "error.notfound", q, "error.notfound")
		return
	}
	f, err := c.Friends.Get(ctx, q.Channel.ID, id)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	conv, err := c.Inbox.Get(ctx, q.Channel.ID, id)
	switch {
	case err == nil:
		d.Conv = &conv
	case !errors.Is(err, store.ErrNotFound):
		c.fail(w, r, q, err)
		return
	}
	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	msgs, err := c.Inbox.Messages(ctx, q.Channel.ID, id, before, 100)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	names, err := c.staffNames(ctx)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	if d.Members, err = c.assignable(ctx, q.Channel.ID); err != nil {
		c.fail(w, r, q, err)
		return
	}
	d.Messages = chatMessages(msgs, names)
	if len(msgs) == 100 {
		d.Older = msgs[0].ID
	}
	if len(msgs) > 0 {
		d.Last = msgs[len(msgs)-1].ID
	}
	if d.Conv != nil {
		d.Assignee = names[d.Conv.AssigneeID]
		// Only the newest page marks read, up to the last message shown: what arrived
		// since stays unread for whoever looks next.
		if before == 0 && d.Conv.Unread > 0 {
			if err := c.Inbox.MarkRead(ctx, q.Channel.ID, id, d.Last); err != nil {
				c.fail(w, r, q, err)
				return
			}
		}
	}
	pii := q.P.Can(access.FriendsReadPII)
	var shown []string
	if pii && f.DisplayName != "" {
		shown = append(shown, "display_name")
	}
	if pii && f.PictureURL != "" {
		shown = append(shown, "picture")
	}
	if len(shown) > 0 {
		if err := c.recordFriendView(ctx, r, q, audit.Subject("friend", id), shown, map[string]string{"page": "inbox"}); err != nil {
			c.fail(w, r, q, err)
			return
		}
	}
	name := f.DisplayName
	f.DisplayName = q.P.Show(name, true)
	if !pii {
		f.PictureURL = ""
	}
	d.Friend, d.NameMasked, d.Blocked = f, f.DisplayName != name, f.Status == "blocked"
	c.render(w, r, status, "inbox_chat", "inbox.chat.title", q, d)
}

// inboxReply sends the staff member's text: by the friend's fresh reply token when there
// is one (free), by push otherwise; the page then says which.
func (c *Console) inboxReply(w http.ResponseWriter, r *http.Request, q *request) {
	id, ok := pathInt(r, "friendID")
	if !ok {
		c.render(w, r, http.StatusNotFound, "error", "error.notfound", q, "error.notfound")
		return
	}
	text := r.PostFormValue("text")
	sent, err := c.Inbox.Reply(r.Context(), q.Channel.ID, id, q.Member.ID, text)
	if errors.Is(err, inbox.ErrInvalid) || errors.Is(err, inbox.ErrBlocked) {
		c.showChat(w, r, q, http.StatusUnprocessableEntity, chatData{Text: text, Problem: problemText(q.Lang, err)})
		return
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	how := "push"
	if sent.ByReply {
		how = "reply"
	}
	http.Redirect(w, r, c.chatURL(q, id)+"?sent="+how, http.StatusSeeOther)
}

func (c *Console) inboxStatus(w http.ResponseWriter, r *http.Request, q *request) {
	id, ok := pathInt(r, "friendID")
	if !ok {
		c.render(w, r, http.StatusNotFound, "error", "error.notfound", q, "error.notfound")
		return
	}
	err := c.Inbox.SetStatus(r.Context(), q.Channel.ID, id, inbox.Status(r.PostFormValue("status")))
	if errors.Is(err, inbox.ErrInvalid) {
		c.showChat(w, r, q, http.StatusUnprocessableEntity, chatData{Problem: problemText(q.Lang, err)})
		return
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, c.chatURL(q, id)+"?done=status", http.StatusSeeOther)
}

// inboxAssign gives the conversation to a member who works on the channel and reads its
// chats (or to nobody).
func (c *Console) inboxAssign(w http.ResponseWriter, r *http.Request, q *request) {
	ctx := r.Context()
	id, ok := pathInt(r, "friendID")
	if !ok {
		c.render(w, r, http.StatusNotFound, "error", "error.notfound", q, "error.notfound")
		return
	}
	to, _ := strconv.ParseInt(r.PostFormValue("assignee"), 10, 64)
	if to != 0 {
		members, err := c.assignable(ctx, q.Channel.ID)
		if err != nil {
			c.fail(w, r, q, err)
			return
		}
		if !slices.ContainsFunc(members, func(m chatAssignee) bool { return m.ID == to }) {
			c.showChat(w, r, q, http.StatusUnprocessableEntity, chatData{Problem: translate(q.Lang, "inbox.err.assignee")})
			return
		}
	}
	err := c.Inbox.Assign(ctx, q.Channel.ID, id, to)
	if errors.Is(err, inbox.ErrInvalid) {
		c.showChat(w, r, q, http.StatusUnprocessableEntity, chatData{Problem: problemText(q.Lang, err)})
		return
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, c.chatURL(q, id)+"?done=assign", http.StatusSeeOther)
}

// inboxPoll answers the newest message's ID, for the page's script to notice new
// messages. It carries nothing personal: the page reloads to show them.
func (c *Console) inboxPoll(w http.ResponseWriter, r *http.Request, q *request) {
	id, ok := pathInt(r, "friendID")
	if !ok {
		http.NotFound(w, r)
		return
	}
	msgs, err := c.Inbox.Messages(r.Context(), q.Channel.ID, id, 0, 1)
	if err != nil {
		c.Logger.Error("console: poll failed", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	last := int64(0)
	if len(msgs) > 0 {
		last = msgs[0].ID
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(map[string]int64{"last": last})
}

func (c *Console) chatURL(q *request, friendID int64) string {
	return "/console/channels/" + q.Channel.ID + "/inbox/" + strconv.FormatInt(friendID, 10)
}

// problemText is a domain refusal in the page's language.
func problemText(lang string, err error) string {
	var ps message.Problems
	if !errors.As(err, &ps) || len(ps) == 0 {
		return translate(lang, "error.internal")
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.JA
		if lang == "en" {
			out[i] = p.EN
		}
	}
	return strings.Join(out, " ")
}
