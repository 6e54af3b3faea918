package broadcast_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/line/line-bot-sdk-go/v8/linebot/messaging_api"

	"github.com/linestep/linestep/internal/broadcast"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/server"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// The delivery benchmarks run linestep on the real clock against the emulator enforcing
// LINE's published limits (multicast 200 req/s, push 2,000 req/s), and time from the
// moment the work exists to the moment LINE has accepted every message. Sizes come from
// the environment so the full targets (1,000,000 friends) can be run by hand:
//
//	LINESTEP_BENCH_FRIENDS=1000000 go test ./internal/broadcast -run '^$' -bench . -benchtime 1x
func benchSize(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchServer starts linestep with n followers known to it and to the emulator.
func benchServer(b *testing.B, dsn string, n int) (*servertest.Harness, []int64) {
	b.Helper()
	h := servertest.StartWith(b, dsn, func(c *server.Config) {
		c.Clock = clock.Real
		c.LineMaxAttempts = 0 // the client's default retries
	})
	users, err := h.Emu.AddFollowers(h.Ch, n)
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]int64, 0, n)
	ctx := context.Background()
	const per = 500
	for start := 0; start < n; start += per {
		chunk := users[start:min(start+per, n)]
		err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
			args := make([]any, 0, len(chunk)*3)
			for i, u := range chunk {
				args = append(args, h.Ch, u, fmt.Sprintf("友だち%d", start+i))
			}
			q := `INSERT INTO friends (channel_id, line_user_id, display_name, status, status_at, created_at, updated_at) VALUES ` +
				repeatRows(len(chunk), "(?, ?, ?, 'following', 0, 0, 0)") + " RETURNING id"
			rows, err := tx.QueryContext(ctx, q, args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					return err
				}
				ids = append(ids, id)
			}
			return rows.Err()
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if h.Srv.DB.Dialect() == store.Postgres {
		// Autovacuum would analyse a table grown by n rows; the test server runs without
		// it, and without statistics PostgreSQL may plan each page of friends as a scan
		// and a sort of all of them.
		if _, err := h.Srv.DB.ExecContext(ctx, "ANALYZE friends"); err != nil {
			b.Fatal(err)
		}
	}
	return h, ids
}

// pgCheckpoints is how many checkpoints PostgreSQL has started (0 on SQLite).
func pgCheckpoints(b *testing.B, db *store.DB) int64 {
	if db.Dialect() != store.Postgres {
		return 0
	}
	var n int64
	if err := db.QueryRowContext(context.Background(), "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter").Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

func repeatRows(n int, row string) string {
	s := row
	for range n - 1 {
		s += ", " + row
	}
	return s
}

// waitSent waits until LINE (the emulator) has accepted want deliveries, then until
// linestep has recorded them all as sent, sampling the heap meanwhile. It polls the
// emulator's counters, which cost nothing, and the database only at the end: counting a
// million deliveries by state every few milliseconds would load the machine it measures.
// With LINESTEP_BENCH_CPUPROFILE set to a directory, the CPU profile of the wait (the
// timed part) is written there as <benchmark>.cpu.
func waitSent(b *testing.B, h *servertest.Harness, start, want int, limit time.Duration) (accepted, recorded time.Time, peakHeapMB float64) {
	b.Helper()
	if dir := os.Getenv("LINESTEP_BENCH_CPUPROFILE"); dir != "" {
		f, err := os.Create(filepath.Join(dir, strings.ReplaceAll(b.Name(), "/", "_")+".cpu"))
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	deadline := time.Now().Add(limit)
	var ms runtime.MemStats
	for i := 0; ; i++ {
		if i%10 == 0 {
			runtime.ReadMemStats(&ms)
			peakHeapMB = max(peakHeapMB, float64(ms.HeapInuse)/(1<<20))
		}
		if accepted.IsZero() && h.Emu.Stats().Deliveries-start >= want {
			accepted = time.Now()
		}
		if !accepted.IsZero() {
			c, err := h.Srv.Delivery.Counts(context.Background(), h.Ch)
			if err != nil {
				b.Fatal(err)
			}
			if c[delivery.Failed] > 0 {
				b.Fatalf("%d deliveries failed", c[delivery.Failed])
			}
			if c[delivery.Sent] >= want {
				return accepted, time.Now(), peakHeapMB
			}
		}
		if time.Now().After(deadline) {
			c, _ := h.Srv.Delivery.Counts(context.Background(), h.Ch)
			b.Fatalf("after %v: LINE accepted %d of %d, linestep counts %v", limit, h.Emu.Stats().Deliveries-start, want, c)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkBroadcastIdentical: one message to every friend, which leaves by multicast.
// LINE's ceiling is 200 calls/s x 500 recipients = 100,000 recipients/s. s_total runs
// to the moment LINE has accepted the last recipient, s_recorded to the moment linestep
// has recorded every delivery as sent.
func BenchmarkBroadcastIdentical(b *testing.B) {
	n := benchSize("LINESTEP_BENCH_FRIENDS", 100_000)
	eachBenchDSN(b, func(b *testing.B, dsn string) {
		h, _ := benchServer(b, dsn, n)
		b.ResetTimer()
		base := h.Emu.Stats().Deliveries
		start := time.Now()
		create(b, h, broadcast.Broadcast{Template: text("年末セールのお知らせ")})
		accepted, recorded, heap := waitSent(b, h, base, n, 10*time.Minute)
		b.StopTimer()
		el := accepted.Sub(start)
		b.ReportMetric(float64(n)/el.Seconds(), "recipients/s")
		b.ReportMetric(el.Seconds(), "s_total")
		b.ReportMetric(recorded.Sub(start).Seconds(), "s_recorded")
		b.ReportMetric(heap, "peak_heap_MB")
		b.ReportMetric(float64(n)/el.Seconds()/100_000, "of_LINE_ceiling")
	})
}

// BenchmarkBroadcastPersonalised: a message with each friend's name, which leaves by
// push. LINE's ceiling is 2,000 pushes/s.
func BenchmarkBroadcastPersonalised(b *testing.B) {
	n := benchSize("LINESTEP_BENCH_PUSH_FRIENDS", 20_000)
	eachBenchDSN(b, func(b *testing.B, dsn string) {
		h, _ := benchServer(b, dsn, n)
		b.ResetTimer()
		base := h.Emu.Stats().Deliveries
		start := time.Now()
		create(b, h, broadcast.Broadcast{Template: text("{{display_name}}さん、今月のお知らせです")})
		accepted, recorded, _ := waitSent(b, h, base, n, 10*time.Minute)
		b.StopTimer()
		el := accepted.Sub(start)
		b.ReportMetric(float64(n)/el.Seconds(), "pushes/s")
		b.ReportMetric(float64(n)/el.Seconds()/2000, "of_LINE_limit")
		b.ReportMetric(recorded.Sub(start).Seconds(), "s_recorded")
	})
}

// BenchmarkScenarioStepSameMoment: n friends reach the same step at the same moment;
// the time is from that moment to the last message accepted by LINE.
func BenchmarkScenarioStepSameMoment(b *testing.B) {
	n := benchSize("LINESTEP_BENCH_STEP_FRIENDS", 100_000)
	eachBenchDSN(b, func(b *testing.B, dsn string) {
		seeding := time.Now()
		h, ids := benchServer(b, dsn, n)
		seeded := time.Since(seeding)
		ctx := context.Background()
		def, err := scenario.ParseDefinition([]byte(`
trigger: {type: manual}
steps:
  - {key: one, messages: [{type: text, text: ステップ1}]}
  - {key: two, timing: {after: 1h}, messages: [{type: text, text: 3日目のご案内}]}
`))
		if err != nil {
			b.Fatal(err)
		}
		var scID int64
		err = h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
			sc, err := h.Srv.Scenarios.Save(ctx, tx, scenario.Scenario{ChannelID: h.Ch, Key: "course", Definition: def, Enabled: true})
			scID = sc.ID
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		base := h.Emu.Stats().Deliveries
		// Everyone is waiting for step two, due once their enrolments are all written
		// (they would have been for an hour): writing them takes about as long as
		// writing the friends did, on a machine as busy.
		due := time.Now().Add(2*time.Second + 2*seeded).Truncate(time.Millisecond)
		for start := 0; start < n; start += 500 {
			chunk := ids[start:min(start+500, n)]
			args := make([]any, 0, len(chunk)*6)
			for _, id := range chunk {
				args = append(args, scID, id, h.Ch, store.Millis(due.Add(-time.Hour)), store.Millis(due.Add(-time.Hour)), store.Millis(due))
			}
			if _, err := h.Srv.DB.ExecContext(ctx, `INSERT INTO enrollments (scenario_id, friend_id, channel_id, state, next_step, last_step,
				anchor_at, last_step_at, due_at, updated_at) VALUES `+repeatRows(len(chunk), "(?, ?, ?, 'active', 'two', 'one', ?, ?, ?, 0)"), args...); err != nil {
				b.Fatal(err)
			}
		}
		if h.Srv.DB.Dialect() == store.Postgres {
			// Autovacuum would have analysed a table grown by n rows within the hour; the
			// test server runs without it, and without statistics PostgreSQL plans the
			// first claims as a sort of every due enrolment.
			if _, err := h.Srv.DB.ExecContext(ctx, "ANALYZE enrollments"); err != nil {
				b.Fatal(err)
			}
		}
		if time.Until(due) <= 0 {
			b.Fatalf("writing the enrolments took past their due time")
		}
		checkpoints := pgCheckpoints(b, h.Srv.DB)
		b.ResetTimer()
		time.Sleep(time.Until(due))
		accepted, recorded, _ := waitSent(b, h, base, n, 10*time.Minute)
		b.StopTimer()
		if h.Srv.DB.Dialect() == store.Postgres {
			// Checkpoints that began during the step (flushing what the seeding wrote) are
			// the main source of spread between runs.
			b.ReportMetric(float64(pgCheckpoints(b, h.Srv.DB)-checkpoints), "checkpoints")
		}
		el := accepted.Sub(due)
		b.ReportMetric(el.Seconds(), "s_after_due")
		b.ReportMetric(recorded.Sub(due).Seconds(), "s_recorded")
		b.ReportMetric(float64(n)/el.Seconds(), "recipients/s")
	})
}

// BenchmarkNaivePushLoop is the baseline: what a developer writes by hand with the
// official SDK, one push per friend in a loop.
func BenchmarkNaivePushLoop(b *testing.B) {
	n := benchSize("LINESTEP_BENCH_NAIVE_FRIENDS", 10_000)
	h, _ := benchServer(b, testutil.SQLitePath(b), n)
	users, err := h.Emu.Users(h.Ch)
	if err != nil {
		b.Fatal(err)
	}
	api, err := messaging_api.NewMessagingApiAPI("channel-token", messaging_api.WithEndpoint(h.EmulatorURL),
		messaging_api.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	if err != nil {
		b.Fatal(err)
	}
	// Past LINE's 2,000 pushes/s the loop gets 429s; the SDK does not retry them, so
	// those friends simply do not get the message.
	var sent atomic.Int64
	start := time.Now()
	for _, u := range users[:n] {
		_, err := api.PushMessage(&messaging_api.PushMessageRequest{To: u.ID,
			Messages: []messaging_api.MessageInterface{messaging_api.TextMessage{Text: "年末セールのお知らせ"}}}, "")
		if err == nil {
			sent.Add(1)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(sent.Load())/el.Seconds(), "recipients/s")
	b.ReportMetric(float64(n-int(sent.Load())), "lost")
}

func eachBenchDSN(b *testing.B, fn func(b *testing.B, dsn string)) {
	b.Run("sqlite", func(b *testing.B) { fn(b, testutil.SQLitePath(b)) })
	b.Run("postgres", func(b *testing.B) { fn(b, testutil.PostgresURL(b)) })
}
