package ingest

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/metrics"
	"github.com/linestep/linestep/internal/store"
)

// ErrClosed is returned by Store once the committer has stopped.
var ErrClosed = errors.New("ingest: committer stopped")

// Committer stores the events of concurrent webhook requests in shared transactions
// (group commit). SQLite has one writer and a durable commit costs an fsync, so one
// transaction per request caps throughput at the disk's fsync rate; here, while one
// transaction commits, the requests that arrive meanwhile queue up and go together in
// the next one.
type Committer struct {
	db      *store.DB
	metrics *metrics.Metrics
	logger  *slog.Logger
	queue   chan *storeRequest
	// writers is how many transactions may be in flight at once: one for SQLite, two for
	// PostgreSQL, which commits concurrent transactions in parallel.
	writers int
	// maxBatch bounds the events in one transaction so that a burst does not make one
	// huge transaction everybody waits for.
	maxBatch int
	// gatherWindow is how long a writer that found several requests queued waits for more
	// before it begins the transaction.
	gatherWindow time.Duration
	// onCommit is called after each commit that stored new events (the processor's wake).
	onCommit func()

	inflight   atomic.Int32 // batches being gathered or committed
	lastCommit atomic.Int64 // when the last one ended, Unix nanoseconds

	// inserts are the plain INSERTs of 1, 2, 4, ... maxChunk rows, prepared once (SQLite
	// only): SQLite would otherwise compile the statement again at every commit, which
	// in a CPU profile of BenchmarkIngest was about a quarter of the committer's CPU.
	// pgx keeps the statements it has seen prepared already.
	insertsMu sync.Mutex
	inserts   []*sql.Stmt

	stopOnce sync.Once
	stopped  chan struct{}
	wg       sync.WaitGroup
}

type storeRequest struct {
	channelID  string
	events     []line.RawEvent
	receivedAt time.Time
	done       chan storeResult
}

type storeResult struct {
	stored int
	err    error
}

// NewCommitter returns a committer; call Run to start it.
func NewCommitter(db *store.DB, m *metrics.Metrics, logger *slog.Logger, onCommit func()) *Committer {
	writers := 1
	if db.Dialect() == store.Postgres {
		// Two, not more: each commit costs the PostgreSQL server a fixed amount of CPU
		// (its round trips, the WAL flush), and fewer writers make larger batches. Under
		// BenchmarkIngest, four writers made batches of about 8.5 events and cost the
		// server about 50 µs of CPU per event; two, about 16 events and 30-40 µs; one
		// waited on every flush alone and was slower.
		writers = 2
	}
	return &Committer{
		db: db, metrics: m, logger: logger, onCommit: onCommit,
		queue:    make(chan *storeRequest, 4096),
		writers:  writers,
		maxBatch: 1000,
		// About one small SQLite commit: under BenchmarkIngest it takes the batches from
		// about 9 to about 15 events (and the rate up by a fifth); it is nothing against
		// LINE's 2 s.
		gatherWindow: 300 * time.Microsecond,
		stopped:      make(chan struct{}),
	}
}

// Busy reports that webhooks are arriving: requests are queued or being stored, or a
// commit ended moments ago (the next requests are still being read and verified).
func (c *Committer) Busy() bool {
	return len(c.queue) > 0 || c.inflight.Load() > 0 ||
		time.Since(time.Unix(0, c.lastCommit.Load())) < 25*time.Millisecond
}

// Store writes events durably and returns how many were new (the rest were already
// stored: redeliveries). It returns only once the transaction holding them has committed.
func (c *Committer) Store(ctx context.Context, channelID string, events []line.RawEvent, receivedAt time.Time) (int, error) {
	req := &storeRequest{channelID: channelID, events: events, receivedAt: receivedAt, done: make(chan storeResult, 1)}
	select {
	case c.queue <- req:
	case <-c.stopped:
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case res := <-req.done:
		return res.stored, res.err
	case <-ctx.Done():
		// The events may still be committed; the caller answers 5xx, LINE redelivers and
		// the redelivery is a no-op.
		return 0, ctx.Err()
	}
}

// Run commits queued requests until ctx is done, then fails whatever is still queued.
// Stop the HTTP server first so that nothing is left waiting.
func (c *Committer) Run(ctx context.Context) {
	for range c.writers {
		c.wg.Go(func() { c.loop(ctx) })
	}
	c.wg.Wait()
	c.stopOnce.Do(func() { close(c.stopped) })
	c.insertsMu.Lock()
	for _, s := range c.inserts {
		s.Close()
	}
	c.inserts = nil
	c.insertsMu.Unlock()
	for {
		select {
		case req := <-c.queue:
			req.done <- storeResult{err: ErrClosed}
		default:
			return
		}
	}
}

func (c *Committer) loop(ctx context.Context) {
	var timer *time.Timer
	for {
		var first *storeRequest
		select {
		case <-ctx.Done():
			return
		case first = <-c.queue:
		}
		// Busy from here: the requests taken off the queue are being stored.
		c.inflight.Add(1)
		batch := []*storeRequest{first}
		n := len(first.events)
	gather:
		for n < c.maxBatch {
			select {
			case req := <-c.queue:
				batch = append(batch, req)
				n += len(req.events)
			default:
				break gather
			}
		}
		// Several requests waiting means webhooks are arriving concurrently: wait a little
		// for more, so that one commit (and its fsync) serves more of them. A lone request
		// is committed at once.
		if len(batch) > 1 && n < c.maxBatch && c.gatherWindow > 0 {
			if timer == nil {
				timer = time.NewTimer(c.gatherWindow)
			} else {
				timer.Reset(c.gatherWindow)
			}
		wait:
			for n < c.maxBatch {
				select {
				case req := <-c.queue:
					batch = append(batch, req)
					n += len(req.events)
				case <-timer.C:
					break wait
				}
			}
			timer.Stop()
		}
		c.commit(ctx, batch, n)
		c.lastCommit.Store(time.Now().UnixNano())
		c.inflight.Add(-1)
	}
}

func (c *Committer) commit(ctx context.Context, batch []*storeRequest, n int) {
	stored := make([]int, len(batch))
	byType := map[string]int{}
	// The commit itself is not cancelled by shutdown: requests are waiting on it.
	ctx = context.WithoutCancel(ctx)
	errs := make([]error, len(batch))
	err := c.store(ctx, batch, stored, byType)
	if err != nil && len(batch) > 1 && !store.IsBusy(err) {
		// One request can fail a shared transaction for all (its channel was removed by
		// another instance, which this one's channel cache has not seen yet): store each
		// request alone, so that only its own webhook is answered 5xx and redelivered.
		c.logger.Warn("ingest: group commit failed; storing its requests one by one", "requests", len(batch), "events", n, "err", err)
		clear(byType)
		for i := range batch {
			// Each call counts afresh (a retry clears its counts): merge them after.
			types := map[string]int{}
			if errs[i] = c.store(ctx, batch[i:i+1], stored[i:i+1], types); errs[i] == nil {
				for typ, k := range types {
					byType[typ] += k
				}
			}
		}
	} else {
		for i := range errs {
			errs[i] = err
		}
	}
	total, failed := 0, 0
	var firstErr error
	for i, req := range batch {
		if errs[i] != nil {
			failed += len(req.events)
			firstErr = cmp.Or(firstErr, errs[i])
			req.done <- storeResult{err: errs[i]}
			continue
		}
		total += stored[i]
		req.done <- storeResult{stored: stored[i]}
	}
	if failed > 0 {
		c.logger.Error("ingest: commit failed", "requests", len(batch), "events", failed, "err", firstErr)
	}
	if failed > 0 && failed == n {
		return
	}
	c.metrics.CommitBatchEvents.Observe(float64(n - failed))
	for typ, k := range byType {
		c.metrics.EventsStored.WithLabelValues(metricType(typ)).Add(float64(k))
	}
	if dup := n - failed - total; dup > 0 {
		c.metrics.EventsDuplicate.Add(float64(dup))
	}
	if total > 0 && c.onCommit != nil {
		c.onCommit()
	}
}

// store writes a batch of events, counting the new ones of each request in stored and
// of each type in byType.
func (c *Committer) store(ctx context.Context, batch []*storeRequest, stored []int, byType map[string]int) error {
	if c.db.Dialect() == store.Postgres {
		return c.storeAlone(ctx, batch, stored, byType)
	}
	return c.storeInTx(ctx, batch, stored, byType)
}

// storeInTx stores the batch in one transaction and counts the new events of each request
// in stored and of each type in byType.
func (c *Committer) storeInTx(ctx context.Context, batch []*storeRequest, stored []int, byType map[string]int) error {
	// Prepared outside the transaction: with SQLite, preparing needs the writer's one
	// connection, which the transaction holds.
	stmts, err := c.prepared(ctx)
	if err != nil {
		return err
	}
	// Redeliveries are rare: first insert the whole batch with plain INSERTs, which is all
	// a batch of new events needs, and only when a statement stores fewer rows than it was
	// given roll back and insert again with RETURNING to tell each request its own count.
	err = c.db.WriteTx(ctx, func(tx *store.Tx) error { return c.insert(ctx, tx, stmts, batch, nil, nil) })
	if errors.Is(err, errDuplicates) {
		return c.db.WriteTx(ctx, func(tx *store.Tx) error {
			clear(stored)
			clear(byType)
			return c.insert(ctx, tx, nil, batch, stored, byType)
		})
	}
	if err != nil {
		return err
	}
	for i, req := range batch {
		stored[i] = len(req.events)
		for j := range req.events {
			byType[req.events[j].Type]++
		}
	}
	return nil
}

// storeAlone stores a batch (PostgreSQL) with one statement alone, outside a
// transaction: it commits on its own, in one round trip to the server instead of three
// (BEGIN, INSERT, COMMIT), and its RETURNING tells each request its own count. With the
// server sharing the CPUs, each round trip waits for its process to be scheduled: under
// BenchmarkIngest BEGIN alone took 0.6-1.1 ms.
func (c *Committer) storeAlone(ctx context.Context, batch []*storeRequest, stored []int, byType map[string]int) error {
	delay := 5 * time.Millisecond
	for attempt := 1; ; attempt++ {
		clear(stored)
		clear(byType)
		err := insertPostgres(ctx, c.db, batch, stored, byType)
		// Two writers' statements holding the same redelivered events in different orders
		// can deadlock; PostgreSQL aborts one, which has stored nothing and is tried again.
		if err == nil || !store.IsBusy(err) || attempt == 5 {
			return err
		}
		time.Sleep(delay)
		delay *= 2
	}
}

// knownTypes are LINE's webhook event types; anything else is counted as "other" so that
// a sender cannot grow the metrics' label set without bound.
var knownTypes = map[string]bool{
	"message": true, "unsend": true, "follow": true, "unfollow": true, "join": true, "leave": true,
	"memberJoined": true, "memberLeft": true, "postback": true, "videoPlayComplete": true,
	"beacon": true, "accountLink": true, "things": true, "membership": true, "module": true,
	"activated": true, "deactivated": true, "botSuspended": true, "botResumed": true, "delivery": true,
}

func metricType(t string) string {
	if knownTypes[t] {
		return t
	}
	return "other"
}
