// Package delivery owns the outbox and the dispatcher: everything linestep sends to a
// friend is first a row in deliveries, written in the same transaction as the state
// change that caused it (a scenario step, an auto-reply, a broadcast), then sent by the
// dispatcher exactly once.
//
// Exactly once rests on two facts. A batch (one API call) fixes its members in the
// database before the call, and its X-Line-Retry-Key is derived from the batch's ID; so
// whoever sends the batch again after a crash, a timeout or a 5xx sends the same call
// with the same key, and LINE answers 409 when it had accepted it. And a delivery joins
// exactly one batch, in the transaction that claims it.
package delivery

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/ingest"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/store"
)

// Delivery states.
const (
	Pending   = "pending"
	Sending   = "sending"
	Sent      = "sent"
	Failed    = "failed"
	Dropped   = "dropped"   // the friend blocked the account before it went out
	Cancelled = "cancelled" // its broadcast or scenario was cancelled
)

// Methods a delivery can go out by.
const (
	MethodReply     = "reply"
	MethodPush      = "push"
	MethodMulticast = "multicast"
)

// ReplyTokenLifetime is how long after its event LINE accepts a reply token (LINE says
// about one minute); the dispatcher keeps a margin below it (Config.ReplyMargin).
const ReplyTokenLifetime = time.Minute

// ReplyExpiry is when the reply token of an event stops being usable, on our clock: a
// minute after we received it. A redelivered event's token is taken as spent (LINE
// redelivers late), so the answer goes by push.
func ReplyExpiry(ev ingest.Event) time.Time {
	if ev.Redelivery {
		return time.Time{}
	}
	return ev.ReceivedAt.Add(ReplyTokenLifetime)
}

// Sender calls LINE for a channel; the server implements it with the channel's client.
type Sender interface {
	Reply(ctx context.Context, channelID, replyToken string, msgs []json.RawMessage) (line.SendResult, error)
	Push(ctx context.Context, channelID, to string, msgs []json.RawMessage, retryKey string) (line.SendResult, error)
	Multicast(ctx context.Context, channelID string, to []string, msgs []json.RawMessage, retryKey string) (line.SendResult, error)
}

// Config tunes the dispatcher. Zero values take the defaults.
type Config struct {
	// ClaimSize bounds the deliveries claimed per round; default 5,000.
	ClaimSize int
	// Workers is how many API calls run at once; default 32. The per-endpoint rate
	// limiters in the LINE client hold the pace, not this.
	Workers int
	// Lease is how long a batch stays with the instance that claimed it; past it,
	// another round (of any instance) sends it again with the same retry key. Default 30 s.
	Lease time.Duration
	// MaxAttempts before a batch that keeps failing with 5xx or timeouts is failed;
	// default 10 (backoff from 1 s to 5 min).
	MaxAttempts int
	// ReplyMargin: a reply token closer than this to its expiry is not used (push
	// instead); default 5 s.
	ReplyMargin time.Duration
	// PollInterval is how often the dispatcher looks for due work when nothing wakes
	// it; default 1 s.
	PollInterval time.Duration
}

func (c *Config) defaults() {
	if c.ClaimSize <= 0 {
		c.ClaimSize = 5000
	}
	if c.Workers <= 0 {
		c.Workers = 32
	}
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.ReplyMargin <= 0 {
		c.ReplyMargin = 5 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
}

// Service is the outbox and its dispatcher.
type Service struct {
	db     *store.DB
	clock  clock.Clock
	sender Sender
	logger *slog.Logger
	cfg    Config
	wake   chan struct{}

	installID string // part of every retry key: two databases never share keys
}

// New returns the delivery service.
func New(db *store.DB, clk clock.Clock, sender Sender, logger *slog.Logger, cfg Config) *Service {
	cfg.defaults()
	return &Service{db: db, clock: clk, sender: sender, logger: logger, cfg: cfg, wake: make(chan struct{}, 1)}
}

// Notify wakes the dispatcher: new deliveries are due.
func (s *Service) Notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Item is what to send to one friend.
type Item struct {
	ChannelID  string
	FriendID   int64
	LineUserID string
	Source     string // scenario | autoreply | broadcast | api
	SourceID   int64
	SourceRef  string
	Messages   []json.RawMessage
	// ReplyToken, while fresh, lets the messages go out as a reply (free of quota).
	ReplyToken     string
	ReplyExpiresAt time.Time
	DueAt          time.Time // zero: now
}

// ErrInvalidItem is an item that cannot be sent as it is.
var ErrInvalidItem = errors.New("delivery: invalid item")

// Check reports, as ErrInvalidItem, what LINE would refuse in the item: callers that
// queue many check each first, since one bad recipient would fail a whole call.
func (it Item) Check() error {
	if len(it.Messages) < 1 || len(it.Messages) > 5 {
		return fmt.Errorf("%w: %d messages, LINE takes 1 to 5", ErrInvalidItem, len(it.Messages))
	}
	if !line.ValidUserID(it.LineUserID) {
		return fmt.Errorf("%w: not a LINE user ID", ErrInvalidItem)
	}
	return nil
}

// Enqueue writes a delivery inside the caller's transaction, so it exists if and only if
// the change that caused it commits.
func (s *Service) Enqueue(ctx context.Context, tx *store.Tx, it Item) (int64, error) {
	if err := it.Check(); err != nil {
		return 0, err
	}
	msgs, err := json.Marshal(it.Messages)
	if err != nil {
		return 0, fmt.Errorf("%w: messages: %v", ErrInvalidItem, err)
	}
	now := s.clock.Now()
	due := it.DueAt
	if due.IsZero() {
		due = now
	}
	var id int64
	err = tx.QueryRowContext(ctx, `INSERT INTO deliveries (channel_id, friend_id, line_user_id, source, source_id,
		source_ref, messages, content_hash, reply_token, reply_expires_at, due_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		it.ChannelID, it.FriendID, it.LineUserID, it.Source, it.SourceID, it.SourceRef, string(msgs),
		ContentHash(msgs), it.ReplyToken, store.NullMillis(it.ReplyExpiresAt), store.Millis(due), store.Millis(now)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("delivery: enqueue: %w", err)
	}
	if !due.After(now) {
		tx.AfterCommit(s.Notify)
	}
	return id, nil
}

// EnqueueMany writes many deliveries inside the caller's transaction, several rows per
// statement: how a broadcast fills the outbox fast. Items sharing a messages slice
// (identical content) are encoded and hashed once.
func (s *Service) EnqueueMany(ctx context.Context, tx *store.Tx, items []Item) error {
	const cols = 12
	const perStatement = 250 // well under SQLite's and PostgreSQL's bound-parameter limits
	now := s.clock.Now()
	nowMs := store.Millis(now)
	notify := false
	type encoded struct{ json, hash string }
	cache := map[*json.RawMessage]encoded{}
	args := make([]any, 0, perStatement*cols)
	flush := func(rows int) error {
		if rows == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO deliveries (channel_id, friend_id, line_user_id, source, source_id,
			source_ref, messages, content_hash, reply_token, reply_expires_at, due_at, created_at) VALUES `+store.Placeholders(rows, cols), args...)
		args = args[:0]
		if err != nil {
			return fmt.Errorf("delivery: enqueue: %w", err)
		}
		return nil
	}
	rows := 0
	for _, it := range items {
		if err := it.Check(); err != nil {
			return err
		}
		enc, ok := cache[&it.Messages[0]]
		if !ok {
			msgs, err := json.Marshal(it.Messages)
			if err != nil {
				return fmt.Errorf("%w: messages: %v", ErrInvalidItem, err)
			}
			enc = encoded{string(msgs), ContentHash(msgs)}
			cache[&it.Messages[0]] = enc
		}
		due := it.DueAt
		if due.IsZero() {
			due = now
		}
		notify = notify || !due.After(now)
		args = append(args, it.ChannelID, it.FriendID, it.LineUserID, it.Source, it.SourceID, it.SourceRef, enc.json, enc.hash,
			it.ReplyToken, store.NullMillis(it.ReplyExpiresAt), store.Millis(due), nowMs)
		if rows++; rows == perStatement {
			if err := flush(rows); err != nil {
				return err
			}
			rows = 0
		}
	}
	if err := flush(rows); err != nil {
		return err
	}
	if notify {
		tx.AfterCommit(s.Notify)
	}
	return nil
}

// ContentHash identifies identical content: deliveries with the same hash can share one
// multicast.
func ContentHash(messagesJSON []byte) string {
	h := sha256.Sum256(messagesJSON)
	return hex.EncodeToString(h[:16])
}

// DropPending drops a friend's deliveries not yet handed to a batch: they blocked the
// account, and LINE would not deliver them anyway.
func (s *Service) DropPending(ctx context.Context, tx *store.Tx, friendID int64, reason string) (int64, error) {
	res, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = ?, last_error = ? WHERE friend_id = ? AND state = ?`,
		Dropped, reason, friendID, Pending)
	if err != nil {
		return 0, fmt.Errorf("delivery: drop pending: %w", err)
	}
	return res.RowsAffected()
}

// Register drops a friend's pending deliveries when they block the account. It must be
// registered after the friend service, whose unfollow handler sets the status it reads.
func (s *Service) Register(p *ingest.Processor) {
	p.Handle("unfollow", func(ctx context.Context, tx *store.Tx, ev ingest.Event) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM friends WHERE channel_id = ? AND line_user_id = ? AND status = 'blocked'`,
			ev.ChannelID, ev.UserID).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // a late, older unfollow: the friend follows again
		}
		if err != nil {
			return err
		}
		_, err = s.DropPending(ctx, tx, id, "blocked")
		return err
	})
}

// Record is a delivery as the console and the API show it.
type Record struct {
	ID         int64
	ChannelID  string
	FriendID   int64
	Source     string
	SourceID   int64
	SourceRef  string
	State      string
	Method     string
	BatchID    int64
	LastError  string
	Messages   json.RawMessage
	DueAt      time.Time
	CreatedAt  time.Time
	SentAt     time.Time
	RequestID  string
	Duplicated bool // LINE had accepted the batch before (409): sent by an earlier attempt
}

// ForFriend returns a friend's deliveries, newest first.
func (s *Service) ForFriend(ctx context.Context, friendID int64, limit int) ([]Record, error) {
	return s.query(ctx, `WHERE d.friend_id = ? ORDER BY d.id DESC LIMIT ?`, friendID, limit)
}

// ForSource returns the deliveries a source (e.g. one enrolment) made, oldest first.
func (s *Service) ForSource(ctx context.Context, source string, sourceID int64) ([]Record, error) {
	return s.query(ctx, `WHERE d.source = ? AND d.source_id = ? ORDER BY d.id`, source, sourceID)
}

func (s *Service) query(ctx context.Context, where string, args ...any) ([]Record, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT d.id, d.channel_id, d.friend_id, d.source, COALESCE(d.source_id, 0), d.source_ref,
		d.state, d.method, COALESCE(d.batch_id, 0), d.last_error, d.messages, d.due_at, d.created_at, d.sent_at,
		COALESCE(b.request_id, ''), COALESCE(b.accepted_earlier, 0)
		FROM deliveries d LEFT JOIN batches b ON b.id = d.batch_id `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("delivery: list: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var r Record
		var msgs string
		var due, created int64
		var sent sql.NullInt64
		var dup int
		if err := rows.Scan(&r.ID, &r.ChannelID, &r.FriendID, &r.Source, &r.SourceID, &r.SourceRef, &r.State, &r.Method,
			&r.BatchID, &r.LastError, &msgs, &due, &created, &sent, &r.RequestID, &dup); err != nil {
			return nil, err
		}
		r.Messages = json.RawMessage(msgs)
		r.DueAt, r.CreatedAt, r.SentAt = store.Time(due), store.Time(created), store.NullTime(sent)
		r.Duplicated = dup != 0
		out = append(out, r)
	}
	return out, rows.Err()
}

// Counts returns how many deliveries of a channel are in each state.
func (s *Service) Counts(ctx context.Context, channelID string) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT state, COUNT(*) FROM deliveries WHERE channel_id = ? GROUP BY state`, channelID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}
