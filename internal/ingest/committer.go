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
	// onCommit is called after each commit that stored new events (the processor's wake).
	onCommit func()

	inflight   atomic.Int32 // transactions being committed
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
		stopped:  make(chan struct{}),
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
	for {
		var first *storeRequest
		select {
		case <-ctx.Done():
			return
		case first = <-c.queue:
		}
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
		c.inflight.Add(1)
		c.commit(ctx, batch, n)
		c.lastCommit.Store(time.Now().UnixNano())
		c.inflight.Add(-1)
	}
}

// insertChunk bounds the rows of one INSERT statement: 10 columns x 400 rows stays under
// both engines' limits on bound parameters.
const insertChunk = 400

func (c *Committer) commit(ctx context.Context, batch []*storeRequest, n int) {
	stored := make([]int, len(batch))
	var byType map[string]int
	// The commit itself is not cancelled by shutdown: requests are waiting on it.
	err := c.db.WriteTx(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		byType = map[string]int{}
		clear(stored)
		type row struct {
			req int
			ev  *line.RawEvent
		}
		rows := make([]row, 0, n)
		for i, req := range batch {
			for j := range req.events {
				rows = append(rows, row{i, &req.events[j]})
			}
		}
		for start := 0; start < len(rows); start += insertChunk {
			chunk := rows[start:min(start+insertChunk, len(rows))]
			args := make([]any, 0, len(chunk)*10)
			for _, r := range chunk {
				req := batch[r.req]
				received := store.Millis(req.receivedAt)
				args = append(args, req.channelID, r.ev.WebhookEventID, r.ev.Type, r.ev.Mode, r.ev.UserID,
					r.ev.Timestamp, r.ev.IsRedelivery, []byte(r.ev.Raw), received, received)
			}
			q := `INSERT INTO webhook_events (channel_id, event_id, type, mode, line_user_id, occurred_at, redelivery, payload, received_at, next_attempt_at)
				VALUES ` + store.Placeholders(len(chunk), 10) + `
				ON CONFLICT (channel_id, event_id) DO NOTHING
				RETURNING channel_id, event_id, type`
			res, err := tx.QueryContext(ctx, q, args...)
			if err != nil {
				return fmt.Errorf("ingest: insert events: %w", err)
			}
			// Which request each new row came from, to tell each its own count.
			owner := make(map[string]int, len(chunk))
			for _, r := range chunk {
				owner[batch[r.req].channelID+"\x00"+r.ev.WebhookEventID] = r.req
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
		}
		return nil
	})
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
