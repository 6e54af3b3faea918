package ingest_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/ingest"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/metrics"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

func rawEvents(ids ...string) []line.RawEvent {
	evs := make([]line.RawEvent, len(ids))
	for i, id := range ids {
		evs[i] = line.RawEvent{WebhookEventID: id, Type: "message", Mode: "active", Timestamp: 1763800000000,
			SourceType: "user", UserID: "U0123456789abcdef0123456789abcdef", Raw: []byte(event(id, "message"))}
	}
	return evs
}

// Store tells each request how many of its events were new, also when redeliveries share
// a transaction with new events (the committer's fast path rolls back and counts again).
func TestCommitterCountsRedeliveries(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, 0)
		ctx := context.Background()
		put := func(ids ...string) int {
			t.Helper()
			n, err := f.committer.Store(ctx, f.ch.ID, rawEvents(ids...), time.Now())
			if err != nil {
				t.Fatalf("Store(%v): %v", ids, err)
			}
			return n
		}
		if n := put("A1", "A2"); n != 2 {
			t.Fatalf("new events: stored %d, want 2", n)
		}
		if n := put("A2", "A3"); n != 1 {
			t.Fatalf("one redelivered, one new: stored %d, want 1", n)
		}
		if n := put("A1", "A2", "A3"); n != 0 {
			t.Fatalf("all redelivered: stored %d, want 0", n)
		}
		if n := put("A4", "A4"); n != 1 {
			t.Fatalf("the same event twice in one request: stored %d, want 1", n)
		}

		// Concurrent requests, batched together or not, each with one event of its own and
		// one they all share: exactly one of them stores the shared one.
		const clients = 16
		counts := make([]int, clients)
		var wg sync.WaitGroup
		for i := range clients {
			wg.Go(func() {
				n, err := f.committer.Store(ctx, f.ch.ID, rawEvents("SHARED", fmt.Sprintf("OWN%02d", i)), time.Now())
				if err != nil {
					t.Errorf("client %d: %v", i, err)
				}
				counts[i] = n
			})
		}
		wg.Wait()
		total := 0
		for i, n := range counts {
			if n != 1 && n != 2 {
				t.Errorf("client %d: stored %d, want 1 or 2", i, n)
			}
			total += n
		}
		if total != clients+1 {
			t.Errorf("stored %d in all, want %d", total, clients+1)
		}
		if n := countEvents(t, db); n != 4+clients+1 {
			t.Fatalf("%d events in the table, want %d", n, 4+clients+1)
		}
	})
}

// Batches of every size are stored whole: the INSERT is split into chunks (powers of two,
// prepared once, with SQLite), and a redelivery in a late chunk still sends the batch down
// the counting path without losing the rest.
func TestCommitterStoresEveryChunk(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, 0)
		ctx := context.Background()
		want := 0
		for _, size := range []int{1, 2, 3, 7, 255, 256, 257, 700} {
			ids := make([]string, size)
			for i := range ids {
				ids[i] = fmt.Sprintf("S%04dE%04d", size, i)
			}
			n, err := f.committer.Store(ctx, f.ch.ID, rawEvents(ids...), time.Now())
			if err != nil || n != size {
				t.Fatalf("%d events: stored %d, %v", size, n, err)
			}
			want += size
			if got := countEvents(t, db); got != want {
				t.Fatalf("after %d events: %d in the table, want %d", size, got, want)
			}
		}
		// 300 events of which the 290th is stored already: it falls in the last chunks
		// (256 + 32 + 8 + 4).
		ids := make([]string, 300)
		for i := range ids {
			ids[i] = fmt.Sprintf("LATE%04d", i)
		}
		ids[289] = "S0700E0699"
		n, err := f.committer.Store(ctx, f.ch.ID, rawEvents(ids...), time.Now())
		if err != nil || n != 299 {
			t.Fatalf("299 new and one redelivered: stored %d, %v", n, err)
		}
		if got := countEvents(t, db); got != want+299 {
			t.Fatalf("%d in the table, want %d", got, want+299)
		}
	})
}

// A request without events (nothing to store) is answered, not stuck or fatal.
func TestCommitterStoresNothingForNoEvents(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, 0)
		if n, err := f.committer.Store(context.Background(), f.ch.ID, nil, time.Now()); err != nil || n != 0 {
			t.Fatalf("Store(no events) = %d, %v", n, err)
		}
		if n := countEvents(t, db); n != 0 {
			t.Fatalf("%d events stored", n)
		}
	})
}

// A request that fails a shared transaction fails alone: the others in its batch are
// stored and answered. Here its channel is gone (removed by another instance, say, while
// this one's channel cache still knew it), so its rows break the channel reference.
func TestCommitterIsolatesAFailingRequest(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, 0)
		ctx, cancel := context.WithCancel(context.Background())
		m := metrics.New()
		com := ingest.NewCommitter(db, m, slog.New(slog.DiscardHandler), nil)
		type result struct {
			n   int
			err error
		}
		results := make([]chan result, 3)
		channels := []string{f.ch.ID, "ch-removed-meanwhile", f.ch.ID}
		for i := range results {
			results[i] = make(chan result, 1)
			go func() {
				n, err := com.Store(ctx, channels[i], rawEvents(fmt.Sprintf("ISO%d-1", i), fmt.Sprintf("ISO%d-2", i)), time.Now())
				results[i] <- result{n, err}
			}()
		}
		// All three wait before the committer starts, so that they share its first batch.
		for deadline := time.Now().Add(10 * time.Second); com.Queued() < 3; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d requests queued, want 3", com.Queued())
			}
		}
		done := make(chan struct{})
		go func() { com.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		for i, ch := range results {
			r := <-ch
			if i == 1 {
				if r.err == nil {
					t.Errorf("request for a removed channel: stored %d, want an error", r.n)
				}
				continue
			}
			if r.err != nil || r.n != 2 {
				t.Errorf("request %d: stored %d, %v; want both its events", i, r.n, r.err)
			}
		}
		if n := countEvents(t, db); n != 4 {
			t.Fatalf("%d events in the table, want the 4 of the good requests", n)
		}
		if got := counterSum(t, m, "linestep_events_stored_total"); got != 4 {
			t.Errorf("events stored metric %v, want 4", got)
		}
	})
}

// counterSum adds up a counter of the ingest's metrics over its labels.
func counterSum(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, c := range mf.GetMetric() {
				sum += c.GetCounter().GetValue()
			}
		}
	}
	return sum
}
