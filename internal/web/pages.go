package web

import (
	"net/http"
	"strconv"

	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/staff"
)

type channelSummary struct {
	channel.Channel
	Counts     map[friend.Status]int
	WebhookURL string
}

func (c *Console) dashboard(w http.ResponseWriter, r *http.Request, m *staff.Member) {
	chans, err := c.Channels.List(r.Context())
	if err != nil {
		c.fail(w, r, m, err)
		return
	}
	var out []channelSummary
	for _, ch := range chans {
		counts, err := c.Friends.Counts(r.Context(), ch.ID)
		if err != nil {
			c.fail(w, r, m, err)
			return
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		out = append(out, channelSummary{Channel: ch, Counts: counts, WebhookURL: scheme + "://" + r.Host + ch.WebhookPath()})
	}
	pending, err := c.Events.Pending(r.Context())
	if err != nil {
		c.fail(w, r, m, err)
		return
	}
	c.render(w, r, http.StatusOK, "dashboard", "dash.title", m, map[string]any{"Channels": out, "Pending": pending})
}

func (c *Console) friendList(w http.ResponseWriter, r *http.Request, m *staff.Member) {
	ch, err := c.Channels.Get(r.Context(), r.PathValue("channelID"))
	if err != nil {
		c.fail(w, r, m, err)
		return
	}
	status := friend.Status(r.URL.Query().Get("status"))
	switch status {
	case friend.Following, friend.Blocked, friend.Unknown, "":
	default:
		status = ""
	}
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	const page = 50
	list, err := c.Friends.List(r.Context(), ch.ID, friend.ListFilter{Status: status, After: after, Limit: page})
	if err != nil {
		c.fail(w, r, m, err)
		return
	}
	next := int64(0)
	if len(list) == page {
		next = list[len(list)-1].ID
	}
	c.render(w, r, http.StatusOK, "friends", "friends.title", m, map[string]any{
		"Channel": ch, "Friends": list, "Status": string(status), "Next": next,
	})
}

func (c *Console) friendDetail(w http.ResponseWriter, r *http.Request, m *staff.Member) {
	ch, err := c.Channels.Get(r.Context(), r.PathValue("channelID"))
	if err != nil {
		c.fail(w, r, m, err)
		return
	}
	id, ok := pathInt(r, "friendID")
	if !ok {
		c.render(w, r, http.StatusNotFound, "error", "error.notfound", m, "error.notfound")
		return
	}
	f, err := c.Friends.Get(r.Context(), ch.ID, id)
	if err != nil {
		c.fail(w, r, m, err)
		return
	}
	tags, err := c.Friends.FriendTags(r.Context(), c.Friends.DB(), f.ID)
	if err != nil {
		c.fail(w, r, m, err)
		return
	}
	fields, err := c.Friends.FieldValues(r.Context(), c.Friends.DB(), f.ID)
	if err != nil {
		c.fail(w, r, m, err)
		return
	}
	conv, err := c.Friends.Conversation(r.Context(), ch.ID, f.ID, 200)
	if err != nil {
		c.fail(w, r, m, err)
		return
	}
	c.render(w, r, http.StatusOK, "friend", "friend.title", m, map[string]any{
		"Channel": ch, "Friend": f, "Tags": tags, "Fields": fields, "Conversation": conv,
	})
}
