package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/inbox"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/store"
)

// fieldRow is one custom field on the detail page, its value as the member may see it.
type fieldRow struct {
	friend.Field
	Value  string // as shown
	Has    bool
	Masked bool
	// Edit prefills the edit form: the stored value, unless it is masked (a member who
	// may not read it edits blind, and the page carries nothing they may not see).
	Edit   string
	Reveal *revealForm // set when masked and the member may reveal it
	// Consent is where the friend's consent to a special field stands (nil: never
	// recorded, or not a special field).
	Consent *friend.Consent
}

// revealForm is what the reveal form of one masked value needs.
type revealForm struct {
	Base, Key, CSRF, Lang string
}

// profile is the friend as the detail page shows it.
type profile struct {
	friend.Friend
	NameMasked bool
	Reveal     *revealForm
}

// friendDetailData is everything the detail page shows.
type friendDetailData struct {
	Profile      profile
	Tags         []friend.Tag
	Fields       []fieldRow
	Messages     []chatMessage
	Timeline     []timelineRow
	Enrolments   []scenario.Enrolment
	AllTags      []friend.Tag
	Problem      string // a text key
	Done         string // a text key
	KeepKey      string // the field whose edit failed, and what was typed
	KeepValue    string
	CanChat      bool
	Conversation *inbox.Conversation
	ConsentHows  []string
}

// loadFriend reads a friend's profile, tags and fields on q, masked as the member may
// see them, and returns the keys of the personal values it left unmasked.
func (c *Console) loadFriend(ctx context.Context, qr store.Querier, q *request, id int64) (friendDetailData, []string, error) {
	var d friendDetailData
	f, err := c.Friends.Lookup(ctx, qr, q.Channel.ID, id)
	if err != nil {
		return d, nil, err
	}
	if d.Tags, err = c.Friends.FriendTags(ctx, qr, f.ID); err != nil {
		return d, nil, err
	}
	values, err := c.Friends.FieldValues(ctx, qr, f.ID)
	if err != nil {
		return d, nil, err
	}
	defs, err := c.Friends.Fields(ctx, q.Channel.ID)
	if err != nil {
		return d, nil, err
	}
	pii := q.P.Can(access.FriendsReadPII)
	var shown []string
	if pii && f.DisplayName != "" {
		shown = append(shown, "display_name")
	}
	if pii && f.PictureURL != "" {
		shown = append(shown, "picture")
	}
	name := f.DisplayName
	f.DisplayName = q.P.Show(name, true)
	if !pii {
		f.PictureURL = ""
	}
	d.Profile = profile{Friend: f, NameMasked: f.DisplayName != name}
	base := "/console/channels/" + q.Channel.ID + "/friends/" + strconv.FormatInt(f.ID, 10)
	reveal := func(key string) *revealForm {
		if !q.P.Can(access.FriendsReveal) {
			return nil
		}
		return &revealForm{Base: base, Key: key, CSRF: q.CSRF, Lang: q.Lang}
	}
	if d.Profile.NameMasked {
		d.Profile.Reveal = reveal("display_name")
	}
	for _, def := range defs {
		v, ok := values[def.Key]
		row := fieldRow{Field: def, Has: ok, Value: q.P.Show(v, def.Sensitivity.Personal())}
		row.Masked = ok && row.Value != v
		if !row.Masked {
			row.Edit = v
		} else {
			row.Reveal = reveal(def.Key)
		}
		if ok && def.Sensitivity.Personal() && !row.Masked {
			shown = append(shown, def.Key)
		}
		if def.Sensitivity == friend.Special {
			consent, known, err := c.Friends.ConsentOf(ctx, qr, f.ID, def.ID)
			if err != nil {
				return d, nil, err
			}
			if known {
				row.Consent = &consent
			}
		}
		d.Fields = append(d.Fields, row)
	}
	return d, shown, nil
}

func (c *Console) friendDetail(w http.ResponseWriter, r *http.Request, q *request) {
	id, ok := pathInt(r, "friendID")
	if !ok {
		c.render(w, r, http.StatusNotFound, "error", "error.notfound", q, "error.notfound")
		return
	}
	done := map[string]string{"tag": "friend.done.tag", "untag": "friend.done.untag", "field": "friend.done.field",
		"consent": "friend.done.consent"}
	c.showFriend(w, r, q, id, http.StatusOK, friendDetailData{Done: done[r.URL.Query().Get("done")]})
}

// showFriend renders the detail page; extra carries a problem to show and what the
// member typed.
func (c *Console) showFriend(w http.ResponseWriter, r *http.Request, q *request, id int64, status int, extra friendDetailData) {
	ctx := r.Context()
	var d friendDetailData
	var err error
	if q.P.Can(access.FriendsReadPII) {
		// Read and record in one transaction: the record exists if and only if the
		// values were read to be shown.
		err = c.DB.WriteTx(ctx, func(tx *store.Tx) error {
			var shown []string
			d, shown, err = c.loadFriend(ctx, tx, q, id)
			if err != nil || len(shown) == 0 {
				return err
			}
			return c.record(ctx, tx, r, q, audit.Record{Action: audit.FriendView, Subject: audit.Subject("friend", id),
				Fields: shown, Detail: map[string]string{"page": "friend"}})
		})
	} else {
		// Everything personal is masked: nothing personal is seen, so nothing is
		// recorded (a reveal is, on its own).
		d, _, err = c.loadFriend(ctx, c.DB, q, id)
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	d.Problem, d.Done, d.KeepKey, d.KeepValue = extra.Problem, extra.Done, extra.KeepKey, extra.KeepValue
	d.ConsentHows = consentHows
	if d.AllTags, err = c.Friends.Tags(ctx, q.Channel.ID); err != nil {
		c.fail(w, r, q, err)
		return
	}
	names, err := c.staffNames(ctx)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	// The conversation is the chats' business: shown to those who may read chats.
	if d.CanChat = q.P.Can(access.ChatsRead); d.CanChat {
		msgs, err := c.Inbox.Messages(ctx, q.Channel.ID, id, 0, 30)
		if err != nil {
			c.fail(w, r, q, err)
			return
		}
		d.Messages = chatMessages(msgs, names)
	}
	if d.Enrolments, err = c.Scenarios.Enrolments(ctx, c.DB, id); err != nil {
		c.fail(w, r, q, err)
		return
	}
	recs, err := c.Delivery.ForFriend(ctx, id, 50)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	d.Timeline = timeline(recs, d.Enrolments, names, q.P.Can(access.FriendsReadPII), d.CanChat)
	if d.CanChat {
		if conv, err := c.Inbox.Get(ctx, q.Channel.ID, id); err == nil {
			d.Conversation = &conv
		} else if !errors.Is(err, store.ErrNotFound) {
			c.fail(w, r, q, err)
			return
		}
	}
	c.render(w, r, status, "friend", "friend.title", q, d)
}

// staffNames maps staff IDs to names, for "who answered".
func (c *Console) staffNames(ctx context.Context) (map[int64]string, error) {
	members, err := c.Staff.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]string, len(members))
	for _, m := range members {
		out[m.ID] = m.Name
	}
	return out, nil
}

// timelineRow is one delivery to the friend: what, when, how, from where, and how it went.
type timelineRow struct {
	At      time.Time
	Source  string // scenario, broadcast, inbox, autoreply, api, ...
	From    string // the scenario and step, the broadcast, the staff member, the rule
	Method  string // reply, push, multicast; empty until sent
	State   string
	Error   string
	Summary string // the first message's text, or its kind
	Kind    string
	More    int // further messages in the same delivery
}

// timeline describes a friend's deliveries. The text of scenario, broadcast and
// auto-reply messages is shown only to members who may read personal data: it was
// rendered from templates and may carry the friend's name or field values. Staff
// replies are shown to those who may read the chats, as in the chat.
func timeline(recs []delivery.Record, enrols []scenario.Enrolment, names map[int64]string, pii, chats bool) []timelineRow {
	scenarioOf := map[int64]string{}
	for _, e := range enrols {
		scenarioOf[e.ID] = e.ScenarioKey
	}
	out := make([]timelineRow, 0, len(recs))
	for _, d := range recs {
		row := timelineRow{At: d.CreatedAt, Source: d.Source, Method: d.Method, State: d.State, Error: d.LastError}
		if !d.SentAt.IsZero() {
			row.At = d.SentAt
		}
		switch d.Source {
		case "scenario":
			row.From = scenarioOf[d.SourceID]
			if d.SourceRef != "" {
				row.From += " / " + d.SourceRef
			}
		case "broadcast":
			row.From = "#" + strconv.FormatInt(d.SourceID, 10)
		case inbox.Source:
			if id, err := strconv.ParseInt(strings.TrimPrefix(d.SourceRef, "staff:"), 10, 64); err == nil {
				row.From = names[id]
			}
		case "autoreply", "api":
			row.From = d.SourceRef
		default:
			row.Source, row.From = "other", d.Source
		}
		var msgs []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		_ = json.Unmarshal(d.Messages, &msgs)
		if len(msgs) > 0 {
			row.Kind, row.More = msgs[0].Type, len(msgs)-1
			if !slices.Contains(messageKinds, row.Kind) {
				row.Kind = "other"
			}
			if msgs[0].Type == "text" && (pii || (chats && d.Source == inbox.Source)) {
				row.Summary = cut(msgs[0].Text, 80)
			}
		}
		out = append(out, row)
	}
	return out
}

// messageKinds are the LINE message types the timeline names.
var messageKinds = []string{"text", "sticker", "image", "video", "audio", "location", "imagemap", "template", "flex"}

func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// minReason and maxReason bound a reveal's stated reason, in characters: "電話で本人確認"
// is enough; a blank or "x" is not a reason.
const (
	minReason = 4
	maxReason = 200
)

// friendReveal shows one masked value — a field's or the display name — to a member who
// may not read personal data, for a stated reason. The value is read in the transaction
// that records the reveal, and shown once: it is not kept anywhere.
func (c *Console) friendReveal(w http.ResponseWriter, r *http.Request, q *request) {
	ctx := r.Context()
	id, ok := pathInt(r, "friendID")
	if !ok {
		c.render(w, r, http.StatusNotFound, "error", "error.notfound", q, "error.notfound")
		return
	}
	key := r.PostFormValue("field")
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	data := map[string]any{"FriendID": id, "Field": key, "Reason": reason, "Label": key}
	var def friend.Field
	if key == "display_name" {
		data["Label"] = translate(q.Lang, "friends.name")
	} else {
		var err error
		def, err = c.Friends.FieldByKey(ctx, c.DB, q.Channel.ID, key)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !def.Sensitivity.Personal()) {
			c.render(w, r, http.StatusNotFound, "error", "error.notfound", q, "error.notfound")
			return
		}
		if err != nil {
			c.fail(w, r, q, err)
			return
		}
		data["Label"] = def.Label
	}
	if n := utf8.RuneCountInString(reason); n < minReason || n > maxReason || strings.ContainsAny(reason, "\r\n\x00") {
		data["Problem"] = "reveal.err.reason"
		c.render(w, r, http.StatusUnprocessableEntity, "reveal", "reveal.title", q, data)
		return
	}
	var value string
	var found bool
	err := c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		f, err := c.Friends.Lookup(ctx, tx, q.Channel.ID, id)
		if err != nil {
			return err
		}
		if key == "display_name" {
			value = f.DisplayName
		} else {
			values, err := c.Friends.FieldValues(ctx, tx, f.ID)
			if err != nil {
				return err
			}
			value = values[key]
		}
		if found = value != ""; !found {
			return nil // nothing to reveal, nothing seen
		}
		return c.record(ctx, tx, r, q, audit.Record{Action: audit.FriendReveal, Subject: audit.Subject("friend", id),
			Fields: []string{key}, Detail: map[string]string{"reason": reason}})
	})
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	data["Value"], data["Found"], data["Revealed"] = value, found, true
	c.render(w, r, http.StatusOK, "reveal", "reveal.title", q, data)
}

// friendAddTag puts a tag on the friend; a member who may define tags can name a new one.
func (c *Console) friendAddTag(w http.ResponseWriter, r *http.Request, q *request) {
	name := strings.TrimSpace(r.PostFormValue("tag"))
	c.friendEdit(w, r, q, "tag", func(ctx context.Context, tx *store.Tx, f friend.Friend) (audit.Record, string, error) {
		t, err := c.Friends.TagByName(ctx, tx, q.Channel.ID, name)
		if errors.Is(err, store.ErrNotFound) {
			if !q.P.Can(access.FieldsManage) {
				return audit.Record{}, "friend.err.notag", nil
			}
			t, err = c.Friends.CreateTag(ctx, tx, q.Channel.ID, name)
			if errors.Is(err, friend.ErrInvalid) {
				return audit.Record{}, "friend.err.tagname", nil
			}
		}
		if err != nil {
			return audit.Record{}, "", err
		}
		if _, err := c.Friends.AddTag(ctx, tx, f.ID, t.ID); err != nil {
			return audit.Record{}, "", err
		}
		return audit.Record{Detail: map[string]string{"tag_added": strconv.FormatInt(t.ID, 10)}}, "", nil
	})
}

func (c *Console) friendRemoveTag(w http.ResponseWriter, r *http.Request, q *request) {
	tagID, ok := pathInt(r, "tagID")
	if !ok {
		c.render(w, r, http.StatusNotFound, "error", "error.notfound", q, "error.notfound")
		return
	}
	c.friendEdit(w, r, q, "untag", func(ctx context.Context, tx *store.Tx, f friend.Friend) (audit.Record, string, error) {
		if _, err := c.Friends.RemoveTag(ctx, tx, f.ID, tagID); err != nil {
			return audit.Record{}, "", err
		}
		return audit.Record{Detail: map[string]string{"tag_removed": strconv.FormatInt(tagID, 10)}}, "", nil
	})
}

// friendSetField sets (or, with an empty value, clears) a field through the friend
// service, so that scenarios waiting on the field start or reschedule.
func (c *Console) friendSetField(w http.ResponseWriter, r *http.Request, q *request) {
	key, value := r.PostFormValue("key"), r.PostFormValue("value")
	c.friendEdit(w, r, q, "field", func(ctx context.Context, tx *store.Tx, f friend.Friend) (audit.Record, string, error) {
		def, err := c.Friends.FieldByKey(ctx, tx, q.Channel.ID, key)
		if errors.Is(err, store.ErrNotFound) {
			return audit.Record{}, "friends.err.nofield", nil
		}
		if err != nil {
			return audit.Record{}, "", err
		}
		op := "set"
		if strings.TrimSpace(value) == "" {
			op, err = "clear", c.Friends.ClearField(ctx, tx, f.ID, def.ID)
		} else {
			_, err = c.Friends.SetField(ctx, tx, f.ID, def, value)
		}
		if errors.Is(err, friend.ErrInvalid) {
			return audit.Record{}, valueProblem[def.Type], nil
		}
		if errors.Is(err, friend.ErrNoConsent) {
			return audit.Record{}, "friend.err.noconsent", nil
		}
		if err != nil {
			return audit.Record{}, "", err
		}
		return audit.Record{Fields: []string{key}, Detail: map[string]string{"op": op}}, "", nil
	})
}

// valueProblem explains, by field type, a value the field refused.
var valueProblem = map[friend.FieldType]string{
	friend.TextField: "friend.err.value_text", friend.NumberField: "friend.err.value_number",
	friend.DateField: "friend.err.value_date", friend.ChoiceField: "friend.err.value_choice",
}

// friendEdit runs one change to a friend and its friend.update audit record in one
// transaction, then returns to the detail page; a refusal (a text key) shows the page
// again with what was typed.
func (c *Console) friendEdit(w http.ResponseWriter, r *http.Request, q *request, what string,
	change func(ctx context.Context, tx *store.Tx, f friend.Friend) (audit.Record, string, error)) {
	ctx := r.Context()
	id, ok := pathInt(r, "friendID")
	if !ok {
		c.render(w, r, http.StatusNotFound, "error", "error.notfound", q, "error.notfound")
		return
	}
	var problem string
	err := c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		problem = ""
		f, err := c.Friends.Lookup(ctx, tx, q.Channel.ID, id)
		if err != nil {
			return err
		}
		rec, p, err := change(ctx, tx, f)
		if err != nil || p != "" {
			problem = p
			return err
		}
		rec.Action, rec.Subject = audit.FriendUpdate, audit.Subject("friend", id)
		return c.record(ctx, tx, r, q, rec)
	})
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	if problem != "" {
		c.showFriend(w, r, q, id, http.StatusUnprocessableEntity, friendDetailData{Problem: problem,
			KeepKey: r.PostFormValue("key"), KeepValue: r.PostFormValue("value")})
		return
	}
	http.Redirect(w, r, "/console/channels/"+q.Channel.ID+"/friends/"+strconv.FormatInt(id, 10)+"?done="+what, http.StatusSeeOther)
}

// chatMessage is one message of a conversation as the console shows it.
type chatMessage struct {
	inbox.Message
	StaffName string
}

func chatMessages(msgs []inbox.Message, names map[int64]string) []chatMessage {
	out := make([]chatMessage, len(msgs))
	for i, m := range msgs {
		out[i] = chatMessage{Message: m, StaffName: names[m.StaffID]}
	}
	return out
}

// friendErase deletes a friend and everything that names them (friend.Erase), after the
// member ticked that they understand it cannot be undone and confirmed who they are; the
// audit record names the friend by ID only. A call carrying them that is out right now
// must end first.
func (c *Console) friendErase(w http.ResponseWriter, r *http.Request, q *request) {
	id, ok := pathInt(r, "friendID")
	if !ok {
		c.render(w, r, http.StatusNotFound, "error", "error.notfound", q, "error.notfound")
		return
	}
	page := "/console/channels/" + q.Channel.ID + "/friends/" + strconv.FormatInt(id, 10)
	if r.PostFormValue("confirm") != "yes" {
		c.showFriend(w, r, q, id, http.StatusUnprocessableEntity, friendDetailData{Problem: "friend.erase.unconfirmed"})
		return
	}
	if !c.recent(w, r, q, page) {
		return
	}
	ctx := r.Context()
	err := c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		if err := c.Friends.Erase(ctx, tx, q.Channel.ID, id); err != nil {
			return err
		}
		return c.record(ctx, tx, r, q, audit.Record{Action: audit.FriendDelete, Subject: audit.Subject("friend", id)})
	})
	if errors.Is(err, delivery.ErrInFlight) {
		c.showFriend(w, r, q, id, http.StatusConflict, friendDetailData{Problem: "friend.erase.inflight"})
		return
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, "/console/channels/"+q.Channel.ID+"/friends?done=erased", http.StatusSeeOther)
}

// consentHows are the ways staff may say they obtained (or were told of the withdrawal
// of) a friend's consent; the record keeps which, and who recorded it.
var consentHows = []string{"paper", "in_person", "form", "other"}

// friendConsent records that the friend gave or withdrew consent to keeping a special
// field, as a staff member obtained it (withdrawing deletes the value).
func (c *Console) friendConsent(w http.ResponseWriter, r *http.Request, q *request) {
	key, how, granted := r.PostFormValue("key"), r.PostFormValue("how"), r.PostFormValue("granted") == "yes"
	c.friendEdit(w, r, q, "consent", func(ctx context.Context, tx *store.Tx, f friend.Friend) (audit.Record, string, error) {
		def, err := c.Friends.FieldByKey(ctx, tx, q.Channel.ID, key)
		if errors.Is(err, store.ErrNotFound) {
			return audit.Record{}, "friends.err.nofield", nil
		}
		if err != nil {
			return audit.Record{}, "", err
		}
		if !slices.Contains(consentHows, how) {
			return audit.Record{}, "friend.err.consenthow", nil
		}
		evidence := "staff:" + strconv.FormatInt(q.Member.ID, 10) + " " + how
		err = c.Friends.RecordConsent(ctx, tx, f.ID, def, granted, friend.ConsentByStaff, evidence, c.Clock.Now())
		if errors.Is(err, friend.ErrInvalid) {
			return audit.Record{}, "friend.err.notspecial", nil
		}
		if err != nil {
			return audit.Record{}, "", err
		}
		return audit.Record{Fields: []string{key}, Detail: map[string]string{"consent": strconv.FormatBool(granted), "how": how}}, "", nil
	})
}
