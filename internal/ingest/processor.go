package ingest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/line/line-bot-sdk-go/v8/linebot/webhook"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/metrics"
	"github.com/linestep/linestep/internal/store"
)

// Event is a stored webhook event as handlers see it.
type Event struct {
	ID         int64 // our row ID: increasing in arrival order
	ChannelID  string
	EventID    string // LINE's webhookEventId
	Type       string
	Mode       string
	UserID     string // source.userId; empty for events without a user
	OccurredAt time.Time
	Redelivery bool
	ReceivedAt time.Time
	Attempts   int // earlier failed attempts
	Raw        []byte
	// Decoded is the SDK's typed event (webhook.UnknownEvent for types it does not know).
	Decoded webhook.EventInterface
}

// Standby reports whether another channel has chat control (mode "standby"): the event
// updates what we know but must not make us send anything.
func (e Event) Standby() bool { return e.Mode == "standby" }

// HandlerFunc applies one event inside the processing transaction. Everything it writes
// commits together with the event being marked done, so an event is applied exactly
// once; it must make no remote call (it holds the writer).
type HandlerFunc func(ctx context.Context, tx *store.Tx, ev Event) error

// ErrPermanent marks a failure that retrying cannot fix (an undecodable event).
var ErrPermanent = errors.New("permanent failure")

// Processor applies stored events to the handlers registered for their type, in arrival
// order, a batch per transaction. It survives restarts: what is stored and not yet done is
// simply still pending.
type Processor struct {
	db      *store.DB
	clock   clock.Clock
	metrics *metrics.Metrics
	logger  *slog.Logger

	mu       sync.RWMutex
	handlers map[string][]HandlerFunc

	wake chan struct{}

	// BatchSize bounds the events per transaction; with SQLite the webhook committer
	// waits for the writer meanwhile, so batches stay small.
	BatchSize int
	// PollInterval is how often the processor looks for due retries when nothing wakes it.
	PollInterval time.Duration
	// MaxAttempts is how often a failing event is tried before it is marked failed.
	MaxAttempts int
	// Yield, when set, reports that webhooks are waiting to be stored. With SQLite's one
	// writer, answering LINE in time matters more than processing at once: the processor
	// then steps aside, for at most MaxYield per batch, so a burst is stored first and
	// processed as it eases.
	Yield    func() bool
	MaxYield time.Duration
	// Retention is how long processed events (their IDs, without payload) are kept to
	// recognise LINE's redeliveries.
	Retention time.Duration
}

// NewProcessor returns a processor with no handlers.
func NewProcessor(db *store.DB, clk clock.Clock, m *metrics.Metrics, logger *slog.Logger) *Processor {
	return &Processor{
		db: db, clock: clk, metrics: m, logger: logger,
		handlers:     map[string][]HandlerFunc{},
		wake:         make(chan struct{}, 1),
		BatchSize:    200,
		PollInterval: time.Second,
		MaxAttempts:  10,
		Retention:    30 * 24 * time.Hour,
		MaxYield:     time.Second,
	}
}

// Handle registers h for events of type eventType ("*" for every type). Handlers of one
// type run in registration order.
func (p *Processor) Handle(eventType string, h HandlerFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handlers[eventType] = append(p.handlers[eventType], h)
}

// Notify wakes the processor: new events were stored.
func (p *Processor) Notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run processes events until ctx is done.
func (p *Processor) Run(ctx context.Context) error {
	lastCleanup := time.Time{}
	lastDepth := time.Time{}
	for {
		p.yield(ctx)
		n, err := p.ProcessBatch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			p.logger.Error("ingest: processing batch failed", "err", err)
		}
		now := p.clock.Now()
		if now.Sub(lastDepth) >= 5*time.Second {
			lastDepth = now
			p.reportDepth(ctx)
		}
		if now.Sub(lastCleanup) >= time.Hour {
			lastCleanup = now
			if err := p.Cleanup(ctx); err != nil {
				p.logger.Error("ingest: cleanup failed", "err", err)
			}
		}
		if n == p.BatchSize && err == nil {
			continue // more is waiting
		}
		if _, err := clock.Wait(ctx, p.clock, p.PollInterval, p.wake); err != nil {
			return nil
		}
	}
}

// yield waits while webhooks are queued for the writer, up to MaxYield. It sleeps in real
// time: this is scheduling, not business time.
func (p *Processor) yield(ctx context.Context) {
	if p.Yield == nil {
		return
	}
	deadline := time.Now().Add(p.MaxYield)
	for p.Yield() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond)
	}
}

// ProcessBatch claims up to BatchSize due events and applies them in one transaction,
// each inside its own savepoint. It returns how many events it claimed.
func (p *Processor) ProcessBatch(ctx context.Context) (int, error) {
	var claimed int
	type outcome struct {
		typ, result string
	}
	var outcomes []outcome
	err := p.db.WriteTx(ctx, func(tx *store.Tx) error {
		claimed, outcomes = 0, outcomes[:0]
		now := p.clock.Now()
		events, err := p.claim(ctx, tx, now)
		if err != nil {
			return err
		}
		claimed = len(events)
		var done []int64
		for _, ev := range events {
			err := p.apply(ctx, tx, ev)
			if err == nil {
				done = append(done, ev.ID)
				outcomes = append(outcomes, outcome{ev.Type, "done"})
				continue
			}
			result, err := p.fail(ctx, tx, ev, err, now)
			if err != nil {
				return err
			}
			outcomes = append(outcomes, outcome{ev.Type, result})
		}
		return markDone(ctx, tx, done, now)
	})
	if err != nil {
		return 0, err
	}
	for _, o := range outcomes {
		p.metrics.EventsProcessed.WithLabelValues(metricType(o.typ), o.result).Inc()
	}
	return claimed, nil
}

func (p *Processor) claim(ctx context.Context, tx *store.Tx, now time.Time) ([]Event, error) {
	q := `SELECT id, channel_id, event_id, type, mode, line_user_id, occurred_at, redelivery, received_at, attempts, payload
		FROM webhook_events
		WHERE state = 'pending' AND next_attempt_at <= ?
		ORDER BY id
		LIMIT ?`
	if tx.Dialect() == store.Postgres {
		// Several instances share the work: each takes rows the others have not locked.
		q += " FOR UPDATE SKIP LOCKED"
	}
	rows, err := tx.QueryContext(ctx, q, store.Millis(now), p.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("ingest: claim events: %w", err)
	}
	defer rows.Close()
	var events []Event
	for rows.Next() {
		var ev Event
		var occurred, received int64
		if err := rows.Scan(&ev.ID, &ev.ChannelID, &ev.EventID, &ev.Type, &ev.Mode, &ev.UserID,
			&occurred, &ev.Redelivery, &received, &ev.Attempts, &ev.Raw); err != nil {
			return nil, fmt.Errorf("ingest: claim events: %w", err)
		}
		ev.OccurredAt, ev.ReceivedAt = store.Time(occurred), store.Time(received)
		events = append(events, ev)
	}
	return events, rows.Err()
}

// apply runs the event's handlers inside a savepoint, so that a failing event leaves no
// partial writes while its neighbours in the batch still commit.
func (p *Processor) apply(ctx context.Context, tx *store.Tx, ev Event) error {
	p.mu.RLock()
	hs := append(append([]HandlerFunc(nil), p.handlers[ev.Type]...), p.handlers["*"]...)
	p.mu.RUnlock()
	if len(hs) == 0 {
		return nil // a type nobody handles (yet): stored, and done
	}
	decoded, err := line.DecodeEvent(ev.Raw)
	if err != nil {
		return fmt.Errorf("%w: undecodable %s event: %v", ErrPermanent, metricType(ev.Type), err)
	}
	ev.Decoded = decoded
	return tx.Savepoint(ctx, "event", func() error {
		for _, h := range hs {
			if err := h(ctx, tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// fail records a failed attempt: retried later with backoff, or marked failed for good.
func (p *Processor) fail(ctx context.Context, tx *store.Tx, ev Event, cause error, now time.Time) (string, error) {
	attempts := ev.Attempts + 1
	msg := cause.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	p.logger.Warn("ingest: event failed", "event_type", metricType(ev.Type), "row", ev.ID, "attempt", attempts, "err", msg)
	if errors.Is(cause, ErrPermanent) || attempts >= p.MaxAttempts {
		_, err := tx.ExecContext(ctx, `UPDATE webhook_events SET state = 'failed', attempts = ?, last_error = ?, processed_at = ? WHERE id = ?`,
			attempts, msg, store.Millis(now), ev.ID)
		if err != nil {
			return "", fmt.Errorf("ingest: mark event failed: %w", err)
		}
		return "failed", nil
	}
	next := now.Add(clock.Backoff(attempts, time.Second, 512*time.Second)) // about 8.5 min over ten attempts
	_, err := tx.ExecContext(ctx, `UPDATE webhook_events SET attempts = ?, last_error = ?, next_attempt_at = ? WHERE id = ?`,
		attempts, msg, store.Millis(next), ev.ID)
	if err != nil {
		return "", fmt.Errorf("ingest: schedule event retry: %w", err)
	}
	return "retry", nil
}

// markDone marks events processed and drops their payloads: the raw event holds message
// text and is no longer needed once applied (the conversation log keeps what is kept).
func markDone(ctx context.Context, tx *store.Tx, ids []int64, now time.Time) error {
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, store.Millis(now))
		for _, id := range chunk {
			args = append(args, id)
		}
		q := "UPDATE webhook_events SET state = 'done', payload = NULL, processed_at = ? WHERE id IN " +
			store.Placeholders(1, len(chunk))
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("ingest: mark events done: %w", err)
		}
	}
	return nil
}

// ForgetUser removes a LINE user from the events of a channel that are done with (their
// ID, and a failed event's body): the friend is being erased. The rows stay for a while
// (Cleanup), so that LINE's redeliveries of them are still recognised; events still
// pending are processed as any other, and a user who writes again becomes a new friend.
func ForgetUser(ctx context.Context, tx *store.Tx, channelID, lineUserID string) error {
	_, err := tx.ExecContext(ctx, `UPDATE webhook_events SET line_user_id = '', payload = NULL
		WHERE channel_id = ? AND line_user_id = ? AND state <> 'pending'`, channelID, lineUserID)
	if err != nil {
		return fmt.Errorf("ingest: forget user: %w", err)
	}
	return nil
}

// Cleanup deletes processed and failed events older than the retention period.
func (p *Processor) Cleanup(ctx context.Context) error {
	cutoff := p.clock.Now().Add(-p.Retention)
	_, err := p.db.ExecContext(ctx, "DELETE FROM webhook_events WHERE state <> 'pending' AND processed_at < ?", store.Millis(cutoff))
	if err != nil {
		return fmt.Errorf("ingest: cleanup: %w", err)
	}
	return nil
}

// Pending counts events stored and not yet processed.
func (p *Processor) Pending(ctx context.Context) (int, error) {
	var n int
	err := p.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM webhook_events WHERE state = 'pending'").Scan(&n)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("ingest: count pending: %w", err)
	}
	return n, nil
}

func (p *Processor) reportDepth(ctx context.Context) {
	if n, err := p.Pending(ctx); err == nil {
		p.metrics.QueueDepth.WithLabelValues("events").Set(float64(n))
	}
}
