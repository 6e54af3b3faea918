package ingest

import (
	"context"
	"errors"
	"fmt"
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
	// writers is how many transactions may be in flight at once: one for SQLite, a few for
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
		writers = 4
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

// insertChunk bounds the rows of one INSERT statement: 10 columns x 400 rows stays under
// both engines' limits on bound parameters.
const insertChunk = 400

// errDuplicates makes the fast attempt at a batch roll back: some of its events were
// already stored (redeliveries), and only the slower INSERT ... RETURNING tells which.
var errDuplicates = errors.New("ingest: batch holds events already stored")

func (c *Committer) commit(ctx context.Context, batch []*storeRequest, n int) {
	stored := make([]int, len(batch))
	byType := map[string]int{}
	// The commit itself is not cancelled by shutdown: requests are waiting on it.
	ctx = context.WithoutCancel(ctx)
	// Redeliveries are rare: first insert the whole batch with plain INSERTs, which is all
	// a batch of new events needs, and only when a statement stores fewer rows than it was
	// given roll back and insert again with RETURNING to tell each request its own count.
	err := c.db.WriteTx(ctx, func(tx *store.Tx) error { return c.insert(ctx, tx, batch, n, nil, nil) })
	if errors.Is(err, errDuplicates) {
		err = c.db.WriteTx(ctx, func(tx *store.Tx) error {
			clear(stored)
			clear(byType)
			return c.insert(ctx, tx, batch, n, stored, byType)
		})
	} else if err == nil {
		for i, req := range batch {
			stored[i] = len(req.events)
			for j := range req.events {
				byType[req.events[j].Type]++
			}
		}
	}
	total := 0
	for i, req := range batch {
		if err != nil {
			req.done <- storeResult{err: err}
			continue
		}
		total += stored[i]
		req.done <- storeResult{stored: stored[i]}
	}
	if err != nil {
		c.logger.Error("ingest: group commit failed", "requests", len(batch), "events", n, "err", err)
		return
	}
	c.metrics.CommitBatchEvents.Observe(float64(n))
	for typ, k := range byType {
		c.metrics.EventsStored.WithLabelValues(metricType(typ)).Add(float64(k))
	}
	if dup := n - total; dup > 0 {
		c.metrics.EventsDuplicate.Add(float64(dup))
	}
	if total > 0 && c.onCommit != nil {
		c.onCommit()
	}
}

// insert writes the batch's n events in chunks of at most insertChunk rows. With stored
// nil it uses plain INSERTs and fails with errDuplicates as soon as a chunk stores fewer
// rows than it holds; otherwise it uses INSERT ... RETURNING and counts the new events of
// each request in stored and of each type in byType.
func (c *Committer) insert(ctx context.Context, tx *store.Tx, batch []*storeRequest, n int, stored []int, byType map[string]int) error {
	returning := stored != nil
	args := make([]any, 0, min(n, insertChunk)*10)
	var owners []int // the request of each row of the chunk
	rows := 0
	flush := func() error {
		if rows == 0 {
			return nil
		}
		defer func() { args, owners, rows = args[:0], owners[:0], 0 }()
		q := insertQuery(rows, returning)
		if !returning {
			res, err := tx.ExecContext(ctx, q, args...)
			if err != nil {
				return fmt.Errorf("ingest: insert events: %w", err)
			}
			if k, err := res.RowsAffected(); err != nil || k != int64(rows) {
				return errDuplicates
			}
			return nil
		}
		res, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("ingest: insert events: %w", err)
		}
		// Which request each new row came from, to tell each its own count.
		owner := make(map[string]int, rows)
		for r, i := range owners {
			owner[args[r*10].(string)+"\x00"+args[r*10+1].(string)] = i
		}
		for res.Next() {
			var ch, id, typ string
			if err := res.Scan(&ch, &id, &typ); err != nil {
				res.Close()
				return fmt.Errorf("ingest: insert events: %w", err)
			}
			stored[owner[ch+"\x00"+id]]++
			byType[typ]++
		}
		if err := res.Close(); err != nil {
			return fmt.Errorf("ingest: insert events: %w", err)
		}
		if err := res.Err(); err != nil {
			return fmt.Errorf("ingest: insert events: %w", err)
		}
		return nil
	}
	for i, req := range batch {
		received := store.Millis(req.receivedAt)
		for j := range req.events {
			ev := &req.events[j]
			args = append(args, req.channelID, ev.WebhookEventID, ev.Type, ev.Mode, ev.UserID,
				ev.Timestamp, ev.IsRedelivery, []byte(ev.Raw), received, received)
			if returning {
				owners = append(owners, i)
			}
			if rows++; rows == insertChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// insertQueries caches the INSERT statement text by row count and RETURNING.
var insertQueries sync.Map // insertKey -> string

type insertKey struct {
	rows      int
	returning bool
}

func insertQuery(rows int, returning bool) string {
	key := insertKey{rows, returning}
	if q, ok := insertQueries.Load(key); ok {
		return q.(string)
	}
	q := `INSERT INTO webhook_events (channel_id, event_id, type, mode, line_user_id, occurred_at, redelivery, payload, received_at, next_attempt_at)
		VALUES ` + store.Placeholders(rows, 10) + `
		ON CONFLICT (channel_id, event_id) DO NOTHING`
	if returning {
		q += `
		RETURNING channel_id, event_id, type`
	}
	insertQueries.Store(key, q)
	return q
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
