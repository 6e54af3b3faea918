package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/broadcast"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/idempotency"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/template"
)

// The broadcasts area: the list with progress, the form with its segment builder and
// live recipient count, a confirmation that shows the count before anything is sent,
// and the detail page with Cancel.

func (c *Console) broadcastRoutes(mux *http.ServeMux) {
	base := "/console/channels/{channelID}/broadcasts"
	c.handle(mux, "GET", base, access.BroadcastsRead, c.broadcastList)
	c.handle(mux, "GET", base+"/new", access.BroadcastsWrite, c.broadcastNew)
	// One POST for the form: step=confirm shows the count and what will go out,
	// step=send creates it, step=edit goes back to the form with everything kept.
	c.handle(mux, "POST", base, access.BroadcastsWrite, c.broadcastPost)
	// The live count reads only: whoever may see broadcasts may ask it.
	c.handle(mux, "POST", base+"/count", access.BroadcastsRead, c.broadcastCount)
	c.handle(mux, "GET", base+"/{id}", access.BroadcastsRead, c.broadcastDetail)
	c.handle(mux, "POST", base+"/{id}/cancel", access.BroadcastsWrite, c.broadcastCancel)
}

type bcRow struct {
	broadcast.Broadcast
	When     string
	Progress map[string]int
}

func (c *Console) broadcastList(w http.ResponseWriter, r *http.Request, q *request) {
	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	const page = 50
	list, err := c.Broadcasts.ListBefore(r.Context(), q.Channel.ID, before, page)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	loc := channelZone(q.Channel.TimeZone)
	rows := make([]bcRow, 0, len(list))
	for _, b := range list {
		p, err := c.Broadcasts.Progress(r.Context(), b.ID)
		if err != nil {
			c.fail(w, r, q, err)
			return
		}
		rows = append(rows, bcRow{Broadcast: b, When: zoneTime(q.Lang, loc, b.ScheduledAt), Progress: p})
	}
	next := int64(0)
	if len(list) == page {
		next = list[len(list)-1].ID
	}
	c.render(w, r, http.StatusOK, "broadcasts", "bc.title", q, map[string]any{"Broadcasts": rows, "Next": next})
}

// broadcastForm is the data of the new-broadcast page, in both of its steps.
type bcForm struct {
	Form     segForm
	Problems []formProblem
	Confirm  bool
	// Filled for the confirmation.
	Count    int
	Audience string
	When     string
	Preview  []msgPreview
	// TemplateKey is the saved template the messages are copied from, if any.
	TemplateKey string
	Hidden      []bcHidden
	TZ          string
	// The count asked for without script (step=count), in words.
	CountText, CountWords string
}

type bcHidden struct{ Name, Value string }

func (c *Console) broadcastNew(w http.ResponseWriter, r *http.Request, q *request) {
	now := c.Clock.Now().In(channelZone(q.Channel.TimeZone))
	f := segForm{Mode: "builder", TagMode: "all", Tags: map[string]bool{}, Exclude: map[string]bool{}, Fields: make([]segFieldRow, segFieldRows),
		WhenMode: "now", Date: now.Format(time.DateOnly), Time: now.Truncate(time.Hour).Add(time.Hour).Format("15:04"),
		Source: "text", Msg: messageForm{Lang: q.Lang, Mode: "text"}, ScnState: "active"}
	if err := c.segChoices(r, q, &f); err != nil {
		c.fail(w, r, q, err)
		return
	}
	c.render(w, r, http.StatusOK, "broadcast_new", "bc.new", q, bcForm{Form: f, TZ: q.Channel.TimeZone})
}

// content is the broadcast the form describes, or what is wrong with it.
func (c *Console) bcContent(r *http.Request, q *request, f segForm) (broadcast.Broadcast, []formProblem) {
	b := broadcast.Broadcast{ChannelID: q.Channel.ID, Name: f.Name, CreatedBy: "staff:" + strconv.FormatInt(q.Member.ID, 10)}
	flt, ps := f.filter(r, c, q)
	if ps != nil {
		return b, ps
	}
	b.Segment = flt
	if f.Source == "template" {
		t, err := template.Get(r.Context(), c.DB, q.Channel.ID, f.Template)
		if err != nil {
			return b, formProblemf(q.Lang, "tpl", "bc.tpl.none")
		}
		// The messages are for the confirmation; Create copies them again by the key.
		b.Template, b.TemplateKey = t.Body, t.Key
	} else {
		t, ps := f.Msg.template(q.Lang)
		if ps != nil {
			return b, ps
		}
		b.Template = t
	}
	if ps := b.Template.Validate(); ps != nil {
		shown, _ := formProblems(q.Lang, ps)
		return b, shown
	}
	if f.WhenMode == "later" {
		at, err := time.ParseInLocation("2006-01-02 15:04", f.Date+" "+f.Time, channelZone(q.Channel.TimeZone))
		if err != nil {
			return b, formProblemf(q.Lang, "date", "bc.when.bad")
		}
		if !at.After(c.Clock.Now()) {
			return b, formProblemf(q.Lang, "date", "bc.when.past")
		}
		b.ScheduledAt = at
	}
	return b, nil
}

func (c *Console) broadcastPost(w http.ResponseWriter, r *http.Request, q *request) {
	ctx := r.Context()
	f := readSegForm(r, q.Lang)
	if err := c.segChoices(r, q, &f); err != nil {
		c.fail(w, r, q, err)
		return
	}
	page := bcForm{Form: f, TZ: q.Channel.TimeZone}
	again := func(ps []formProblem) {
		page.Problems = ps
		c.render(w, r, http.StatusUnprocessableEntity, "broadcast_new", "bc.new", q, page)
	}
	step := r.PostFormValue("step")
	switch step {
	case "edit":
		c.render(w, r, http.StatusOK, "broadcast_new", "bc.new", q, page)
		return
	case "count":
		// The count without script: the form again, with the number. segment.js asks
		// /count instead, as the builder changes.
		flt, ps := f.filter(r, c, q)
		if ps != nil {
			again(ps)
			return
		}
		n, err := c.Broadcasts.Count(ctx, q.Channel.ID, flt)
		if errors.Is(err, broadcast.ErrInvalid) {
			again(formProblemf(q.Lang, "segment", "bc.seg.bad", err.Error()))
			return
		}
		if err != nil {
			c.fail(w, r, q, err)
			return
		}
		page.CountText, page.CountWords = fmt.Sprintf(translate(q.Lang, "bc.count"), n), segmentWords(q.Lang, flt)
		c.render(w, r, http.StatusOK, "broadcast_new", "bc.new", q, page)
		return
	}
	b, ps := c.bcContent(r, q, f)
	if ps != nil {
		again(ps)
		return
	}
	n, err := c.Broadcasts.Count(ctx, q.Channel.ID, b.Segment)
	if errors.Is(err, broadcast.ErrInvalid) {
		again(formProblemf(q.Lang, "segment", "bc.seg.bad", err.Error()))
		return
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	confirm := func(status int) {
		page.Confirm, page.Count, page.Audience = true, n, segmentWords(q.Lang, b.Segment)
		page.Preview, page.TemplateKey = msgPreviews(q.Lang, b.Template.Messages), b.TemplateKey
		page.When = translate(q.Lang, "bc.when.now")
		if !b.ScheduledAt.IsZero() {
			page.When = zoneTime(q.Lang, channelZone(q.Channel.TimeZone), b.ScheduledAt) + " (" + q.Channel.TimeZone + ")"
		}
		for k, vs := range r.PostForm {
			if k == "csrf" || k == "step" || k == "tpl_sum" || k == "send_key" {
				continue
			}
			for _, v := range vs {
				page.Hidden = append(page.Hidden, bcHidden{k, v})
			}
		}
		if b.TemplateKey != "" {
			page.Hidden = append(page.Hidden, bcHidden{"tpl_sum", contentSum(b.Template)})
		}
		// Each confirmation names its send: pressed twice, or sent again by the browser,
		// it makes one broadcast.
		page.Hidden = append(page.Hidden, bcHidden{"send_key", rand.Text()})
		c.render(w, r, status, "broadcast_new", "bc.confirm", q, page)
	}
	if step != "send" {
		confirm(http.StatusOK)
		return
	}
	want := b
	if want.TemplateKey != "" {
		want.Template = message.Template{} // Create copies the template by its key
	}
	key := sendKey(r, q)
	var made broadcast.Broadcast
	var sentBefore string // where the first send with this confirmation led
	err = c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		var err error
		if key != nil {
			first, err := idempotency.Claim(ctx, tx, *key, c.Clock.Now())
			if err != nil || first != nil {
				if first != nil {
					sentBefore = string(first.Body)
				}
				return err
			}
		}
		if made, err = c.Broadcasts.Create(ctx, tx, want); err != nil {
			return err
		}
		detail := map[string]string{"recipients_counted": strconv.Itoa(n)}
		if made.TemplateKey != "" {
			// Sent as confirmed, or not at all: the template may have been edited since.
			if contentSum(made.Template) != r.PostFormValue("tpl_sum") {
				return errTemplateChanged
			}
			detail["template"] = made.TemplateKey
		}
		if key != nil {
			if err := idempotency.Save(ctx, tx, *key, idempotency.Answer{Status: http.StatusSeeOther,
				Body: []byte(broadcastPath(q, made.ID))}); err != nil {
				return err
			}
		}
		return c.record(ctx, tx, r, q, audit.Record{Action: "broadcast.create", Subject: audit.Subject("broadcast", made.ID), Detail: detail})
	})
	if err == nil && sentBefore != "" {
		http.Redirect(w, r, sentBefore, http.StatusSeeOther) // the broadcast the first press made
		return
	}
	if errors.Is(err, idempotency.ErrReused) {
		page.Problems = formProblemf(q.Lang, "send", "bc.send.reused")
		confirm(http.StatusConflict)
		return
	}
	if errors.Is(err, errTemplateChanged) {
		// Confirm again, showing what the template says now.
		b.Template = made.Template
		page.Problems = formProblemf(q.Lang, "tpl", "bc.tpl.changed")
		confirm(http.StatusConflict)
		return
	}
	if ps, ok := formProblems(q.Lang, err); ok {
		again(ps)
		return
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, broadcastPath(q, made.ID), http.StatusSeeOther)
}

// broadcastPath is the console page of a broadcast.
func broadcastPath(q *request, id int64) string {
	return inChannel(q, "/broadcasts/"+strconv.FormatInt(id, 10))
}

// sendKey is the idempotency key of a confirmed send: the confirmation's own key, with
// the form it confirmed. nil for a form without one (a page older than the key).
func sendKey(r *http.Request, q *request) *idempotency.Key {
	name := r.PostFormValue("send_key")
	if name == "" || len(name) > 64 {
		return nil
	}
	var parts [][]byte
	for _, k := range slices.Sorted(maps.Keys(r.PostForm)) {
		if k == "csrf" || k == "send_key" {
			continue
		}
		for _, v := range r.PostForm[k] {
			parts = append(parts, []byte(k), []byte(v))
		}
	}
	return &idempotency.Key{Scope: "staff:" + strconv.FormatInt(q.Member.ID, 10), Name: name,
		Route: "console: broadcast send", Channel: q.Channel.ID, Hash: idempotency.Hash(parts...)}
}

// errTemplateChanged: the saved template's messages are not those the confirmation
// showed.
var errTemplateChanged = errors.New("console: the template changed since the confirmation")

// contentSum identifies messages: the confirmation carries the sum of a saved
// template's, so that an edit between the confirmation and the send is noticed.
func contentSum(t message.Template) string {
	raw, err := json.Marshal(t)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:16])
}

// broadcastCount answers the builder's live count: {"count": 12, "text": "12人"}, or
// {"error": "..."} with 422 while the segment is not complete.
func (c *Console) broadcastCount(w http.ResponseWriter, r *http.Request, q *request) {
	f := readSegForm(r, q.Lang)
	var err error
	if f.TagList, err = c.Friends.Tags(r.Context(), q.Channel.ID); err != nil {
		c.jsonFail(w, r, err)
		return
	}
	flt, ps := f.filter(r, c, q)
	answer := map[string]any{}
	status := http.StatusOK
	if ps != nil {
		answer["error"], status = ps[0].Text, http.StatusUnprocessableEntity
	} else if n, err := c.Broadcasts.Count(r.Context(), q.Channel.ID, flt); errors.Is(err, broadcast.ErrInvalid) {
		answer["error"], status = fmt.Sprintf(translate(q.Lang, "bc.seg.bad"), err.Error()), http.StatusUnprocessableEntity
	} else if err != nil {
		c.jsonFail(w, r, err)
		return
	} else {
		answer["count"], answer["text"] = n, fmt.Sprintf(translate(q.Lang, "bc.count"), n)
		answer["audience"] = segmentWords(q.Lang, flt)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(answer)
}

func (c *Console) jsonFail(w http.ResponseWriter, r *http.Request, err error) {
	c.Logger.Error("console: request failed", "path", r.Pattern, "err", err)
	http.Error(w, `{"error":"internal error"}`, http.StatusInternalServerError)
}

type bcPage struct {
	B         broadcast.Broadcast
	State     string
	Audience  string
	When      string
	Started   string
	Finished  string
	Preview   []msgPreview
	Progress  map[string]int
	States    []bcProgressRow
	CanCancel bool
	Notice    string
}

type bcProgressRow struct {
	State, Label string
	N            int
}

// cancellable: nothing more is queued once cancelled; a done broadcast may still have
// deliveries no dispatcher has taken (the API's rule, the same here).
func bcCancellable(b broadcast.Broadcast, p map[string]int) bool {
	switch b.State {
	case broadcast.Scheduled, broadcast.Sending:
		return true
	case broadcast.Done, broadcast.Failed:
		return p[delivery.Pending]+p[delivery.Sending] > 0
	}
	return false
}

func (c *Console) broadcastDetail(w http.ResponseWriter, r *http.Request, q *request) {
	id, ok := pathInt(r, "id")
	if !ok {
		c.render(w, r, http.StatusNotFound, "error", "error.notfound", q, "error.notfound")
		return
	}
	b, err := c.Broadcasts.Get(r.Context(), q.Channel.ID, id)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	p, err := c.Broadcasts.Progress(r.Context(), b.ID)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	loc := channelZone(q.Channel.TimeZone)
	page := bcPage{B: b, State: keyed(q.Lang, "bc.state.%s", b.State), Audience: segmentWords(q.Lang, b.Segment),
		When: zoneTime(q.Lang, loc, b.ScheduledAt), Started: zoneTime(q.Lang, loc, b.StartedAt), Finished: zoneTime(q.Lang, loc, b.FinishedAt),
		Preview: msgPreviews(q.Lang, b.Template.Messages), Progress: p, CanCancel: bcCancellable(b, p)}
	for _, st := range []string{delivery.Sent, delivery.Failed, delivery.Dropped, delivery.Cancelled, delivery.Pending, delivery.Sending} {
		page.States = append(page.States, bcProgressRow{State: st, Label: keyed(q.Lang, "bc.progress.%s", st), N: p[st]})
	}
	if r.URL.Query().Get("notice") == "cancelled" {
		page.Notice = fmt.Sprintf(translate(q.Lang, "bc.cancelled"), r.URL.Query().Get("n"))
	}
	c.render(w, r, http.StatusOK, "broadcast", "bc.detail", q, page)
}

func (c *Console) broadcastCancel(w http.ResponseWriter, r *http.Request, q *request) {
	id, ok := pathInt(r, "id")
	if !ok {
		c.render(w, r, http.StatusNotFound, "error", "error.notfound", q, "error.notfound")
		return
	}
	// The audit record is written in the cancel's own transaction: both happen, or neither.
	var n int64
	err := c.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		var err error
		if n, err = c.Broadcasts.CancelTx(r.Context(), tx, q.Channel.ID, id); err != nil {
			return err
		}
		return c.record(r.Context(), tx, r, q, audit.Record{Action: "broadcast.cancel", Subject: audit.Subject("broadcast", id),
			Detail: map[string]string{"cancelled_deliveries": strconv.FormatInt(n, 10)}})
	})
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, inChannel(q, fmt.Sprintf("/broadcasts/%d?notice=cancelled&n=%d", id, n)), http.StatusSeeOther)
}

// broadcastLink is where a delivery of a broadcast is shown.
func broadcastLink(channelID string, id int64) string {
	return "/console/channels/" + url.PathEscape(channelID) + "/broadcasts/" + strconv.FormatInt(id, 10)
}
