package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/broadcast"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/idempotency"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/store"
)

// broadcastJSON is a broadcast. The list leaves out its segment and messages (they can
// be long) and its progress (a count per broadcast).
type broadcastJSON struct {
	ID           int64      `json:"id"`
	Name         string     `json:"name"`
	State        string     `json:"state"`
	Personalised bool       `json:"personalised"`
	ScheduledAt  *time.Time `json:"scheduled_at"`
	StartedAt    *time.Time `json:"started_at"`
	FinishedAt   *time.Time `json:"finished_at"`
	Recipients   int        `json:"recipients"`
	Skipped      int        `json:"skipped"`
	LastError    string     `json:"last_error,omitempty"`
	CreatedBy    string     `json:"created_by,omitempty"`
	CreatedAt    *time.Time `json:"created_at"`
	// TemplateKey is the saved template the messages were copied from.
	TemplateKey string `json:"template_key,omitempty"`

	Segment  *segment.Filter   `json:"segment,omitempty"`
	Messages []message.Message `json:"messages,omitempty"`
	Progress map[string]int    `json:"progress,omitempty"`
	// CancelledDeliveries is what a cancel took back from the outbox.
	CancelledDeliveries *int64 `json:"cancelled_deliveries,omitempty"`
}

func toBroadcastJSON(b broadcast.Broadcast, detail bool) broadcastJSON {
	out := broadcastJSON{ID: b.ID, Name: b.Name, State: b.State, Personalised: b.Template.Personalised(),
		ScheduledAt: at(b.ScheduledAt), StartedAt: at(b.StartedAt), FinishedAt: at(b.FinishedAt),
		Recipients: b.Recipients, Skipped: b.Skipped, LastError: b.LastError, CreatedBy: b.CreatedBy, CreatedAt: at(b.CreatedAt),
		TemplateKey: b.TemplateKey}
	if detail {
		out.Segment, out.Messages = &b.Segment, b.Template.Messages
		out.Progress = map[string]int{}
		for _, st := range deliveryStates {
			out.Progress[st] = 0
		}
	}
	return out
}

var deliveryStates = []string{delivery.Pending, delivery.Sending, delivery.Sent, delivery.Failed, delivery.Dropped, delivery.Cancelled}

func (a *API) broadcastRoutes() []route {
	return []route{
		// Not under /broadcasts: a literal beside /broadcasts/{id} would clash with it.
		{"POST", "/api/v1/channels/{ch}/recipients/count", access.BroadcastsRead, a.countRecipients},
		{"GET", "/api/v1/channels/{ch}/broadcasts", access.BroadcastsRead, a.listBroadcasts},
		{"POST", "/api/v1/channels/{ch}/broadcasts", access.BroadcastsWrite, a.createBroadcast},
		{"GET", "/api/v1/channels/{ch}/broadcasts/{id}", access.BroadcastsRead, a.getBroadcast},
		{"POST", "/api/v1/channels/{ch}/broadcasts/{id}/cancel", access.BroadcastsWrite, a.cancelBroadcast},
	}
}

var errNoBroadcast = notFound("broadcast", "配信")

// audienceRequest names who a broadcast goes to: a filter written in the request, or
// a saved segment.
type audienceRequest struct {
	Segment    json.RawMessage `json:"segment"`
	SegmentKey string          `json:"segment_key"`
}

// audience is the filter a request names, with the problems found in it. A missing
// filter is a problem rather than "every follower": a forgotten key must not send to
// everyone ({} says that).
func (a *API) audience(ctx context.Context, ch string, req audienceRequest) (segment.Filter, []Problem, error) {
	var f segment.Filter
	raw := bytes.TrimSpace(req.Segment)
	given := len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
	switch {
	case given && req.SegmentKey != "":
		return f, []Problem{{Path: "segment_key", EN: "give segment or segment_key, not both", JA: "segment と segment_key はどちらか一方だけを指定してください"}}, nil
	case req.SegmentKey != "":
		s, err := segment.GetSegment(ctx, a.cfg.DB, ch, req.SegmentKey)
		if errors.Is(err, store.ErrNotFound) {
			return f, []Problem{{Path: "segment_key", EN: "there is no saved segment of this key", JA: "このキーの保存済みセグメントはありません"}}, nil
		}
		return s.Filter, nil, err
	case !given:
		return f, []Problem{{Path: "segment", EN: "say who receives it: a segment filter ({} for every follower) or a segment_key",
			JA: "配信先を segment(全員なら {})か segment_key で指定してください"}}, nil
	case raw[0] != '{':
		return f, []Problem{{Path: "segment", EN: "give the segment as a JSON object ({} for every follower)",
			JA: "segment は JSON オブジェクトで指定してください(全員なら {})"}}, nil
	}
	if p, ok := decodePart(raw, "segment", &f); !ok {
		return f, []Problem{p}, nil
	}
	if err := f.Validate(); err != nil {
		return f, []Problem{segmentProblem(err, "segment")}, nil
	}
	return f, nil, nil
}

// decodePart decodes one value of a body, refusing unknown keys, and says where it
// went wrong: the body is decoded with such parts kept raw so that problems can name
// their path.
func decodePart(raw []byte, path string, v any) (Problem, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return Problem{}, true
	}
	if p, ok := jsonProblem(err, path); ok {
		return p, false
	}
	// A value its type refuses, such as a duration that is not one: say how to write
	// durations, the only such values, rather than repeat what was sent.
	return Problem{Path: path, EN: "a value is not of the expected form (durations are written like 90m, 36h, 7d or 2w)",
		JA: "値の形が正しくありません(期間は 90m、36h、7d、2w のように書きます)"}, false
}

// segmentProblem describes an error about a filter at its node, under path.
func segmentProblem(err error, path string) Problem {
	var e *segment.Error
	if !errors.As(err, &e) {
		return Problem{Path: path, EN: "the segment is not valid", JA: "配信先の条件が正しくありません"}
	}
	// The segment package quotes what was written; answers do not repeat values sent.
	en, ja := quoted.ReplaceAllString(e.Msg, "(the value)"), "この条件の書き方が正しくありません(en を参照)"
	switch {
	case strings.HasPrefix(e.Msg, "unknown tag"):
		en, ja = "there is no tag of this name", "このタグはありません"
	case strings.HasPrefix(e.Msg, "unknown field"):
		en, ja = "there is no field of this key", "この項目はありません"
	case strings.HasPrefix(e.Msg, "unknown scenario"):
		en, ja = "there is no scenario of this key", "このシナリオはありません"
	}
	if e.Path != "" && path != "segment_key" {
		path = strings.TrimPrefix(path+"."+e.Path, ".")
	}
	return Problem{Path: path, EN: en, JA: ja}
}

var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// countRecipients answers how many friends a segment selects now: what to check before
// sending. The count can change by the time a broadcast goes out.
func (a *API) countRecipients(w http.ResponseWriter, r *http.Request, c *call) error {
	var req audienceRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	f, ps, err := a.audience(r.Context(), c.channel, req)
	if err != nil {
		return err
	}
	if ps != nil {
		return invalidInput(ps...)
	}
	n, err := a.cfg.Broadcasts.Count(r.Context(), c.channel, f)
	if errors.Is(err, broadcast.ErrInvalid) {
		path := "segment"
		if req.SegmentKey != "" {
			path = "segment_key"
		}
		return invalidInput(segmentProblem(err, path))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"recipients": n})
	return nil
}

// createBroadcast stores a broadcast to send now or at scheduled_at. Content with
// variables is rendered per friend and sent by push; the same content for everyone
// goes by multicast. The messages are given, or copied from a saved template
// (template_key) as the broadcast is created. Problems come back with paths into the
// request body.
func (a *API) createBroadcast(w http.ResponseWriter, r *http.Request, c *call) error {
	var req struct {
		audienceRequest
		Name        string          `json:"name"`
		Messages    json.RawMessage `json:"messages"`
		TemplateKey string          `json:"template_key"`
		ScheduledAt *string         `json:"scheduled_at"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	f, ps, err := a.audience(r.Context(), c.channel, req.audienceRequest)
	if err != nil {
		return err
	}
	var tpl message.Template
	raw := bytes.TrimSpace(req.Messages)
	given := len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
	switch {
	case given && req.TemplateKey != "":
		ps = append(ps, Problem{Path: "template_key", EN: "give messages or template_key, not both",
			JA: "messages と template_key はどちらか一方だけを指定してください"})
	case req.TemplateKey != "":
		// The service reads the template in the transaction that creates the broadcast.
	case !given:
		ps = append(ps, Problem{Path: "messages", EN: "give the messages (1 to 5 LINE message objects) or the template_key of a saved template",
			JA: "messages に送るメッセージを1〜5件指定するか、template_key に保存済みテンプレートのキーを指定してください"})
	case raw[0] != '[':
		ps = append(ps, Problem{Path: "messages", EN: "give the messages as a JSON array", JA: "messages は JSON の配列で指定してください"})
	default:
		if p, ok := decodePart(raw, "messages", &tpl.Messages); !ok {
			ps = append(ps, p)
		} else if ps != nil {
			ps = append(ps, templateProblems(tpl.Validate())...) // every problem at once
		}
	}
	var when time.Time
	if req.ScheduledAt != nil && *req.ScheduledAt != "" {
		t, p, err := a.parseTime(r.Context(), c.channel, *req.ScheduledAt, "scheduled_at")
		if err != nil {
			return err
		}
		if p != nil {
			ps = append(ps, *p)
		}
		when = t
	}
	if ps != nil {
		return invalidInput(ps...)
	}
	key, err := idempotentOf(r, c, "POST /api/v1/channels/{ch}/broadcasts", req)
	if err != nil {
		return err
	}
	var b broadcast.Broadcast
	var answer *idempotency.Answer
	replayed := false
	err = a.cfg.DB.WriteTx(r.Context(), func(tx *store.Tx) error {
		first, err := key.claim(r.Context(), tx, a.cfg.Clock.Now())
		if err != nil || first != nil {
			answer, replayed = first, first != nil
			return err
		}
		b, err = a.cfg.Broadcasts.Create(r.Context(), tx, broadcast.Broadcast{ChannelID: c.channel, Name: req.Name, Segment: f,
			Template: tpl, TemplateKey: req.TemplateKey, ScheduledAt: when, CreatedBy: "api-token:" + strconv.FormatInt(c.token.ID, 10)})
		if err != nil {
			return err
		}
		answer, err = key.answer(r.Context(), tx, http.StatusCreated, toBroadcastJSON(b, true))
		return err
	})
	var mps message.Problems
	if errors.Is(err, broadcast.ErrInvalid) && errors.As(err, &mps) {
		out := a.broadcastProblems(r.Context(), c.channel, req.SegmentKey, f, mps)
		if req.TemplateKey != "" {
			// The messages came from the saved template, not the body: say so.
			for i, p := range out {
				if strings.HasPrefix(p.Path, "messages") {
					out[i].Path = "template_key"
				}
			}
		}
		return invalidInput(out...)
	}
	if err != nil {
		return err
	}
	writeAnswer(w, answer, replayed)
	return nil
}

// templateProblems puts a template's problems at their paths in a request body, where
// the messages are at the top.
func templateProblems(ps message.Problems) []Problem {
	out := make([]Problem, 0, len(ps))
	for _, p := range ps {
		p.Path = strings.TrimPrefix(p.Path, "template.")
		if p.Path == "template" {
			p.Path = "messages"
		}
		out = append(out, p)
	}
	return out
}

// broadcastProblems puts the service's problems at their paths in the request: the
// service says only "segment" for a filter that does not resolve, so it is resolved
// again here to name the node.
func (a *API) broadcastProblems(ctx context.Context, ch, savedKey string, f segment.Filter, ps message.Problems) []Problem {
	out := templateProblems(ps)
	for i, p := range out {
		if p.Path != "segment" {
			continue
		}
		path := "segment"
		if savedKey != "" {
			path = "segment_key"
		}
		if _, err := segment.Resolve(ctx, a.cfg.DB, ch, f); errors.Is(err, segment.ErrInvalid) {
			out[i] = segmentProblem(err, path)
		} else {
			out[i].Path = path
		}
	}
	return out
}

func (a *API) listBroadcasts(w http.ResponseWriter, r *http.Request, c *call) error {
	q := r.URL.Query()
	limit, ps := queryInt(q, "limit", 20, 1, 100)
	after, p := queryInt(q, "after", 0, 0, math.MaxInt64)
	if ps = append(ps, p...); len(ps) > 0 {
		return invalidInput(ps...)
	}
	bs, err := a.cfg.Broadcasts.ListBefore(r.Context(), c.channel, after, int(limit))
	if err != nil {
		return err
	}
	out := make([]broadcastJSON, 0, len(bs))
	for _, b := range bs {
		out = append(out, toBroadcastJSON(b, false))
	}
	body := map[string]any{"broadcasts": out}
	if len(bs) == int(limit) {
		body["next_after"] = bs[len(bs)-1].ID
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// broadcast returns the broadcast named by the {id} path parameter, in the call's
// channel.
func (a *API) broadcast(r *http.Request, c *call) (broadcast.Broadcast, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return broadcast.Broadcast{}, errNoBroadcast
	}
	b, err := a.cfg.Broadcasts.Get(r.Context(), c.channel, id)
	if errors.Is(err, store.ErrNotFound) {
		return broadcast.Broadcast{}, errNoBroadcast
	}
	return b, err
}

// detail is a broadcast with its progress: its deliveries by state.
func (a *API) detail(ctx context.Context, b broadcast.Broadcast) (broadcastJSON, error) {
	out := toBroadcastJSON(b, true)
	p, err := a.cfg.Broadcasts.Progress(ctx, b.ID)
	if err != nil {
		return out, err
	}
	for st, n := range p {
		out.Progress[st] = n
	}
	return out, nil
}

func (a *API) getBroadcast(w http.ResponseWriter, r *http.Request, c *call) error {
	b, err := a.broadcast(r, c)
	if err != nil {
		return err
	}
	out, err := a.detail(r.Context(), b)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// cancelBroadcast stops a broadcast: nobody more is queued, and what LINE has not been
// handed yet is cancelled. One that is cancelled already, or done with every delivery
// settled (sent, failed, dropped), is a 409: nothing is left to stop.
func (a *API) cancelBroadcast(w http.ResponseWriter, r *http.Request, c *call) error {
	b, err := a.broadcast(r, c)
	if err != nil {
		return err
	}
	switch b.State {
	case broadcast.Cancelled:
		return conflict("already_cancelled", "the broadcast was cancelled already", "この配信はすでに取り消されています")
	case broadcast.Done, broadcast.Failed:
		p, err := a.cfg.Broadcasts.Progress(r.Context(), b.ID)
		if err != nil {
			return err
		}
		// Deliveries still sending may wait in a batch no dispatcher has claimed: those
		// can be taken back, so only a broadcast with none left is finished.
		if p[delivery.Pending]+p[delivery.Sending] == 0 {
			return conflict("broadcast_finished", "the broadcast has been sent: every message was handed to LINE, and nothing is left to cancel",
				"この配信は送信済みです(すべて LINE に渡したため、取り消せるものがありません)")
		}
	}
	n, err := a.cfg.Broadcasts.Cancel(r.Context(), c.channel, b.ID)
	if errors.Is(err, store.ErrNotFound) {
		return errNoBroadcast
	}
	if err != nil {
		return err
	}
	if b, err = a.cfg.Broadcasts.Get(r.Context(), c.channel, b.ID); err != nil {
		return err
	}
	out, err := a.detail(r.Context(), b)
	if err != nil {
		return err
	}
	out.CancelledDeliveries = &n
	writeJSON(w, http.StatusOK, out)
	return nil
}

// timeLayouts are the forms of a time without an offset, read in the channel's time
// zone: what a shop writes ("2026-12-01", "2026-12-01 10:00").
var timeLayouts = []string{time.DateOnly, "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02T15:04:05"}

// parseTime reads a time of a request at path: RFC 3339, or one of timeLayouts in the
// channel's time zone.
func (a *API) parseTime(ctx context.Context, ch, s, path string) (time.Time, *Problem, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.Truncate(time.Millisecond), nil, nil
	}
	for _, layout := range timeLayouts {
		if _, err := time.Parse(layout, s); err != nil {
			continue
		}
		chn, err := a.cfg.Channels.Get(ctx, ch)
		if err != nil {
			return time.Time{}, nil, err
		}
		loc, err := time.LoadLocation(chn.TimeZone)
		if err != nil || chn.TimeZone == "" {
			return time.Time{}, nil, fmt.Errorf("api: channel time zone: %v", err)
		}
		t, _ := time.ParseInLocation(layout, s, loc)
		return t, nil, nil
	}
	return time.Time{}, &Problem{Path: path,
		EN: "write the time as RFC 3339 (2026-12-01T10:00:00+09:00), or as 2026-12-01 or 2026-12-01 10:00 in the channel's time zone",
		JA: "日時は 2026-12-01T10:00:00+09:00 の形か、チャネルのタイムゾーンで 2026-12-01、2026-12-01 10:00 のように書いてください"}, nil
}
