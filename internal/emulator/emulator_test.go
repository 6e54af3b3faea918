package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeNow is an emulated clock the tests move by hand.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeNow) Advance(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

type rig struct {
	t     *testing.T
	emu   *Emulator
	api   *httptest.Server
	now   *fakeNow
	hooks *hookRecorder
}

const testToken, testSecret = "token-1", "secret-1"

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	now := &fakeNow{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	if cfg.Now == nil {
		cfg.Now = now.Now
	}
	emu := New(cfg)
	api := httptest.NewServer(emu.Handler())
	t.Cleanup(api.Close)
	hooks := &hookRecorder{status: http.StatusOK}
	hs := httptest.NewServer(hooks)
	t.Cleanup(hs.Close)
	if err := emu.AddChannel(Channel{ID: "ch1", Secret: testSecret, AccessToken: testToken, WebhookURL: hs.URL + "/webhook"}); err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, emu: emu, api: api, now: now, hooks: hooks}
}

// follower adds a user who follows the channel.
func (r *rig) follower(name string) string {
	r.t.Helper()
	id := NewUserID()
	if err := r.emu.AddUser("ch1", User{ID: id, DisplayName: name, Language: "ja"}); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.emu.Follow(context.Background(), "ch1", id); err != nil {
		r.t.Fatal(err)
	}
	return id
}

type answer struct {
	status int
	header http.Header
	body   errorBody
	raw    []byte
}

func (r *rig) call(method, path, token, retryKey string, body any) answer {
	r.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, r.api.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if retryKey != "" {
		req.Header.Set("X-Line-Retry-Key", retryKey)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, header: res.Header, raw: raw}
	json.Unmarshal(raw, &a.body)
	if res.Header.Get("x-line-request-id") == "" && strings.HasPrefix(path, "/v2/") {
		r.t.Errorf("%s %s: no x-line-request-id", method, path)
	}
	return a
}

func text(s string) map[string]any { return map[string]any{"type": "text", "text": s} }

func msgs(m ...map[string]any) []map[string]any { return m }

type hookRecorder struct {
	mu     sync.Mutex
	status int
	bodies [][]byte
	sigs   []string
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bodies = append(h.bodies, b)
	h.sigs = append(h.sigs, r.Header.Get("x-line-signature"))
	w.WriteHeader(h.status)
}

func (h *hookRecorder) last() (map[string]any, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var body struct {
		Destination string           `json:"destination"`
		Events      []map[string]any `json:"events"`
	}
	if err := json.Unmarshal(h.bodies[len(h.bodies)-1], &body); err != nil || len(body.Events) != 1 {
		panic("bad webhook body")
	}
	return body.Events[0], h.sigs[len(h.sigs)-1]
}

func TestAuthentication(t *testing.T) {
	r := newRig(t, Config{})
	u := r.follower("a")
	body := map[string]any{"to": u, "messages": msgs(text("hi"))}
	for _, tok := range []string{"", "wrong"} {
		a := r.call("POST", "/v2/bot/message/push", tok, "", body)
		if a.status != 401 || !strings.Contains(a.body.Message, "Authentication failed") {
			t.Errorf("token %q: %d %s", tok, a.status, a.raw)
		}
	}
	if got, _ := r.emu.ReceivedBy("ch1", u); len(got) != 0 {
		t.Errorf("unauthenticated push delivered: %v", got)
	}
}

func TestValidationAnswersLikeLINE(t *testing.T) {
	r := newRig(t, Config{NoRateLimit: true})
	u := r.follower("a")
	six := msgs(text("1"), text("2"), text("3"), text("4"), text("5"), text("6"))
	tooMany := make([]string, 501)
	for i := range tooMany {
		tooMany[i] = NewUserID()
	}
	cases := []struct {
		name, path string
		body       any
		property   string
	}{
		{"six messages", "/v2/bot/message/push", map[string]any{"to": u, "messages": six}, "messages"},
		{"no messages", "/v2/bot/message/push", map[string]any{"to": u, "messages": msgs()}, "messages"},
		{"empty text", "/v2/bot/message/push", map[string]any{"to": u, "messages": msgs(text(""))}, "messages[0].text"},
		{"text too long", "/v2/bot/message/push", map[string]any{"to": u, "messages": msgs(text(strings.Repeat("あ", 5001)))}, "messages[0].text"},
		// 2,500 emoji are 5,000 UTF-16 units: allowed; one more is not.
		{"emoji counted as two", "/v2/bot/message/push", map[string]any{"to": u, "messages": msgs(text(strings.Repeat("😀", 2501)))}, "messages[0].text"},
		{"unknown type", "/v2/bot/message/push", map[string]any{"to": u, "messages": msgs(map[string]any{"type": "hologram"})}, "messages[0].type"},
		{"image over http", "/v2/bot/message/push", map[string]any{"to": u, "messages": msgs(map[string]any{
			"type": "image", "originalContentUrl": "http://x.example/a.jpg", "previewImageUrl": "https://x.example/p.jpg"})}, "messages[0].originalContentUrl"},
		{"sticker without id", "/v2/bot/message/push", map[string]any{"to": u, "messages": msgs(map[string]any{"type": "sticker", "packageId": "446"})}, "messages[0].stickerId"},
		{"flex without altText", "/v2/bot/message/push", map[string]any{"to": u, "messages": msgs(map[string]any{"type": "flex", "contents": map[string]any{"type": "bubble"}})}, "messages[0].altText"},
		{"14 quick replies", "/v2/bot/message/push", map[string]any{"to": u, "messages": msgs(map[string]any{"type": "text", "text": "q",
			"quickReply": map[string]any{"items": make([]map[string]any, 14)}})}, "messages[0].quickReply.items"},
		{"no to", "/v2/bot/message/push", map[string]any{"messages": msgs(text("x"))}, "to"},
		{"501 recipients", "/v2/bot/message/multicast", map[string]any{"to": tooMany, "messages": msgs(text("x"))}, "to"},
		{"malformed recipient", "/v2/bot/message/multicast", map[string]any{"to": []string{"Ux"}, "messages": msgs(text("x"))}, "to[0]"},
		{"broadcast without messages", "/v2/bot/message/broadcast", map[string]any{}, "messages"},
	}
	for _, c := range cases {
		a := r.call("POST", c.path, testToken, "", c.body)
		found := false
		for _, d := range a.body.Details {
			found = found || d.Property == c.property
		}
		if a.status != 400 || !found || !strings.HasPrefix(a.body.Message, "The request body has") {
			t.Errorf("%s: got %d %s, want 400 with a detail on %s", c.name, a.status, a.raw, c.property)
		}
	}
	if a := r.call("POST", "/v2/bot/message/push", testToken, "", map[string]any{"to": u, "messages": msgs(text(strings.Repeat("😀", 2500)))}); a.status != 200 {
		t.Errorf("5,000 UTF-16 units refused: %d %s", a.status, a.raw)
	}
	if got, _ := r.emu.ReceivedBy("ch1", u); len(got) != 1 {
		t.Errorf("invalid requests delivered something: %d deliveries, want 1", len(got))
	}
}

func TestRetryKeyAcceptedOnceFor24Hours(t *testing.T) {
	r := newRig(t, Config{})
	u := r.follower("a")
	body := map[string]any{"to": u, "messages": msgs(text("coupon"))}
	const key = "123e4567-e89b-12d3-a456-426614174000"
	first := r.call("POST", "/v2/bot/message/push", testToken, key, body)
	if first.status != 200 {
		t.Fatalf("first push: %d %s", first.status, first.raw)
	}
	again := r.call("POST", "/v2/bot/message/push", testToken, key, body)
	if again.status != 409 || again.header.Get("x-line-accepted-request-id") != first.header.Get("x-line-request-id") {
		t.Errorf("same key: %d accepted-id %q, want 409 naming %q", again.status,
			again.header.Get("x-line-accepted-request-id"), first.header.Get("x-line-request-id"))
	}
	r.now.Advance(23 * time.Hour)
	if a := r.call("POST", "/v2/bot/message/push", testToken, key, body); a.status != 409 {
		t.Errorf("after 23h: %d, want 409", a.status)
	}
	r.now.Advance(time.Hour + time.Second)
	if a := r.call("POST", "/v2/bot/message/push", testToken, key, body); a.status != 200 {
		t.Errorf("after 24h: %d, want 200 (key forgotten)", a.status)
	}
	if got, _ := r.emu.ReceivedBy("ch1", u); len(got) != 2 {
		t.Errorf("deliveries = %d, want 2", len(got))
	}
	if a := r.call("POST", "/v2/bot/message/push", testToken, "not-a-uuid", body); a.status != 400 {
		t.Errorf("malformed key: %d, want 400", a.status)
	}
	if a := r.call("GET", "/v2/bot/profile/"+u, testToken, key, nil); a.status != 400 {
		t.Errorf("retry key on profile: %d, want 400", a.status)
	}
	// A refused request does not consume its key.
	const key2 = "223e4567-e89b-12d3-a456-426614174000"
	if a := r.call("POST", "/v2/bot/message/push", testToken, key2, map[string]any{"to": u}); a.status != 400 {
		t.Fatalf("invalid push: %d", a.status)
	}
	if a := r.call("POST", "/v2/bot/message/push", testToken, key2, body); a.status != 200 {
		t.Errorf("key of a refused request: %d, want 200", a.status)
	}
}

func TestRateLimitSlidingWindow(t *testing.T) {
	r := newRig(t, Config{Limits: map[string]Limit{"multicast": {3, time.Second}}})
	u := r.follower("a")
	body := map[string]any{"to": []string{u}, "messages": msgs(text("x"))}
	for i := range 3 {
		if a := r.call("POST", "/v2/bot/message/multicast", testToken, "", body); a.status != 200 {
			t.Fatalf("call %d: %d", i, a.status)
		}
		r.now.Advance(300 * time.Millisecond)
	}
	a := r.call("POST", "/v2/bot/message/multicast", testToken, "", body)
	if a.status != 429 || a.body.Message != "Too Many Requests" {
		t.Errorf("4th within a second: %d %s, want 429", a.status, a.raw)
	}
	r.now.Advance(101 * time.Millisecond) // the first call is now more than 1 s old
	if a := r.call("POST", "/v2/bot/message/multicast", testToken, "", body); a.status != 200 {
		t.Errorf("after the window moved: %d", a.status)
	}
	// Other endpoints have their own windows.
	if a := r.call("POST", "/v2/bot/message/push", testToken, "", map[string]any{"to": u, "messages": msgs(text("p"))}); a.status != 200 {
		t.Errorf("push while multicast is limited: %d", a.status)
	}
}

func TestBroadcastDefaultLimitIsHourly(t *testing.T) {
	r := newRig(t, Config{})
	r.follower("a")
	body := map[string]any{"messages": msgs(text("sale"))}
	for i := range 60 {
		if a := r.call("POST", "/v2/bot/message/broadcast", testToken, "", body); a.status != 200 {
			t.Fatalf("broadcast %d: %d", i, a.status)
		}
	}
	if a := r.call("POST", "/v2/bot/message/broadcast", testToken, "", body); a.status != 429 {
		t.Errorf("61st broadcast in an hour: %d, want 429", a.status)
	}
	r.now.Advance(time.Hour)
	if a := r.call("POST", "/v2/bot/message/broadcast", testToken, "", body); a.status != 200 {
		t.Errorf("an hour later: %d", a.status)
	}
}

func TestReplyTokenSingleUseAndExpiry(t *testing.T) {
	r := newRig(t, Config{})
	u := r.follower("a")
	res, err := r.emu.SendText(context.Background(), "ch1", u, "hello")
	if err != nil || res.ReplyToken == "" {
		t.Fatalf("SendText: %+v %v", res, err)
	}
	body := map[string]any{"replyToken": res.ReplyToken, "messages": msgs(text("welcome"))}
	if a := r.call("POST", "/v2/bot/message/reply", testToken, "", body); a.status != 200 {
		t.Fatalf("reply: %d %s", a.status, a.raw)
	}
	if a := r.call("POST", "/v2/bot/message/reply", testToken, "", body); a.status != 400 || a.body.Message != "Invalid reply token" {
		t.Errorf("reused token: %d %s", a.status, a.raw)
	}
	got, _ := r.emu.ReceivedBy("ch1", u)
	if len(got) != 1 || got[0].Via != "reply" {
		t.Errorf("received %+v, want one reply", got)
	}
	res, _ = r.emu.SendText(context.Background(), "ch1", u, "again")
	r.now.Advance(61 * time.Second)
	body["replyToken"] = res.ReplyToken
	if a := r.call("POST", "/v2/bot/message/reply", testToken, "", body); a.status != 400 {
		t.Errorf("expired token: %d, want 400", a.status)
	}
}

func TestWebhooksAreSignedAndShaped(t *testing.T) {
	r := newRig(t, Config{})
	ctx := context.Background()
	u := NewUserID()
	r.emu.AddUser("ch1", User{ID: u, DisplayName: "佐藤"})
	check := func(act string, wantType string) map[string]any {
		t.Helper()
		ev, sig := r.hooks.last()
		r.hooks.mu.Lock()
		body := r.hooks.bodies[len(r.hooks.bodies)-1]
		r.hooks.mu.Unlock()
		if sig != Sign(testSecret, body) || sig == Sign("other", body) {
			t.Errorf("%s: bad signature", act)
		}
		if ev["type"] != wantType || ev["webhookEventId"] == "" || ev["timestamp"] == nil {
			t.Errorf("%s: event %v", act, ev)
		}
		if src := ev["source"].(map[string]any); src["type"] != "user" || src["userId"] != u {
			t.Errorf("%s: source %v", act, src)
		}
		return ev
	}
	if _, err := r.emu.Follow(ctx, "ch1", u); err != nil {
		t.Fatal(err)
	}
	ev := check("follow", "follow")
	if ev["follow"].(map[string]any)["isUnblocked"] != false || ev["replyToken"] == nil {
		t.Errorf("first follow: %v", ev)
	}
	if _, err := r.emu.Follow(ctx, "ch1", u); !errors.Is(err, ErrFollowing) {
		t.Errorf("follow twice: %v", err)
	}
	r.emu.SendSticker(ctx, "ch1", u, "446", "1988")
	ev = check("sticker", "message")
	if m := ev["message"].(map[string]any); m["type"] != "sticker" || m["stickerId"] != "1988" || m["id"] == "" {
		t.Errorf("sticker: %v", m)
	}
	r.emu.Postback(ctx, "ch1", u, "action=reserve&id=1")
	ev = check("postback", "postback")
	if ev["postback"].(map[string]any)["data"] != "action=reserve&id=1" {
		t.Errorf("postback: %v", ev)
	}
	r.emu.Block(ctx, "ch1", u)
	ev = check("block", "unfollow")
	if _, ok := ev["replyToken"]; ok {
		t.Errorf("unfollow carries a reply token")
	}
	if _, err := r.emu.SendText(ctx, "ch1", u, "x"); !errors.Is(err, ErrNotFollowing) {
		t.Errorf("blocked user sends: %v", err)
	}
	r.emu.Follow(ctx, "ch1", u)
	ev = check("re-follow", "follow")
	if ev["follow"].(map[string]any)["isUnblocked"] != true {
		t.Errorf("re-follow is not isUnblocked: %v", ev)
	}
	r.emu.SetStandby("ch1", true)
	res, _ := r.emu.SendText(ctx, "ch1", u, "in standby")
	ev = check("standby", "message")
	if ev["mode"] != "standby" || ev["replyToken"] != nil || res.ReplyToken != "" {
		t.Errorf("standby event: %v", ev)
	}
	red, err := r.emu.Redeliver(ctx, "ch1", res.EventID)
	if err != nil || red.Status != 200 {
		t.Fatalf("redeliver: %+v %v", red, err)
	}
	ev = check("redeliver", "message")
	if ev["webhookEventId"] != res.EventID || ev["deliveryContext"].(map[string]any)["isRedelivery"] != true {
		t.Errorf("redelivered: %v", ev)
	}
	r.hooks.mu.Lock()
	r.hooks.status = 500
	r.hooks.mu.Unlock()
	var we *WebhookError
	if res, err := r.emu.SendText(ctx, "ch1", u, "x"); !errors.As(err, &we) || res.Status != 500 {
		t.Errorf("server error not reported: %+v %v", res, err)
	}
}

func TestFaults(t *testing.T) {
	r := newRig(t, Config{Faults: Faults{DropRate: 1, Endpoints: []string{"push"}}})
	u := r.follower("a")
	const key = "323e4567-e89b-12d3-a456-426614174000"
	b, _ := json.Marshal(map[string]any{"to": u, "messages": msgs(text("once"))})
	req, _ := http.NewRequest("POST", r.api.URL+"/v2/bot/message/push", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("X-Line-Retry-Key", key)
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("dropped connection answered %d", res.StatusCode)
	}
	if got, _ := r.emu.ReceivedBy("ch1", u); len(got) != 1 {
		t.Fatalf("a dropped request must still deliver: %d", len(got))
	}
	r.emu.SetFaults(Faults{ErrorRate: 1})
	if a := r.call("POST", "/v2/bot/message/push", testToken, "", map[string]any{"to": u, "messages": msgs(text("x"))}); a.status != 500 {
		t.Errorf("error fault: %d", a.status)
	}
	r.emu.SetFaults(Faults{})
	if a := r.call("POST", "/v2/bot/message/push", testToken, key, map[string]any{"to": u, "messages": msgs(text("once"))}); a.status != 409 {
		t.Errorf("retry after drop: %d, want 409", a.status)
	}
	if got, _ := r.emu.ReceivedBy("ch1", u); len(got) != 1 {
		t.Errorf("deliveries = %d, want exactly 1", len(got))
	}
	s := r.emu.Stats()
	if s.Faults["drop"] != 1 || s.Faults["error"] != 1 || s.Requests["push"]["409"] != 1 {
		t.Errorf("stats: %+v", s)
	}
}

func TestProfileFollowersContentQuota(t *testing.T) {
	r := newRig(t, Config{NoRateLimit: true})
	ctx := context.Background()
	u := r.follower(`<b>"名前"</b>`)
	a := r.call("GET", "/v2/bot/profile/"+u, testToken, "", nil)
	var p map[string]string
	json.Unmarshal(a.raw, &p)
	if a.status != 200 || p["displayName"] != `<b>"名前"</b>` || p["userId"] != u || p["language"] != "ja" {
		t.Errorf("profile: %d %s", a.status, a.raw)
	}
	if a := r.call("GET", "/v2/bot/profile/"+NewUserID(), testToken, "", nil); a.status != 404 {
		t.Errorf("stranger's profile: %d", a.status)
	}
	r.emu.AddFollowers("ch1", 2500)
	seen := map[string]bool{}
	next := ""
	for pages := 0; ; pages++ {
		a := r.call("GET", "/v2/bot/followers/ids?limit=1000&start="+next, testToken, "", nil)
		var page struct {
			UserIDs []string `json:"userIds"`
			Next    string   `json:"next"`
		}
		json.Unmarshal(a.raw, &page)
		for _, id := range page.UserIDs {
			seen[id] = true
		}
		if page.Next == "" || pages > 5 {
			break
		}
		next = page.Next
	}
	if len(seen) != 2501 {
		t.Errorf("followers: %d distinct, want 2501", len(seen))
	}
	res, _ := r.emu.SendImage(ctx, "ch1", u, []byte("PNGDATA"), "image/png")
	a = r.call("GET", "/v2/bot/message/"+res.MessageID+"/content", testToken, "", nil)
	if a.status != 200 || string(a.raw) != "PNGDATA" || a.header.Get("Content-Type") != "image/png" {
		t.Errorf("content: %d %q", a.status, a.raw)
	}
	if a := r.call("POST", "/v2/bot/message/broadcast", testToken, "", map[string]any{"messages": msgs(text("all"))}); a.status != 200 {
		t.Fatalf("broadcast: %d", a.status)
	}
	a = r.call("GET", "/v2/bot/message/quota/consumption", testToken, "", nil)
	if !strings.Contains(string(a.raw), `"totalUsage":2501`) {
		t.Errorf("consumption: %s", a.raw)
	}
}

func TestQuotaAndNarrowcastProgress(t *testing.T) {
	r := newRig(t, Config{NoRateLimit: true})
	r.emu.AddChannel(Channel{ID: "small", Secret: "s", AccessToken: "small-token", Quota: 3})
	r.emu.AddFollowers("small", 2)
	a := r.call("POST", "/v2/bot/message/narrowcast", "small-token", "", map[string]any{"messages": msgs(text("n"))})
	if a.status != 202 {
		t.Fatalf("narrowcast: %d %s", a.status, a.raw)
	}
	a = r.call("GET", "/v2/bot/message/progress/narrowcast?requestId="+a.header.Get("x-line-request-id"), "small-token", "", nil)
	if a.status != 200 || !strings.Contains(string(a.raw), `"phase":"succeeded"`) || !strings.Contains(string(a.raw), `"successCount":2`) {
		t.Errorf("progress: %s", a.raw)
	}
	if a := r.call("POST", "/v2/bot/message/broadcast", "small-token", "", map[string]any{"messages": msgs(text("b"))}); a.status != 429 || !strings.Contains(a.body.Message, "monthly limit") {
		t.Errorf("over quota: %d %s", a.status, a.raw)
	}
}

func TestDuplicatesReport(t *testing.T) {
	r := newRig(t, Config{})
	u := r.follower("a")
	body := map[string]any{"to": u, "messages": msgs(text("coupon 10% off"))}
	r.call("POST", "/v2/bot/message/push", testToken, "423e4567-e89b-12d3-a456-426614174000", body)
	if d, _ := r.emu.Duplicates("ch1"); len(d) != 0 {
		t.Fatalf("one send reported as duplicate: %+v", d)
	}
	r.call("POST", "/v2/bot/message/push", testToken, "523e4567-e89b-12d3-a456-426614174000", body)
	d, _ := r.emu.Duplicates("ch1")
	if len(d) != 1 || d[0].UserID != u || d[0].Count != 2 {
		t.Errorf("duplicates: %+v", d)
	}
}

func TestControlAPI(t *testing.T) {
	r := newRig(t, Config{})
	post := func(path string, body any) answer { return r.call("POST", path, "", "", body) }
	if a := post("/_emulator/channels/ch1/users", map[string]any{"displayName": "鈴木"}); a.status != 201 {
		t.Fatalf("add user: %d %s", a.status, a.raw)
	} else {
		var out struct{ UserID string }
		json.Unmarshal(a.raw, &out)
		if a := post("/_emulator/channels/ch1/users/"+out.UserID+"/follow", nil); a.status != 200 {
			t.Fatalf("follow: %d %s", a.status, a.raw)
		}
		if a := post("/_emulator/channels/ch1/users/"+out.UserID+"/text", map[string]string{"text": "hi"}); a.status != 200 || !strings.Contains(string(a.raw), "webhookEventId") {
			t.Errorf("text: %d %s", a.status, a.raw)
		}
		if a := post("/_emulator/channels/ch1/users/"+out.UserID+"/follow", nil); a.status != 409 {
			t.Errorf("follow twice: %d", a.status)
		}
		a := r.call("GET", "/_emulator/channels/ch1/users/"+out.UserID+"/received", "", "", nil)
		if a.status != 200 || !strings.Contains(string(a.raw), `"received":[]`) {
			t.Errorf("received: %d %s", a.status, a.raw)
		}
	}
	if a := post("/_emulator/channels/nope/users", map[string]any{}); a.status != 404 {
		t.Errorf("unknown channel: %d", a.status)
	}
	if a := r.call("GET", "/_emulator/stats", "", "", nil); a.status != 200 || !strings.Contains(string(a.raw), `"webhooks"`) {
		t.Errorf("stats: %d %s", a.status, a.raw)
	}
}
