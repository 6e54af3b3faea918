package ingest_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/line/line-bot-sdk-go/v8/linebot/webhook"

	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/ingest"
	"github.com/linestep/linestep/internal/keyring"
	"github.com/linestep/linestep/internal/metrics"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

const secret = "0123456789abcdef0123456789abcdef"

type fixture struct {
	db        *store.DB
	ch        channel.Channel
	committer *ingest.Committer
	processor *ingest.Processor
	srv       *httptest.Server
	metrics   *metrics.Metrics
}

func newFixture(t *testing.T, db *store.DB, maxBody int64) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	key, _ := keyring.ParseKey(keyring.GenerateKey())
	keys, _ := keyring.New(key)
	channels := channel.NewService(db, keys, clock.Real)
	ch, err := channels.Add(ctx, "test", secret, "token")
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	proc := ingest.NewProcessor(db, clock.Real, m, logger)
	com := ingest.NewCommitter(db, m, logger, proc.Notify)
	done := make(chan struct{})
	go func() { com.Run(ctx); close(done) }()
	mux := http.NewServeMux()
	mux.Handle("POST /webhook/{channelID}", &ingest.Handler{Channels: channels, Committer: com, Metrics: m, Clock: clock.Real, Logger: logger, MaxBody: maxBody})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	return &fixture{db: db, ch: ch, committer: com, processor: proc, srv: srv, metrics: m}
}

func sign(body []byte, key string) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func (f *fixture) post(t *testing.T, path string, body []byte, signature string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, bytes.NewReader(body))
	if signature != "" {
		req.Header.Set("x-line-signature", signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func event(id, typ string) string {
	return fmt.Sprintf(`{"type":%q,"mode":"active","timestamp":1763800000000,"source":{"type":"user","userId":"U0123456789abcdef0123456789abcdef"},"webhookEventId":%q,"deliveryContext":{"isRedelivery":false},"replyToken":"rt","message":{"type":"text","id":"1","quoteToken":"q","text":"hello"}}`, typ, id)
}

func body(events ...string) []byte {
	return []byte(`{"destination":"Uffffffffffffffffffffffffffffffff","events":[` + strings.Join(events, ",") + `]}`)
}

func countEvents(t *testing.T, db *store.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM webhook_events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWebhookAnswers(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, 4096)
		path := f.ch.WebhookPath()
		good := body(event("01J0000000000000000000000A", "message"))
		cases := []struct {
			name      string
			path      string
			body      []byte
			signature string
			want      int
			stored    int // events in the table afterwards
		}{
			{"missing signature", path, good, "", 401, 0},
			{"forged signature", path, good, sign(good, "another-secret"), 401, 0},
			{"garbled signature", path, good, "%%%not-base64", 401, 0},
			{"signature of another body", path, good, sign(body(event("X", "message")), secret), 401, 0},
			{"malformed JSON", path, []byte(`{"events":[`), sign([]byte(`{"events":[`), secret), 400, 0},
			{"event without an ID", path, body(`{"type":"message"}`), sign(body(`{"type":"message"}`), secret), 400, 0},
			{"bad escape in a message text", path, body(strings.Replace(event("01J0000000000000000000000C", "message"), "hello", `hel\lo`, 1)),
				sign(body(strings.Replace(event("01J0000000000000000000000C", "message"), "hello", `hel\lo`, 1)), secret), 400, 0},
			{"a good event and a bad one", path, body(event("01J0000000000000000000000D", "message"), `{"type":"message","webhookEventId":7}`),
				sign(body(event("01J0000000000000000000000D", "message"), `{"type":"message","webhookEventId":7}`), secret), 400, 0},
			{"text after the body", path, append(body(event("01J0000000000000000000000F", "message")), " {}"...),
				sign(append(body(event("01J0000000000000000000000F", "message")), " {}"...), secret), 400, 0},
			{"body over the limit", path, bytes.Repeat([]byte("x"), 5000), sign(bytes.Repeat([]byte("x"), 5000), secret), 413, 0},
			{"unknown channel", "/webhook/chnope", good, sign(good, secret), 404, 0},
			{"verify call: no events", path, body(), sign(body(), secret), 200, 0},
			{"valid", path, good, sign(good, secret), 200, 1},
			{"redelivered", path, good, sign(good, secret), 200, 1},
			{"type that does not exist yet", path, body(event("01J0000000000000000000000B", "hologram")), sign(body(event("01J0000000000000000000000B", "hologram")), secret), 200, 2},
		}
		for _, c := range cases {
			if got := f.post(t, c.path, c.body, c.signature); got != c.want {
				t.Errorf("%s: status %d, want %d", c.name, got, c.want)
			}
			if n := countEvents(t, db); n != c.stored {
				t.Errorf("%s: %d events stored, want %d", c.name, n, c.stored)
			}
		}
	})
}

// Events stored while nothing processed them (a crash, a restart) are processed by the
// next processor; unknown types end done, not failed; payloads are dropped once done.
func TestStoredEventsSurviveRestart(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, 0)
		b := body(event("E1", "message"), event("E2", "follow"), event("E3", "hologram"))
		if got := f.post(t, f.ch.WebhookPath(), b, sign(b, secret)); got != 200 {
			t.Fatalf("status %d", got)
		}
		// A new processor, as after a restart, with a handler for messages.
		proc := ingest.NewProcessor(db, clock.Real, metrics.New(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		var seen []string
		proc.Handle("message", func(ctx context.Context, tx *store.Tx, ev ingest.Event) error {
			seen = append(seen, ev.EventID+":"+ev.Decoded.GetType())
			return nil
		})
		n, err := proc.ProcessBatch(context.Background())
		if err != nil || n != 3 {
			t.Fatalf("ProcessBatch = %d, %v", n, err)
		}
		if len(seen) != 1 || seen[0] != "E1:message" {
			t.Fatalf("handled %v", seen)
		}
		rows, err := db.QueryContext(context.Background(), "SELECT event_id, state, payload FROM webhook_events ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, state string
			var payload []byte
			rows.Scan(&id, &state, &payload)
			if state != "done" || payload != nil {
				t.Errorf("event %s: state %s, payload kept: %v", id, state, payload != nil)
			}
		}
		if n, _ := proc.ProcessBatch(context.Background()); n != 0 {
			t.Fatalf("events processed twice: %d", n)
		}
	})
}

// A failing handler leaves no partial writes, does not hold back the other events of its
// batch, is retried with backoff and ends failed after MaxAttempts.
func TestFailingEventIsRetriedThenFailed(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db, 0)
		b := body(event("BAD", "message"), event("GOOD", "message"))
		if got := f.post(t, f.ch.WebhookPath(), b, sign(b, secret)); got != 200 {
			t.Fatalf("status %d", got)
		}
		clk := clock.NewFake(time.Now().Add(time.Minute))
		proc := ingest.NewProcessor(db, clk, metrics.New(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		proc.MaxAttempts = 3
		proc.Handle("message", func(ctx context.Context, tx *store.Tx, ev ingest.Event) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES (?, 'x')", "written-by-"+ev.EventID); err != nil {
				return err
			}
			if ev.EventID == "BAD" {
				return fmt.Errorf("handler refuses")
			}
			return nil
		})
		for attempt := 1; attempt <= 3; attempt++ {
			if _, err := proc.ProcessBatch(ctx); err != nil {
				t.Fatal(err)
			}
			clk.Advance(time.Hour)
		}
		var state, lastErr string
		var attempts int
		if err := db.QueryRowContext(ctx, "SELECT state, attempts, last_error FROM webhook_events WHERE event_id = 'BAD'").Scan(&state, &attempts, &lastErr); err != nil {
			t.Fatal(err)
		}
		if state != "failed" || attempts != 3 || !strings.Contains(lastErr, "handler refuses") {
			t.Fatalf("BAD: state %s, attempts %d, error %q", state, attempts, lastErr)
		}
		var n int
		db.QueryRowContext(ctx, "SELECT COUNT(*) FROM meta WHERE key = 'written-by-BAD'").Scan(&n)
		if n != 0 {
			t.Fatal("a failed event's writes were committed")
		}
		db.QueryRowContext(ctx, "SELECT COUNT(*) FROM meta WHERE key = 'written-by-GOOD'").Scan(&n)
		if n != 1 {
			t.Fatalf("the good event was applied %d times, want once", n)
		}
	})
}

// Concurrent webhooks are stored together in shared transactions, every one of them.
func TestGroupCommitUnderConcurrency(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, 0)
		const clients, each = 16, 25
		var wg sync.WaitGroup
		var failed atomic.Int32
		for c := range clients {
			wg.Go(func() {
				for i := range each {
					b := body(event(fmt.Sprintf("C%02dE%03d", c, i), "message"))
					req, _ := http.NewRequest(http.MethodPost, f.srv.URL+f.ch.WebhookPath(), bytes.NewReader(b))
					req.Header.Set("x-line-signature", sign(b, secret))
					resp, err := http.DefaultClient.Do(req)
					if err != nil || resp.StatusCode != 200 {
						failed.Add(1)
					}
					if resp != nil {
						resp.Body.Close()
					}
				}
			})
		}
		wg.Wait()
		if failed.Load() != 0 {
			t.Fatalf("%d requests failed", failed.Load())
		}
		if n := countEvents(t, db); n != clients*each {
			t.Fatalf("%d events stored, want %d", n, clients*each)
		}
	})
}

// While another process holds SQLite's write lock briefly, webhooks wait and succeed;
// when the database is gone, they get 503 so that LINE redelivers.
func TestDatabaseTroubleGets5xxNotLoss(t *testing.T) {
	db := testutil.NewSQLite(t)
	f := newFixture(t, db, 0)
	// Warm the channel cache: the point is the event write, not the lookup.
	b0 := body(event("WARM", "message"))
	f.post(t, f.ch.WebhookPath(), b0, sign(b0, secret))

	other, err := sql.Open("sqlite", "file:"+db.Path()+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		conn.ExecContext(context.Background(), "COMMIT")
		conn.Close()
		close(released)
	}()
	b := body(event("LOCKED", "message"))
	if got := f.post(t, f.ch.WebhookPath(), b, sign(b, secret)); got != 200 {
		t.Fatalf("webhook during a brief lock: %d, want 200 after waiting", got)
	}
	<-released
	if n := countEvents(t, db); n != 2 {
		t.Fatalf("%d events stored, want 2", n)
	}

	db.Close()
	b2 := body(event("GONE", "message"))
	if got := f.post(t, f.ch.WebhookPath(), b2, sign(b2, secret)); got != 503 {
		t.Fatalf("webhook with the database closed: %d, want 503", got)
	}
}

// While webhooks keep arriving the processor steps aside, but never for longer than
// MaxYield: a burst is stored first, and processing is delayed, not starved.
func TestProcessingStepsAsideForIngestButNotForever(t *testing.T) {
	db := testutil.NewSQLite(t)
	f := newFixture(t, db, 0)
	if code := f.post(t, "/webhook/"+f.ch.ID, body(event("01YIELD", "follow")), sign(body(event("01YIELD", "follow")), secret)); code != 200 {
		t.Fatalf("webhook: %d", code)
	}
	var busy atomic.Bool
	busy.Store(true)
	f.processor.Yield = busy.Load
	f.processor.MaxYield = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.processor.Run(ctx)
	pending := func() int {
		n, err := f.processor.Pending(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	time.Sleep(100 * time.Millisecond)
	if pending() != 1 {
		t.Fatalf("processed while ingest was busy")
	}
	deadline := time.Now().Add(5 * time.Second)
	for pending() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("processing starved by a busy ingest")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// What the handler stores of each event: the header columns, and the event's own bytes as
// sent (escapes, spacing and all), which the processor decodes later.
func TestStoredEventColumns(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, 0)
		ev1 := `{ "type" : "message", "mode":"standby", "timestamp":1763800000123, "webhookEventId":"01COLS1",
			"source":{"type":"group","groupId":"C0123456789abcdef0123456789abcdef","userId":"U0123456789abcdef0123456789abcdef"},
			"deliveryContext":{"isRedelivery":true},"replyToken":"rt",
			"message":{"type":"text","id":"1","quoteToken":"q","text":"\u3053\u3093\u306b\u3061\u306f \"quoted\" \ud83d\ude00"}}`
		ev2 := `{"type":"hologram","webhookEventId":"01COLS2","timestamp":1763800000456,"unknownField":[1,{"a":null}]}`
		b := []byte("{\"destination\":\"U1\",\"events\":[\n" + ev1 + " ,\n" + ev2 + "\n]}")
		if got := f.post(t, f.ch.WebhookPath(), b, sign(b, secret)); got != 200 {
			t.Fatalf("status %d", got)
		}
		type row struct {
			typ, mode, user string
			occurred        int64
			redelivery      bool
			payload         []byte
		}
		want := map[string]row{
			"01COLS1": {"message", "standby", "U0123456789abcdef0123456789abcdef", 1763800000123, true, []byte(ev1)},
			"01COLS2": {"hologram", "", "", 1763800000456, false, []byte(ev2)},
		}
		rows, err := db.QueryContext(context.Background(), "SELECT event_id, type, mode, line_user_id, occurred_at, redelivery, payload FROM webhook_events")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		seen := 0
		for rows.Next() {
			var id string
			var r row
			if err := rows.Scan(&id, &r.typ, &r.mode, &r.user, &r.occurred, &r.redelivery, &r.payload); err != nil {
				t.Fatal(err)
			}
			w, ok := want[id]
			if !ok {
				t.Fatalf("unexpected event %q", id)
			}
			if r.typ != w.typ || r.mode != w.mode || r.user != w.user || r.occurred != w.occurred || r.redelivery != w.redelivery || !bytes.Equal(r.payload, w.payload) {
				t.Errorf("%s: stored %+v\nwant %+v", id, r, w)
			}
			seen++
		}
		if err := rows.Err(); err != nil || seen != 2 {
			t.Fatalf("%d rows, %v", seen, err)
		}
		var text string
		f.processor.Handle("message", func(ctx context.Context, tx *store.Tx, ev ingest.Event) error {
			text = ev.Decoded.(webhook.MessageEvent).Message.(webhook.TextMessageContent).Text
			return nil
		})
		if n, err := f.processor.ProcessBatch(context.Background()); err != nil || n != 2 {
			t.Fatalf("ProcessBatch = %d, %v", n, err)
		}
		if text != "こんにちは \"quoted\" 😀" {
			t.Fatalf("processed text %q", text)
		}
	})
}
