package web

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/richmenu"
	"github.com/linestep/linestep/internal/store"
)

// The disclosure (開示): everything linestep keeps about one friend, as one JSON file for
// staff to hand to the person who asked to see it (APPI art. 33), with each field's
// purpose beside its value. It needs friends:export and friends:read_pii (it is the
// person's data unmasked) and a recent confirmation of who the member is; the audit log
// records it before the first byte leaves.

type disclosure struct {
	Account      string                        `json:"account"`
	GeneratedAt  time.Time                     `json:"generated_at"`
	Friend       disclosedFriend               `json:"friend"`
	Tags         []string                      `json:"tags"`
	Fields       []disclosedField              `json:"fields"`
	Consents     map[string][]disclosedConsent `json:"consents"`
	Conversation []disclosedMessage            `json:"conversation"`
	Sent         []disclosedDelivery           `json:"messages_sent"`
	Scenarios    []disclosedRun                `json:"scenarios"`
	Coupons      []disclosedCoupon             `json:"coupons"`
	RichMenus    []disclosedRichMenu           `json:"rich_menus"`
}

type disclosedFriend struct {
	LineUserID      string     `json:"line_user_id"`
	DisplayName     string     `json:"display_name"`
	PictureURL      string     `json:"picture_url"`
	Language        string     `json:"language"`
	Status          string     `json:"status"`
	FirstFollowedAt *time.Time `json:"first_followed_at"`
	FollowedAt      *time.Time `json:"followed_at"`
	BlockedAt       *time.Time `json:"blocked_at"`
	FollowCount     int        `json:"follow_count"`
	LastMessageAt   *time.Time `json:"last_message_at"`
	CreatedAt       *time.Time `json:"created_at"`
}

type disclosedField struct {
	Key           string `json:"key"`
	Label         string `json:"label"`
	Purpose       string `json:"purpose"`
	Sensitivity   string `json:"sensitivity"`
	RetentionDays int    `json:"retention_days,omitempty"`
	Value         string `json:"value"`
}

type disclosedConsent struct {
	Granted bool      `json:"granted"`
	How     string    `json:"how"`
	At      time.Time `json:"at"`
}

type disclosedMessage struct {
	Direction    string    `json:"direction"`
	Kind         string    `json:"kind"`
	Text         string    `json:"text,omitempty"`
	PostbackData string    `json:"postback_data,omitempty"`
	At           time.Time `json:"at"`
}

type disclosedDelivery struct {
	Source    string          `json:"source"`
	State     string          `json:"state"`
	Method    string          `json:"method,omitempty"`
	Messages  json.RawMessage `json:"messages,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	SentAt    *time.Time      `json:"sent_at,omitempty"`
}

type disclosedRun struct {
	Scenario   string `json:"scenario"`
	State      string `json:"state"`
	LastStep   string `json:"last_step,omitempty"`
	NextStep   string `json:"next_step,omitempty"`
	Runs       int    `json:"runs"`
	StopReason string `json:"stop_reason,omitempty"`
}

type disclosedCoupon struct {
	Title    string    `json:"title"`
	Code     string    `json:"code"`
	Redeemed int       `json:"redeemed"`
	IssuedAt time.Time `json:"issued_at"`
}

type disclosedRichMenu struct {
	RichMenuID string    `json:"rich_menu_id"`
	State      string    `json:"state"`
	At         time.Time `json:"at"`
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// friendDisclosure sends the friend's data as a JSON file.
func (c *Console) friendDisclosure(w http.ResponseWriter, r *http.Request, q *request) {
	id, ok := pathInt(r, "friendID")
	if !ok {
		c.render(w, r, http.StatusNotFound, "error", "error.notfound", q, "error.notfound")
		return
	}
	if !q.P.Can(access.FriendsReadPII) {
		c.render(w, r, http.StatusForbidden, "error", "error.forbidden", q, "error.forbidden")
		return
	}
	if !c.recent(w, r, q, "/console/channels/"+q.Channel.ID+"/friends/"+strconv.FormatInt(id, 10)) {
		return
	}
	ctx := r.Context()
	d, err := c.disclose(ctx, q.Channel.ID, q.Channel.Name, id)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	err = c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		return c.record(ctx, tx, r, q, audit.Record{Action: audit.FriendsExport, Subject: audit.Subject("friend", id),
			Fields: []string{"all"}, Detail: map[string]string{"kind": "disclosure"}})
	})
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	body, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	name := "friend-" + strconv.FormatInt(id, 10) + "-" + c.Clock.Now().In(tokyo).Format("20060102-1504") + ".json"
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Write(body)
}

// disclose gathers what is kept about the friend.
func (c *Console) disclose(ctx context.Context, channelID, account string, id int64) (disclosure, error) {
	db := c.DB
	f, err := c.Friends.Lookup(ctx, db, channelID, id)
	if err != nil {
		return disclosure{}, err
	}
	d := disclosure{Account: account, GeneratedAt: c.Clock.Now(), Tags: []string{}, Consents: map[string][]disclosedConsent{},
		Friend: disclosedFriend{LineUserID: f.LineUserID, DisplayName: f.DisplayName, PictureURL: f.PictureURL, Language: f.Language,
			Status: string(f.Status), FirstFollowedAt: timeOrNil(f.FirstFollowedAt), FollowedAt: timeOrNil(f.FollowedAt),
			BlockedAt: timeOrNil(f.BlockedAt), FollowCount: f.FollowCount, LastMessageAt: timeOrNil(f.LastMessageAt), CreatedAt: timeOrNil(f.CreatedAt)}}
	tags, err := c.Friends.FriendTags(ctx, db, id)
	if err != nil {
		return disclosure{}, err
	}
	for _, t := range tags {
		d.Tags = append(d.Tags, t.Name)
	}
	values, err := c.Friends.FieldValues(ctx, db, id)
	if err != nil {
		return disclosure{}, err
	}
	defs, err := c.Friends.Fields(ctx, channelID)
	if err != nil {
		return disclosure{}, err
	}
	for _, def := range defs {
		if v, ok := values[def.Key]; ok {
			d.Fields = append(d.Fields, disclosedField{Key: def.Key, Label: def.Label, Purpose: def.Purpose,
				Sensitivity: string(def.Sensitivity), RetentionDays: def.RetentionDays, Value: v})
		}
	}
	consents, err := c.Friends.ConsentHistory(ctx, db, id)
	if err != nil {
		return disclosure{}, err
	}
	for key, cs := range consents {
		for _, cn := range cs {
			d.Consents[key] = append(d.Consents[key], disclosedConsent{Granted: cn.Granted, How: cn.Source, At: cn.At})
		}
	}
	msgs, err := c.Friends.WholeConversation(ctx, db, id)
	if err != nil {
		return disclosure{}, err
	}
	for _, m := range msgs {
		d.Conversation = append(d.Conversation, disclosedMessage{Direction: string(m.Direction), Kind: m.Kind, Text: m.Text,
			PostbackData: m.PostbackData, At: m.OccurredAt})
	}
	sent, err := c.Delivery.ForFriend(ctx, id, 1<<30)
	if err != nil {
		return disclosure{}, err
	}
	for i := len(sent) - 1; i >= 0; i-- { // oldest first, as the conversation
		s := sent[i]
		d.Sent = append(d.Sent, disclosedDelivery{Source: s.Source, State: s.State, Method: s.Method, Messages: s.Messages,
			CreatedAt: s.CreatedAt, SentAt: timeOrNil(s.SentAt)})
	}
	runs, err := c.Scenarios.Enrolments(ctx, db, id)
	if err != nil {
		return disclosure{}, err
	}
	for _, e := range runs {
		d.Scenarios = append(d.Scenarios, disclosedRun{Scenario: e.ScenarioKey, State: e.State, LastStep: e.LastStep, NextStep: e.NextStep,
			Runs: e.Runs, StopReason: e.StopReason})
	}
	coupons, err := c.Coupons.IssuedTo(ctx, db, id)
	if err != nil {
		return disclosure{}, err
	}
	for _, is := range coupons {
		d.Coupons = append(d.Coupons, disclosedCoupon{Title: is.Title, Code: is.Code, Redeemed: is.Redeemed, IssuedAt: is.IssuedAt})
	}
	links, err := richmenu.ForFriend(ctx, db, id, 1<<30)
	if err != nil {
		return disclosure{}, err
	}
	for _, l := range links {
		d.RichMenus = append(d.RichMenus, disclosedRichMenu{RichMenuID: l.RichMenuID, State: l.State, At: l.CreatedAt})
	}
	return d, nil
}
