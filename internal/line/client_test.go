package line_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/line/line-bot-sdk-go/v8/linebot/messaging_api"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/line"
)

const user = "U0123456789abcdef0123456789abcdef"

var hello = []messaging_api.MessageInterface{messaging_api.TextMessage{Text: "hello"}}

// script is a fake LINE that answers each request with the next step; it records what
// it saw.
type script struct {
	mu    sync.Mutex
	steps []func(w http.ResponseWriter, r *http.Request)
	keys  []string
	calls int
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := s.calls
	s.calls++
	s.keys = append(s.keys, r.Header.Get("X-Line-Retry-Key"))
	step := s.steps[min(i, len(s.steps)-1)]
	s.mu.Unlock()
	io.Copy(io.Discard, r.Body)
	step(w, r)
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func answer(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("x-line-request-id", "req-"+r.URL.Path)
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// drop accepts the request and closes the connection without answering.
func drop(w http.ResponseWriter, r *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

func accepted409(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-line-accepted-request-id", "original-request")
	w.WriteHeader(http.StatusConflict)
	io.WriteString(w, `{"message":"The retry key is already accepted"}`)
}

func newClient(t *testing.T, h http.Handler, cfg line.Config) *line.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg.APIURL, cfg.DataAPIURL, cfg.AccessToken = srv.URL, srv.URL, "token"
	if cfg.Clock == nil {
		cfg.Clock = instantClock{}
	}
	c, err := line.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// instantClock sleeps no time: backoffs are observed, not waited for.
type instantClock struct{}

func (instantClock) Now() time.Time { return time.Now() }
func (instantClock) Sleep(ctx context.Context, d time.Duration) error {
	return ctx.Err()
}

func TestPushRetriesWithTheSameKeyAndCounts409AsSuccess(t *testing.T) {
	t.Parallel()
	s := &script{steps: []func(http.ResponseWriter, *http.Request){
		answer(500, `{"message":"An error occurred in the internal server"}`),
		drop, // accepted by LINE, answer lost
		accepted409,
	}}
	c := newClient(t, s, line.Config{})
	key := line.RetryKey("outbox", "42")
	res, err := c.Push(context.Background(), user, hello, key)
	if err != nil {
		t.Fatal(err)
	}
	if !res.AlreadyAccepted || res.RequestID != "original-request" || res.Attempts != 3 {
		t.Fatalf("result %+v", res)
	}
	for i, k := range s.keys {
		if k != key {
			t.Fatalf("attempt %d carried key %q, want %q", i+1, k, key)
		}
	}
}

func TestPushGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	s := &script{steps: []func(http.ResponseWriter, *http.Request){answer(503, `{"message":"busy"}`)}}
	c := newClient(t, s, line.Config{MaxAttempts: 3})
	_, err := c.Push(context.Background(), user, hello, line.RetryKey("x"))
	if !line.IsRetryable(err) || s.count() != 3 {
		t.Fatalf("err %v after %d calls", err, s.count())
	}
}

func TestThrottlingBacksOffThenSucceeds(t *testing.T) {
	t.Parallel()
	s := &script{steps: []func(http.ResponseWriter, *http.Request){
		answer(429, `{"message":"Too Many Requests"}`),
		answer(429, `{"message":"Too Many Requests"}`),
		answer(429, `{"message":"Too Many Requests"}`),
		answer(429, `{"message":"Too Many Requests"}`),
		answer(429, `{"message":"Too Many Requests"}`),
		answer(429, `{"message":"Too Many Requests"}`),
		answer(200, `{}`),
	}}
	var slept atomic.Int64
	c := newClient(t, s, line.Config{MaxAttempts: 2, Clock: countingClock{&slept}})
	to := []string{user}
	res, err := c.Multicast(context.Background(), to, hello, line.RetryKey("m"))
	if err != nil || res.Attempts != 7 {
		t.Fatalf("multicast: %+v %v (429s must not use up the failure attempts)", res, err)
	}
	if slept.Load() < int64(6*500*time.Millisecond) {
		t.Fatalf("backed off only %v in all", time.Duration(slept.Load()))
	}
}

type countingClock struct{ total *atomic.Int64 }

func (countingClock) Now() time.Time { return time.Now() }
func (c countingClock) Sleep(ctx context.Context, d time.Duration) error {
	c.total.Add(int64(d))
	return ctx.Err()
}

func TestPermanentErrorIsNotRetriedAndCarriesDetails(t *testing.T) {
	t.Parallel()
	s := &script{steps: []func(http.ResponseWriter, *http.Request){
		answer(400, `{"message":"The request body has 1 error(s)","details":[{"message":"Length must be between 0 and 5000","property":"messages[0].text"}]}`),
	}}
	c := newClient(t, s, line.Config{})
	_, err := c.Push(context.Background(), user, hello, line.RetryKey("p"))
	var api *line.APIError
	if !errors.As(err, &api) || api.Status != 400 || len(api.Details) != 1 || api.Details[0].Property != "messages[0].text" {
		t.Fatalf("err %#v", err)
	}
	if !line.IsPermanent(err) || line.IsRetryable(err) || s.count() != 1 {
		t.Fatalf("permanent error retried: %d calls", s.count())
	}
	if !strings.Contains(err.Error(), "messages[0].text") {
		t.Fatalf("error text lacks LINE's detail: %v", err)
	}
}

func TestSendsRequireAUUIDRetryKey(t *testing.T) {
	t.Parallel()
	s := &script{steps: []func(http.ResponseWriter, *http.Request){answer(200, `{}`)}}
	c := newClient(t, s, line.Config{})
	for _, key := range []string{"", "not-a-uuid", "123e4567e89b12d3a456426614174000"} {
		if _, err := c.Push(context.Background(), user, hello, key); !errors.Is(err, line.ErrInvalidRetryKey) {
			t.Errorf("key %q: %v", key, err)
		}
	}
	if s.count() != 0 {
		t.Fatal("a send without a valid key reached LINE")
	}
	if line.RetryKey("a", "b") != line.RetryKey("a", "b") || line.RetryKey("a", "b") == line.RetryKey("ab") {
		t.Fatal("RetryKey is not a stable function of its parts")
	}
}

func TestReplyIsNotRetriedWhenItMayHaveBeenDelivered(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		step func(http.ResponseWriter, *http.Request)
		want error
	}{
		{"500", answer(500, `{"message":"internal"}`), line.ErrReplyOutcomeUnknown},
		{"dropped", drop, line.ErrReplyOutcomeUnknown},
		{"invalid token", answer(400, `{"message":"Invalid reply token"}`), line.ErrInvalidReplyToken},
	} {
		s := &script{steps: []func(http.ResponseWriter, *http.Request){c.step, answer(200, `{"sentMessages":[]}`)}}
		cl := newClient(t, s, line.Config{})
		_, err := cl.Reply(context.Background(), "token", hello)
		if !errors.Is(err, c.want) || s.count() != 1 {
			t.Errorf("%s: err %v after %d calls, want %v after 1", c.name, err, s.count(), c.want)
		}
	}
	// 429 is safe to retry: LINE did not take the reply.
	s := &script{steps: []func(http.ResponseWriter, *http.Request){answer(429, `{}`), answer(200, `{"sentMessages":[]}`)}}
	if _, err := newClient(t, s, line.Config{}).Reply(context.Background(), "token", hello); err != nil || s.count() != 2 {
		t.Fatalf("reply after 429: %v, %d calls", err, s.count())
	}
}

func TestProfileErrorsLeakNoPersonalData(t *testing.T) {
	t.Parallel()
	ok := answer(200, `{"userId":"`+user+`","displayName":"山田 太郎","language":"ja"}`)
	s := &script{steps: []func(http.ResponseWriter, *http.Request){
		answer(404, `{"message":"Not found"}`),
		answer(500, `{"message":"山田 太郎 broke it"}`),
		ok,
	}}
	c := newClient(t, s, line.Config{MaxAttempts: 1})
	if _, err := c.Profile(context.Background(), user); !errors.Is(err, line.ErrNotFound) {
		t.Fatalf("404: %v", err)
	}
	// The body of an error answer is not echoed beyond LINE's message field; a decoded
	// profile never appears in an error.
	_, err := c.Profile(context.Background(), user)
	if err == nil {
		t.Fatal("500 accepted")
	}
	p, err := c.Profile(context.Background(), user)
	if err != nil || p.DisplayName != "山田 太郎" {
		t.Fatalf("profile %+v %v", p, err)
	}
	if _, err := c.Profile(context.Background(), "../../v2/bot/message/push"); err == nil {
		t.Fatal("a path in place of a user ID was sent")
	}
	// A transport error does not repeat the URL (which holds the user ID).
	dead := httptest.NewServer(http.HandlerFunc(drop))
	dead.Close()
	c2, _ := line.New(line.Config{APIURL: dead.URL, AccessToken: "t", Clock: instantClock{}, MaxAttempts: 1})
	_, err = c2.Profile(context.Background(), user)
	if err == nil || strings.Contains(err.Error(), user) {
		t.Fatalf("transport error %q", err)
	}
}

// The limiter keeps every one-second window at or under the limit, and a steady sender
// still gets about 97% of it.
func TestLimiterHoldsEveryWindowUnderTheLimit(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var times []time.Time
	s := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		answer(200, `{}`)(w, r)
	})
	limit := 100
	c := newClient(t, s, line.Config{Clock: clock.Real, Limits: map[line.Endpoint]line.Limit{line.EndpointMulticast: {Requests: limit, Per: time.Second}}})
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				c.Multicast(ctx, []string{user}, hello, line.RetryKey(time.Now().String()))
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	worst := 0
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j].Sub(times[i]) < time.Second; j++ {
			n++
		}
		worst = max(worst, n)
	}
	if worst > limit {
		t.Fatalf("%d requests within one second, limit %d", worst, limit)
	}
	// 2.5 s at 97/s after a burst of 1: about 243.
	if len(times) < 200 {
		t.Fatalf("only %d requests in 2.5 s: the limiter is far below the limit", len(times))
	}
}

func TestContextCancellationStopsRetries(t *testing.T) {
	t.Parallel()
	s := &script{steps: []func(http.ResponseWriter, *http.Request){answer(503, `{}`)}}
	c := newClient(t, s, line.Config{Clock: clock.Real, MaxAttempts: 100})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Push(ctx, user, hello, line.RetryKey("c"))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}

func TestQuotaFollowersAndContent(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/bot/message/quota", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"type": "limited", "value": 5000})
	})
	mux.HandleFunc("GET /v2/bot/message/quota/consumption", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"totalUsage": 42})
	})
	mux.HandleFunc("GET /v2/bot/followers/ids", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("start") == "" {
			json.NewEncoder(w).Encode(map[string]any{"userIds": []string{user}, "next": "page2"})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"userIds": []string{"Uffffffffffffffffffffffffffffffff"}})
	})
	mux.HandleFunc("GET /v2/bot/message/{id}/content", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		io.WriteString(w, "PNG-"+r.PathValue("id"))
	})
	c := newClient(t, mux, line.Config{})
	ctx := context.Background()
	q, err := c.Quota(ctx)
	if err != nil || q.Type != "limited" || q.Value != 5000 || q.TotalUsage != 42 {
		t.Fatalf("quota %+v %v", q, err)
	}
	ids, next, err := c.FollowerIDs(ctx, "", 0)
	if err != nil || len(ids) != 1 || next != "page2" {
		t.Fatalf("page 1: %v %q %v", ids, next, err)
	}
	ids, next, err = c.FollowerIDs(ctx, next, 0)
	if err != nil || len(ids) != 1 || next != "" {
		t.Fatalf("page 2: %v %q %v", ids, next, err)
	}
	body, ct, err := c.Content(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	body.Close()
	if string(b) != "PNG-m1" || ct != "image/png" {
		t.Fatalf("content %q %q", b, ct)
	}
}

// BenchmarkPushThroughLimiter sends pushes as fast as the limiter allows against a local
// fake and reports the rate next to LINE's 2,000 req/s push limit.
func BenchmarkPushThroughLimiter(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(answer(200, `{"sentMessages":[]}`)))
	defer srv.Close()
	c, _ := line.New(line.Config{APIURL: srv.URL, AccessToken: "t"})
	ctx := context.Background()
	var n atomic.Int64
	start := time.Now()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Push(ctx, user, hello, line.RetryKey(time.Now().String(), strconv.FormatInt(n.Add(1), 10))); err != nil {
				b.Error(err)
			}
		}
	})
	rate := float64(n.Load()) / time.Since(start).Seconds()
	b.ReportMetric(rate, "req/s")
	b.ReportMetric(100*rate/2000, "%_of_limit")
}
