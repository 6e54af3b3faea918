package web

import (
	"net/http"
	"strconv"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/friend"
)

func (c *Console) friendRoutes(mux *http.ServeMux) {
	c.handle(mux, "GET", "/console/channels/{channelID}/friends", access.FriendsRead, c.friendList)
	c.handle(mux, "GET", "/console/channels/{channelID}/friends/{friendID}", access.FriendsRead, c.friendDetail)
}

func (c *Console) friendList(w http.ResponseWriter, r *http.Request, q *request) {
	ch := q.Channel
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
		c.fail(w, r, q, err)
		return
	}
	for i := range list {
		maskFriend(q, &list[i])
	}
	next := int64(0)
	if len(list) == page {
		next = list[len(list)-1].ID
	}
	c.render(w, r, http.StatusOK, "friends", "friends.title", q, map[string]any{
		"Channel": ch, "Friends": list, "Status": string(status), "Next": next,
	})
}

func (c *Console) friendDetail(w http.ResponseWriter, r *http.Request, q *request) {
	ch := q.Channel
	id, ok := pathInt(r, "friendID")
	if !ok {
		c.render(w, r, http.StatusNotFound, "error", "error.notfound", q, "error.notfound")
		return
	}
	f, err := c.Friends.Get(r.Context(), ch.ID, id)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	tags, err := c.Friends.FriendTags(r.Context(), c.Friends.DB(), f.ID)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	fields, err := c.Friends.FieldValues(r.Context(), c.Friends.DB(), f.ID)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	maskFriend(q, &f)
	defs, err := c.Friends.Fields(r.Context(), ch.ID)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	for _, d := range defs {
		if v, ok := fields[d.Key]; ok {
			fields[d.Key] = q.P.Show(v, d.Sensitivity.Personal())
		}
	}
	conv, err := c.Friends.Conversation(r.Context(), ch.ID, f.ID, 200)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	c.render(w, r, http.StatusOK, "friend", "friend.title", q, map[string]any{
		"Channel": ch, "Friend": f, "Tags": tags, "Fields": fields, "Conversation": conv,
	})
}

// maskFriend masks a friend's profile for a member who may not read personal data.
func maskFriend(q *request, f *friend.Friend) {
	f.DisplayName = q.P.Show(f.DisplayName, true)
	if !q.P.Can(access.FriendsReadPII) {
		f.PictureURL = ""
	}
}
