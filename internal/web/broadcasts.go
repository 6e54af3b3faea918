package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/broadcast"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/segment"
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

// segForm is the segment part of the broadcast form, as typed.
type segForm struct {
	Mode      string // builder | saved | yaml
	Tags      map[string]bool
	TagMode   string // all | any
	Exclude   map[string]bool
	Fields    []segFieldRow
	Status    string // "" (followers) | blocked | unknown | any
	Within    string // followed within so many days
	Before    string // followed so many days ago or earlier
	Scenario  string
	ScnState  string
	SavedKey  string
	YAML      string
	WhenMode  string // now | later
	Date      string
	Time      string
	Name      string
	Source    string // text | template
	Template  string
	Msg       messageForm
	TagList   []friend.Tag
	FieldList []friend.Field
	Scenarios []scenario.Scenario
	Saved     []segment.Saved
	TplList   []template.Template
	// What the selects offer.
	Ops, Statuses, ScnStates []string
}

type segFieldRow struct{ Key, Op, Value string }

const segFieldRows = 3

func readSegForm(r *http.Request, lang string) segForm {
	f := segForm{Mode: r.PostFormValue("seg_mode"), Tags: map[string]bool{}, Exclude: map[string]bool{},
		TagMode: r.PostFormValue("tag_mode"), Status: r.PostFormValue("status"),
		Within: strings.TrimSpace(r.PostFormValue("within")), Before: strings.TrimSpace(r.PostFormValue("before")),
		Scenario: r.PostFormValue("scn"), ScnState: r.PostFormValue("scn_state"), SavedKey: r.PostFormValue("segment"),
		YAML: r.PostFormValue("seg_yaml"), WhenMode: r.PostFormValue("when"), Date: r.PostFormValue("date"),
		Time: r.PostFormValue("time"), Name: strings.TrimSpace(r.PostFormValue("name")),
		Source: r.PostFormValue("source"), Template: r.PostFormValue("tpl"), Msg: readMessageForm(r, lang)}
	for _, t := range r.PostForm["tag"] {
		f.Tags[t] = true
	}
	for _, t := range r.PostForm["xtag"] {
		f.Exclude[t] = true
	}
	keys, ops, vals := r.PostForm["fkey"], r.PostForm["fop"], r.PostForm["fval"]
	for i := range segFieldRows {
		var row segFieldRow
		if i < len(keys) {
			row.Key = keys[i]
		}
		if i < len(ops) {
			row.Op = ops[i]
		}
		if i < len(vals) {
			row.Value = strings.TrimSpace(vals[i])
		}
		f.Fields = append(f.Fields, row)
	}
	return f
}

// filter builds the segment the form describes.
func (f segForm) filter(r *http.Request, c *Console, q *request) (segment.Filter, []formProblem) {
	lang := q.Lang
	switch f.Mode {
	case "saved":
		s, err := segment.GetSegment(r.Context(), c.DB, q.Channel.ID, f.SavedKey)
		if err != nil {
			return segment.Filter{}, formProblemf(lang, "segment", "bc.seg.nosaved")
		}
		return s.Filter, nil
	case "yaml":
		flt, err := segment.Parse([]byte(f.YAML))
		if err != nil {
			return segment.Filter{}, formProblemf(lang, "seg_yaml", "bc.seg.bad", err.Error())
		}
		return flt, nil
	}
	var parts []segment.Filter
	var tags []segment.Filter
	for _, t := range f.TagList {
		if f.Tags[t.Name] {
			tags = append(tags, segment.Filter{Tag: t.Name})
		}
	}
	if f.TagMode == "any" && len(tags) > 1 {
		parts = append(parts, segment.Filter{Any: tags})
	} else {
		parts = append(parts, tags...)
	}
	var ex []segment.Filter
	for _, t := range f.TagList {
		if f.Exclude[t.Name] {
			ex = append(ex, segment.Filter{Tag: t.Name})
		}
	}
	switch len(ex) {
	case 0:
	case 1:
		parts = append(parts, segment.Filter{Not: &ex[0]})
	default:
		parts = append(parts, segment.Filter{Not: &segment.Filter{Any: ex}})
	}
	for _, row := range f.Fields {
		if row.Key != "" {
			parts = append(parts, segment.Filter{Field: &segment.FieldCond{Key: row.Key, Op: row.Op, Value: row.Value}})
		}
	}
	if f.Status != "" {
		parts = append(parts, segment.Filter{Status: f.Status})
	}
	for _, d := range []struct {
		text, path string
		within     bool
	}{{f.Within, "within", true}, {f.Before, "before", false}} {
		if d.text == "" {
			continue
		}
		n, err := strconv.Atoi(d.text)
		if err != nil || n <= 0 || n > 36500 {
			return segment.Filter{}, formProblemf(lang, d.path, "bc.seg.days.bad")
		}
		dur := segment.Duration(time.Duration(n) * 24 * time.Hour)
		if d.within {
			parts = append(parts, segment.Filter{FollowedWithin: dur})
		} else {
			parts = append(parts, segment.Filter{FollowedBefore: dur})
		}
	}
	if f.Scenario != "" {
		parts = append(parts, segment.Filter{Scenario: &segment.ScenarioCond{Key: f.Scenario, State: f.ScnState}})
	}
	var flt segment.Filter
	switch len(parts) {
	case 0:
	case 1:
		flt = parts[0]
	default:
		flt = segment.Filter{All: parts}
	}
	if err := flt.Validate(); err != nil {
		return segment.Filter{}, formProblemf(lang, "segment", "bc.seg.bad", err.Error())
	}
	return flt, nil
}

// choices fills the lists the builder offers.
func (c *Console) segChoices(r *http.Request, q *request, f *segForm) error {
	ctx := r.Context()
	f.Ops = []string{"eq", "ne", "contains", "prefix", "gt", "gte", "lt", "lte", "before", "after", "set", "unset"}
	f.Statuses = []string{"blocked", "unknown", "any"}
	f.ScnStates = []string{"active", "completed", "stopped", "ever", "never"}
	var err error
	if f.TagList, err = c.Friends.Tags(ctx, q.Channel.ID); err != nil {
		return err
	}
	if f.FieldList, err = c.Friends.Fields(ctx, q.Channel.ID); err != nil {
		return err
	}
	if f.Scenarios, err = c.Scenarios.List(ctx, q.Channel.ID); err != nil {
		return err
	}
	if f.Saved, err = segment.ListSegments(ctx, c.DB, q.Channel.ID); err != nil {
		return err
	}
	f.TplList, err = template.List(ctx, c.DB, q.Channel.ID)
	return err
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
	Hidden   []bcHidden
	TZ       string
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
		b.Template = t.Body
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
	if step != "send" {
		page.Confirm, page.Count, page.Audience = true, n, segmentWords(q.Lang, b.Segment)
		page.Preview = msgPreviews(q.Lang, b.Template.Messages)
		page.When = translate(q.Lang, "bc.when.now")
		if !b.ScheduledAt.IsZero() {
			page.When = zoneTime(q.Lang, channelZone(q.Channel.TimeZone), b.ScheduledAt) + " (" + q.Channel.TimeZone + ")"
		}
		for k, vs := range r.PostForm {
			if k == "csrf" || k == "step" {
				continue
			}
			for _, v := range vs {
				page.Hidden = append(page.Hidden, bcHidden{k, v})
			}
		}
		c.render(w, r, http.StatusOK, "broadcast_new", "bc.confirm", q, page)
		return
	}
	err = c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		var err error
		if b, err = c.Broadcasts.Create(ctx, tx, b); err != nil {
			return err
		}
		return c.record(ctx, tx, r, q, audit.Record{Action: "broadcast.create", Subject: audit.Subject("broadcast", b.ID),
			Detail: map[string]string{"recipients_counted": strconv.Itoa(n)}})
	})
	if ps, ok := formProblems(q.Lang, err); ok {
		again(ps)
		return
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, inChannel(q, "/broadcasts/"+strconv.FormatInt(b.ID, 10)), http.StatusSeeOther)
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
	// Cancel runs its own transaction; the audit record follows it. A record missing
	// after a crash between the two would understate, never invent, an act.
	n, err := c.Broadcasts.Cancel(r.Context(), q.Channel.ID, id)
	if err == nil {
		err = c.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
			return c.record(r.Context(), tx, r, q, audit.Record{Action: "broadcast.cancel", Subject: audit.Subject("broadcast", id),
				Detail: map[string]string{"cancelled_deliveries": strconv.FormatInt(n, 10)}})
		})
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, inChannel(q, fmt.Sprintf("/broadcasts/%d?notice=cancelled&n=%d", id, n)), http.StatusSeeOther)
}

// filterWords says who a segment selects, in words.
func segmentWords(lang string, f segment.Filter) string {
	if f.IsEmpty() {
		return translate(lang, "seg.everyone")
	}
	s := segNodeWords(lang, f, true)
	if !segNamesStatus(f) {
		s += translate(lang, "seg.followersonly")
	}
	return s
}

func segNamesStatus(f segment.Filter) bool {
	if f.Status != "" {
		return true
	}
	for _, sub := range append(append([]segment.Filter{}, f.All...), f.Any...) {
		if segNamesStatus(sub) {
			return true
		}
	}
	return f.Not != nil && segNamesStatus(*f.Not)
}

func segNodeWords(lang string, f segment.Filter, top bool) string {
	tr := func(key string, args ...any) string { return fmt.Sprintf(translate(lang, key), args...) }
	join := func(list []segment.Filter, sep string) string {
		parts := make([]string, len(list))
		for i, sub := range list {
			parts[i] = segNodeWords(lang, sub, false)
		}
		s := strings.Join(parts, translate(lang, sep))
		if !top && len(list) > 1 {
			s = "(" + s + ")"
		}
		return s
	}
	switch {
	case f.All != nil:
		return join(f.All, "seg.and")
	case f.Any != nil:
		return join(f.Any, "seg.or")
	case f.Not != nil:
		return tr("seg.not", segNodeWords(lang, *f.Not, false))
	case f.Tag != "":
		return tr("seg.tag", f.Tag)
	case f.Field != nil && (f.Field.Op == "set" || f.Field.Op == "unset"):
		return tr(fmt.Sprintf("seg.op.%s", f.Field.Op), f.Field.Key)
	case f.Field != nil:
		return tr(fmt.Sprintf("seg.op.%s", f.Field.Op), f.Field.Key, f.Field.Value)
	case f.Status != "":
		return keyed(lang, "seg.status.%s", f.Status)
	case f.FollowedWithin != 0:
		return tr("seg.within", spanWords(lang, f.FollowedWithin))
	case f.FollowedBefore != 0:
		return tr("seg.before", spanWords(lang, f.FollowedBefore))
	case f.Scenario != nil:
		return tr(fmt.Sprintf("seg.scn.%s", f.Scenario.State), f.Scenario.Key)
	}
	return ""
}

// broadcastLink is where a delivery of a broadcast is shown.
func broadcastLink(channelID string, id int64) string {
	return "/console/channels/" + url.PathEscape(channelID) + "/broadcasts/" + strconv.FormatInt(id, 10)
}
