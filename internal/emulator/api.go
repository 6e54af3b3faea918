package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// maxRequestBody bounds a Messaging API request body, as LINE does.
const maxRequestBody = 2 << 20

// apiRequest is what an endpoint handler sees. Handlers run with e.mu held.
type apiRequest struct {
	ch        *channel
	r         *http.Request
	body      []byte
	now       time.Time
	requestID string
	retryKey  string
}

// apiAnswer is an endpoint's answer: a JSON body, or raw bytes for content.
type apiAnswer struct {
	status      int
	body        any
	raw         []byte
	contentType string
	header      http.Header
	delivered   bool // messages reached the platform: the retry key is now accepted
}

// errorBody is LINE's error shape.
type errorBody struct {
	Message string   `json:"message"`
	Details []detail `json:"details,omitempty"`
}

func fail(status int, msg string) apiAnswer {
	return apiAnswer{status: status, body: errorBody{Message: msg}}
}

func invalid(v *validator) apiAnswer {
	return apiAnswer{status: http.StatusBadRequest, body: errorBody{
		Message: fmt.Sprintf("The request body has %d error(s)", len(v.details)), Details: v.details}}
}

var uuidForm = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// sendsWithRetryKey are the endpoints that accept X-Line-Retry-Key; LINE refuses the
// header (400) anywhere else.
var sendsWithRetryKey = map[string]bool{"push": true, "multicast": true, "broadcast": true, "narrowcast": true}

// Handler serves the Messaging API (api.line.me and api-data.line.me paths) and the
// emulator's own control API under /_emulator/.
func (e *Emulator) Handler() http.Handler {
	mux := http.NewServeMux()
	e.api(mux, "POST /v2/bot/message/reply", "reply", e.reply)
	e.api(mux, "POST /v2/bot/message/push", "push", e.push)
	e.api(mux, "POST /v2/bot/message/multicast", "multicast", e.multicast)
	e.api(mux, "POST /v2/bot/message/broadcast", "broadcast", e.broadcast)
	e.api(mux, "POST /v2/bot/message/narrowcast", "narrowcast", e.narrowcast)
	e.api(mux, "GET /v2/bot/message/progress/narrowcast", "narrowcast_progress", e.narrowcastProgress)
	e.api(mux, "GET /v2/bot/profile/{userId}", "profile", e.profile)
	e.api(mux, "GET /v2/bot/followers/ids", "followers", e.followers)
	e.api(mux, "POST /v2/bot/user/{userId}/richmenu/{richMenuId}", "richmenu_link", e.linkRichMenu)
	e.api(mux, "DELETE /v2/bot/user/{userId}/richmenu", "richmenu_unlink", e.unlinkRichMenu)
	e.api(mux, "GET /v2/bot/message/quota", "quota", e.quota)
	e.api(mux, "GET /v2/bot/message/quota/consumption", "quota", e.quotaConsumption)
	e.api(mux, "GET /v2/bot/message/{messageId}/content", "content", e.content)
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Message: "Not found"})
	})
	e.control(mux)
	return mux
}

type fault int

const (
	noFault fault = iota
	faultError
	faultSlow
	faultDrop
)

func (e *Emulator) pickFault(endpoint string) fault {
	f := e.faults
	if len(f.Endpoints) > 0 {
		found := false
		for _, ep := range f.Endpoints {
			found = found || ep == endpoint
		}
		if !found {
			return noFault
		}
	}
	x := e.rnd.Float64()
	switch {
	case x < f.ErrorRate:
		return faultError
	case x < f.ErrorRate+f.DropRate:
		return faultDrop
	case x < f.ErrorRate+f.DropRate+f.SlowRate:
		return faultSlow
	}
	return noFault
}

// api wraps an endpoint with what every Messaging API call goes through, in LINE's
// order: request ID, body limit, bearer auth, retry-key checks, rate limit; then the
// injected faults around the handler.
func (e *Emulator) api(mux *http.ServeMux, pattern, endpoint string, h func(*apiRequest) apiAnswer) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		reqID := newUUID()
		w.Header().Set("x-line-request-id", reqID)
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		if err != nil {
			a := fail(http.StatusRequestEntityTooLarge, "Request Entity Too Large")
			e.count(endpoint, a.status)
			e.answer(w, a)
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		retryKey := r.Header.Get("X-Line-Retry-Key")

		e.mu.Lock()
		now := e.cfg.Now()
		ch := e.byToken[token]
		var ans apiAnswer
		fl := noFault
		switch {
		case !ok || ch == nil:
			ans = fail(http.StatusUnauthorized, "Authentication failed. Confirm that the access token in the authorization header is valid.")
		case retryKey != "" && !sendsWithRetryKey[endpoint]:
			ans = fail(http.StatusBadRequest, "The retry key is not supported by this API")
		case retryKey != "" && !uuidForm.MatchString(retryKey):
			ans = fail(http.StatusBadRequest, "The value for the 'X-Line-Retry-Key' header is invalid")
		default:
			if k, seen := ch.retryKeys[retryKey]; retryKey != "" && seen && now.Sub(k.at) < retryKeyTTL {
				ans = fail(http.StatusConflict, "The retry key is already accepted")
				ans.header = http.Header{"X-Line-Accepted-Request-Id": {k.requestID}}
				break
			}
			if win := e.limitFor(ch, endpoint); win != nil {
				if allowed, after := win.allow(now); !allowed {
					ans = fail(http.StatusTooManyRequests, "Too Many Requests")
					ans.header = http.Header{"Retry-After": {strconv.Itoa(int(after.Seconds()) + 1)}}
					break
				}
			}
			if fl = e.pickFault(endpoint); fl == faultError {
				e.stats.faults["error"]++
				ans = fail(http.StatusInternalServerError, "Internal Server Error")
				break
			}
			ch.forgetExpired(now)
			ans = h(&apiRequest{ch: ch, r: r, body: body, now: now, requestID: reqID, retryKey: retryKey})
			if ans.delivered && retryKey != "" {
				ch.retryKeys[retryKey] = acceptedKey{requestID: reqID, at: now}
			}
		}
		switch fl {
		case faultDrop:
			e.stats.faults["drop"]++
		case faultSlow:
			e.stats.faults["slow"]++
		default:
			// Counted with the deliveries it made, so that a reader of Stats never sees
			// the deliveries without the call that made them.
			e.countLocked(endpoint, ans.status)
		}
		slow := e.faults.SlowDelay
		e.mu.Unlock()

		switch fl {
		case faultDrop:
			e.count(endpoint, 0)
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler) // HTTP/2: abort the stream instead
		case faultSlow:
			select {
			case <-time.After(slow):
			case <-r.Context().Done():
				e.count(endpoint, 0)
				return
			}
			e.count(endpoint, ans.status)
		}
		e.answer(w, ans)
	})
}

func (e *Emulator) answer(w http.ResponseWriter, a apiAnswer) {
	for k, v := range a.header {
		w.Header()[k] = v
	}
	if a.raw != nil {
		w.Header().Set("Content-Type", a.contentType)
		w.WriteHeader(a.status)
		w.Write(a.raw)
		return
	}
	writeJSON(w, a.status, a.body)
}

func (e *Emulator) count(endpoint string, status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.countLocked(endpoint, status)
}

func (e *Emulator) countLocked(endpoint string, status int) {
	m := e.stats.requests[endpoint]
	if m == nil {
		m = map[int]int{}
		e.stats.requests[endpoint] = m
	}
	m[status]++
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	if v == nil {
		v = struct{}{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// decode parses a JSON request body into v; false means the answer is already chosen.
func decode(body []byte, v any) (apiAnswer, bool) {
	if err := json.Unmarshal(body, v); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) || len(body) == 0 {
			return fail(http.StatusBadRequest, "The request body has 1 error(s): the body could not be parsed as JSON"), false
		}
		return fail(http.StatusBadRequest, "The request body has 1 error(s): "+sanitizeTypeError(err)), false
	}
	return apiAnswer{}, true
}

// sanitizeTypeError keeps a JSON type error's gist without echoing request content.
func sanitizeTypeError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("the property %q has the wrong type", te.Field)
	}
	return "the body does not match the expected shape"
}

type sendRequest struct {
	To                   json.RawMessage `json:"to"`
	ReplyToken           string          `json:"replyToken"`
	Messages             json.RawMessage `json:"messages"`
	NotificationDisabled bool            `json:"notificationDisabled"`
	Recipient            json.RawMessage `json:"recipient"`
	Filter               json.RawMessage `json:"filter"`
	Limit                *struct {
		Max int `json:"max"`
	} `json:"limit"`
}

type sentMessage struct {
	ID         string `json:"id"`
	QuoteToken string `json:"quoteToken"`
}

func sentMessages(n int) map[string]any {
	out := make([]sentMessage, n)
	for i := range out {
		out[i] = sentMessage{ID: newMessageID(), QuoteToken: randomHex(16)}
	}
	return map[string]any{"sentMessages": out}
}

// deliver records the messages for each following user; it returns how many got them.
func (ch *channel) deliver(req *apiRequest, via string, msgs []json.RawMessage, userIDs []string) int {
	n := 0
	for _, id := range userIDs {
		u, ok := ch.users[id]
		if !ok || u.status != StatusFollowing {
			continue // LINE accepts and silently drops sends to users who blocked
		}
		u.received = append(u.received, Received{At: req.now, Via: via, RequestID: req.requestID,
			RetryKey: req.retryKey, Messages: msgs})
		n++
	}
	ch.delivered += n
	ch.messagesDelivered += n * len(msgs)
	return n
}

func (ch *channel) overQuota(n int) bool {
	return ch.Quota > 0 && ch.usage+int64(n) > ch.Quota
}

var monthlyLimit = "You have reached your monthly limit."

func (e *Emulator) reply(req *apiRequest) apiAnswer {
	var sr sendRequest
	if a, ok := decode(req.body, &sr); !ok {
		return a
	}
	v := &validator{}
	if sr.ReplyToken == "" {
		v.add("replyToken", "must be specified")
	}
	msgs := v.messages(sr.Messages)
	if len(v.details) > 0 {
		return invalid(v)
	}
	tok, ok := req.ch.replyTokens[sr.ReplyToken]
	if !ok || req.now.After(tok.expires) {
		return fail(http.StatusBadRequest, "Invalid reply token")
	}
	delete(req.ch.replyTokens, sr.ReplyToken) // single use
	req.ch.deliver(req, "reply", msgs, []string{tok.userID})
	return apiAnswer{status: http.StatusOK, body: sentMessages(len(msgs)), delivered: true}
}

func (e *Emulator) push(req *apiRequest) apiAnswer {
	var sr sendRequest
	if a, ok := decode(req.body, &sr); !ok {
		return a
	}
	v := &validator{}
	to := str(sr.To)
	if to == "" {
		v.add("to", "must be specified")
	} else if !userIDForm.MatchString(to) {
		v.add("to", "The property, 'to', in the request body is invalid")
	}
	msgs := v.messages(sr.Messages)
	if len(v.details) > 0 {
		return invalid(v)
	}
	u, ok := req.ch.users[to]
	if !ok || u.status == StatusNone {
		return fail(http.StatusBadRequest, "Failed to send messages")
	}
	if req.ch.overQuota(1) {
		return fail(http.StatusTooManyRequests, monthlyLimit)
	}
	if req.ch.deliver(req, "push", msgs, []string{to}) > 0 {
		req.ch.usage++
	}
	return apiAnswer{status: http.StatusOK, body: sentMessages(len(msgs)), delivered: true}
}

func (e *Emulator) multicast(req *apiRequest) apiAnswer {
	var sr sendRequest
	if a, ok := decode(req.body, &sr); !ok {
		return a
	}
	v := &validator{}
	to := v.userIDs("to", sr.To)
	msgs := v.messages(sr.Messages)
	if len(v.details) > 0 {
		return invalid(v)
	}
	if req.ch.overQuota(len(to)) {
		return fail(http.StatusTooManyRequests, monthlyLimit)
	}
	req.ch.usage += int64(req.ch.deliver(req, "multicast", msgs, to))
	return apiAnswer{status: http.StatusOK, body: struct{}{}, delivered: true}
}

func (ch *channel) following() []string {
	var ids []string
	for _, id := range ch.order {
		if ch.users[id].status == StatusFollowing {
			ids = append(ids, id)
		}
	}
	return ids
}

func (e *Emulator) broadcast(req *apiRequest) apiAnswer {
	var sr sendRequest
	if a, ok := decode(req.body, &sr); !ok {
		return a
	}
	v := &validator{}
	msgs := v.messages(sr.Messages)
	if len(v.details) > 0 {
		return invalid(v)
	}
	ids := req.ch.following()
	if req.ch.overQuota(len(ids)) {
		return fail(http.StatusTooManyRequests, monthlyLimit)
	}
	req.ch.usage += int64(req.ch.deliver(req, "broadcast", msgs, ids))
	return apiAnswer{status: http.StatusOK, body: struct{}{}, delivered: true}
}

// narrowcast delivers to every follower (the emulator does not evaluate audiences or
// demographic filters, which need LINE's own data) up to limit.max, and answers 202
// with the request ID to poll.
func (e *Emulator) narrowcast(req *apiRequest) apiAnswer {
	var sr sendRequest
	if a, ok := decode(req.body, &sr); !ok {
		return a
	}
	v := &validator{}
	msgs := v.messages(sr.Messages)
	if sr.Limit != nil && sr.Limit.Max < 0 {
		v.add("limit.max", "must be positive")
	}
	if len(v.details) > 0 {
		return invalid(v)
	}
	ids := req.ch.following()
	if sr.Limit != nil && sr.Limit.Max > 0 && len(ids) > sr.Limit.Max {
		ids = ids[:sr.Limit.Max]
	}
	nc := &narrowcast{accepted: req.now, target: len(ids)}
	if !req.ch.overQuota(len(ids)) {
		nc.success = req.ch.deliver(req, "narrowcast", msgs, ids)
		req.ch.usage += int64(nc.success)
	}
	nc.completed = req.now
	req.ch.narrowcasts[req.requestID] = nc
	return apiAnswer{status: http.StatusAccepted, body: struct{}{}, delivered: true}
}

func (e *Emulator) narrowcastProgress(req *apiRequest) apiAnswer {
	id := req.r.URL.Query().Get("requestId")
	nc, ok := req.ch.narrowcasts[id]
	if !ok {
		return fail(http.StatusNotFound, "Not found")
	}
	out := map[string]any{
		"phase": "succeeded", "successCount": nc.success, "failureCount": nc.target - nc.success,
		"targetCount": nc.target, "acceptedTime": nc.accepted.UTC().Format(time.RFC3339Nano),
		"completedTime": nc.completed.UTC().Format(time.RFC3339Nano),
	}
	if nc.success < nc.target {
		out["phase"] = "failed"
		out["failedDescription"] = "monthly limit reached"
		out["errorCode"] = 2
	}
	return apiAnswer{status: http.StatusOK, body: out}
}

func (e *Emulator) profile(req *apiRequest) apiAnswer {
	u, ok := req.ch.users[req.r.PathValue("userId")]
	if !ok || u.status != StatusFollowing {
		return fail(http.StatusNotFound, "Not found")
	}
	p := map[string]string{"userId": u.ID, "displayName": u.DisplayName}
	if u.PictureURL != "" {
		p["pictureUrl"] = u.PictureURL
	}
	if u.StatusMessage != "" {
		p["statusMessage"] = u.StatusMessage
	}
	if u.Language != "" {
		p["language"] = u.Language
	}
	return apiAnswer{status: http.StatusOK, body: p}
}

// followers pages through follower IDs; the continuation token is an opaque offset.
func (e *Emulator) followers(req *apiRequest) apiAnswer {
	q := req.r.URL.Query()
	limit := 300
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return fail(http.StatusBadRequest, "The request has 1 error(s): limit must be between 1 and 1000")
		}
		limit = n
	}
	start := 0
	if s := q.Get("start"); s != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(s, "emu"))
		if err != nil || n < 0 {
			return fail(http.StatusBadRequest, "Invalid start token")
		}
		start = n
	}
	ids := req.ch.following()
	if start > len(ids) {
		start = len(ids)
	}
	end := min(start+limit, len(ids))
	out := map[string]any{"userIds": append([]string{}, ids[start:end]...)}
	if end < len(ids) {
		out["next"] = "emu" + strconv.Itoa(end)
	}
	return apiAnswer{status: http.StatusOK, body: out}
}

func (e *Emulator) linkRichMenu(req *apiRequest) apiAnswer {
	u, ok := req.ch.users[req.r.PathValue("userId")]
	if !ok || u.status == StatusNone {
		return fail(http.StatusBadRequest, "The user hasn't added the LINE Official Account as a friend")
	}
	menu := req.r.PathValue("richMenuId")
	if !strings.HasPrefix(menu, "richmenu-") {
		return fail(http.StatusNotFound, "richmenu not found")
	}
	u.richMenu = menu
	return apiAnswer{status: http.StatusOK, body: struct{}{}}
}

func (e *Emulator) unlinkRichMenu(req *apiRequest) apiAnswer {
	u, ok := req.ch.users[req.r.PathValue("userId")]
	if !ok || u.status == StatusNone {
		return fail(http.StatusBadRequest, "The user hasn't added the LINE Official Account as a friend")
	}
	u.richMenu = ""
	return apiAnswer{status: http.StatusOK, body: struct{}{}}
}

func (e *Emulator) quota(req *apiRequest) apiAnswer {
	if req.ch.Quota <= 0 {
		return apiAnswer{status: http.StatusOK, body: map[string]any{"type": "none"}}
	}
	return apiAnswer{status: http.StatusOK, body: map[string]any{"type": "limited", "value": req.ch.Quota}}
}

func (e *Emulator) quotaConsumption(req *apiRequest) apiAnswer {
	return apiAnswer{status: http.StatusOK, body: map[string]any{"totalUsage": req.ch.usage}}
}

func (e *Emulator) content(req *apiRequest) apiAnswer {
	c, ok := req.ch.content[req.r.PathValue("messageId")]
	if !ok {
		return fail(http.StatusNotFound, "Not found")
	}
	return apiAnswer{status: http.StatusOK, raw: c.data, contentType: c.contentType}
}
