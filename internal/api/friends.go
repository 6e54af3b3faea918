package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/store"
)

// friendJSON is a friend. DisplayName and PictureURL are personal data written by the
// user: encoding/json escapes them, and they are never logged.
type friendJSON struct {
	ID              int64         `json:"id"`
	LineUserID      string        `json:"line_user_id"`
	Status          friend.Status `json:"status"`
	DisplayName     string        `json:"display_name"`
	PictureURL      string        `json:"picture_url"`
	Language        string        `json:"language"`
	FirstFollowedAt *time.Time    `json:"first_followed_at"`
	FollowedAt      *time.Time    `json:"followed_at"`
	BlockedAt       *time.Time    `json:"blocked_at"`
	Unblocked       bool          `json:"unblocked"`
	FollowCount     int           `json:"follow_count"`
	LastMessageAt   *time.Time    `json:"last_message_at"`
	CreatedAt       *time.Time    `json:"created_at"`
}

// friendDetail adds what one friend's page shows: tags and field values.
type friendDetail struct {
	friendJSON
	Tags   []string          `json:"tags"`
	Fields map[string]string `json:"fields"`
}

// toFriendJSON shows a friend as the caller may see it: the name masked and the
// picture left out without friends:read_pii.
func toFriendJSON(f friend.Friend, p access.Principal) friendJSON {
	f.DisplayName = p.Show(f.DisplayName, true)
	if !p.Can(access.FriendsReadPII) {
		f.PictureURL = ""
	}
	return friendJSON{ID: f.ID, LineUserID: f.LineUserID, Status: f.Status, DisplayName: f.DisplayName, PictureURL: f.PictureURL,
		Language: f.Language, FirstFollowedAt: at(f.FirstFollowedAt), FollowedAt: at(f.FollowedAt), BlockedAt: at(f.BlockedAt),
		Unblocked: f.Unblocked, FollowCount: f.FollowCount, LastMessageAt: at(f.LastMessageAt), CreatedAt: at(f.CreatedAt)}
}

type messageJSON struct {
	ID               int64            `json:"id"`
	Direction        friend.Direction `json:"direction"`
	Kind             string           `json:"kind"`
	Text             string           `json:"text,omitempty"`
	StickerPackageID string           `json:"sticker_package_id,omitempty"`
	StickerID        string           `json:"sticker_id,omitempty"`
	LineMessageID    string           `json:"line_message_id,omitempty"`
	PostbackData     string           `json:"postback_data,omitempty"`
	PostbackParams   string           `json:"postback_params,omitempty"`
	OccurredAt       *time.Time       `json:"occurred_at"`
}

func (a *API) friendRoutes() []route {
	return []route{
		{"GET", "/api/v1/channels/{ch}/friends", access.FriendsRead, a.listFriends},
		{"GET", "/api/v1/channels/{ch}/friends/{id}", access.FriendsRead, a.getFriend},
		{"GET", "/api/v1/channels/{ch}/friends/{id}/messages", access.ChatsRead, a.friendMessages},
		{"DELETE", "/api/v1/channels/{ch}/friends/{id}", access.FriendsErase, a.eraseFriend},
	}
}

// eraseFriend deletes a friend and everything that names them (friend.Erase), with the
// audit record, which names them by ID only. Erasing one already gone answers 404, so a
// repeated request changes nothing more.
func (a *API) eraseFriend(w http.ResponseWriter, r *http.Request, c *call) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return notFound("friend", "友だち")
	}
	err = a.cfg.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		if err := a.cfg.Friends.Erase(r.Context(), tx, c.channel, id); err != nil {
			return err
		}
		_, err := a.cfg.Audit.Append(r.Context(), tx, audit.Record{Actor: audit.Token(c.token.ID, c.token.Name), Action: audit.FriendDelete,
			ChannelID: c.channel, Subject: audit.Subject("friend", id), ClientAddr: c.client.Addr, UserAgent: c.client.UserAgent})
		return err
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("friend", "友だち")
	case errors.Is(err, delivery.ErrInFlight):
		return conflict("friend_busy", "a message to the friend is being sent right now; erase them once it is done (usually within a minute)",
			"この友だちへのメッセージを送信中です。送信が終わってから(通常は1分以内)もう一度削除してください")
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "erased": true})
	return nil
}

func (a *API) listFriends(w http.ResponseWriter, r *http.Request, c *call) error {
	q := r.URL.Query()
	var ps []Problem
	f := friend.ListFilter{Status: friend.Status(q.Get("status"))}
	switch f.Status {
	case "", friend.Following, friend.Blocked, friend.Unknown:
	default:
		ps = append(ps, Problem{Path: "status", EN: "must be following, blocked or unknown", JA: "following、blocked、unknown のいずれかにしてください"})
	}
	limit, p := queryInt(q, "limit", 50, 1, 500)
	ps = append(ps, p...)
	after, p := queryInt(q, "after", 0, 0, math.MaxInt64)
	ps = append(ps, p...)
	if len(ps) > 0 {
		return invalidInput(ps...)
	}
	f.Limit, f.After = int(limit), after
	if name := q.Get("tag"); name != "" {
		t, err := a.cfg.Friends.TagByName(r.Context(), a.cfg.DB, c.channel, name)
		if errors.Is(err, store.ErrNotFound) {
			// Nobody carries a tag that does not exist.
			writeJSON(w, http.StatusOK, map[string]any{"friends": []friendJSON{}})
			return nil
		}
		if err != nil {
			return err
		}
		f.TagID = t.ID
	}
	fs, err := a.cfg.Friends.List(r.Context(), c.channel, f)
	if err != nil {
		return err
	}
	out := make([]friendJSON, 0, len(fs))
	ids := make([]string, 0, len(fs))
	for _, fr := range fs {
		out = append(out, toFriendJSON(fr, c.p))
		ids = append(ids, strconv.FormatInt(fr.ID, 10))
	}
	if len(fs) > 0 && c.p.Can(access.FriendsReadPII) {
		// Names were read unmasked: the trail says whose, in one record per page.
		err := a.recordView(r, c, audit.Record{Subject: "friends", Fields: []string{"display_name", "picture"},
			Detail: map[string]string{"count": strconv.Itoa(len(fs)), "friend_ids": strings.Join(ids, " ")}})
		if err != nil {
			return err
		}
	}
	body := map[string]any{"friends": out}
	if len(fs) == f.Limit {
		body["next_after"] = fs[len(fs)-1].ID
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (a *API) getFriend(w http.ResponseWriter, r *http.Request, c *call) error {
	f, err := a.friend(r, c)
	if err != nil {
		return err
	}
	tags, err := a.cfg.Friends.FriendTags(r.Context(), a.cfg.DB, f.ID)
	if err != nil {
		return err
	}
	values, err := a.cfg.Friends.FieldValues(r.Context(), a.cfg.DB, f.ID)
	if err != nil {
		return err
	}
	defs, err := a.cfg.Friends.Fields(r.Context(), c.channel)
	if err != nil {
		return err
	}
	shown := []string{"display_name", "picture"}
	for _, d := range defs {
		if v, ok := values[d.Key]; ok {
			values[d.Key] = c.p.Show(v, d.Sensitivity.Personal())
			if d.Sensitivity.Personal() {
				shown = append(shown, d.Key)
			}
		}
	}
	out := friendDetail{friendJSON: toFriendJSON(f, c.p), Tags: []string{}, Fields: values}
	for _, t := range tags {
		out.Tags = append(out.Tags, t.Name)
	}
	// A masked answer showed nothing personal; an unmasked one is on the record.
	if c.p.Can(access.FriendsReadPII) {
		if err := a.recordView(r, c, audit.Record{Subject: audit.Subject("friend", f.ID), Fields: shown}); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// recordView writes a friend.view audit record for what the caller read.
func (a *API) recordView(r *http.Request, c *call, rec audit.Record) error {
	rec.Actor, rec.Action, rec.ChannelID = audit.Token(c.token.ID, c.token.Name), audit.FriendView, c.channel
	rec.ClientAddr, rec.UserAgent = c.client.Addr, c.client.UserAgent
	_, err := a.cfg.Audit.Add(r.Context(), rec)
	return err
}

func (a *API) friendMessages(w http.ResponseWriter, r *http.Request, c *call) error {
	f, err := a.friend(r, c)
	if err != nil {
		return err
	}
	limit, ps := queryInt(r.URL.Query(), "limit", 100, 1, 500)
	if ps != nil {
		return invalidInput(ps...)
	}
	msgs, err := a.cfg.Friends.Conversation(r.Context(), c.channel, f.ID, int(limit))
	if err != nil {
		return err
	}
	out := make([]messageJSON, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, messageJSON{ID: m.ID, Direction: m.Direction, Kind: m.Kind, Text: m.Text, StickerPackageID: m.StickerPackageID,
			StickerID: m.StickerID, LineMessageID: m.LineMessageID, PostbackData: m.PostbackData, PostbackParams: m.PostbackParams,
			OccurredAt: at(m.OccurredAt)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out})
	return nil
}

// friend returns the friend named by the {id} path parameter, in the call's channel.
func (a *API) friend(r *http.Request, c *call) (friend.Friend, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return friend.Friend{}, notFound("friend", "友だち")
	}
	f, err := a.cfg.Friends.Get(r.Context(), c.channel, id)
	if errors.Is(err, store.ErrNotFound) {
		return friend.Friend{}, notFound("friend", "友だち")
	}
	return f, err
}

// queryInt reads an optional integer query parameter within [lo, hi].
func queryInt(q url.Values, name string, def, lo, hi int64) (int64, []Problem) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		if hi == math.MaxInt64 {
			return def, []Problem{{Path: name, EN: fmt.Sprintf("must be a whole number, %d or more", lo),
				JA: fmt.Sprintf("%d 以上の整数にしてください", lo)}}
		}
		return def, []Problem{{Path: name, EN: fmt.Sprintf("must be a whole number from %d to %d", lo, hi),
			JA: fmt.Sprintf("%d〜%d の整数にしてください", lo, hi)}}
	}
	return n, nil
}
