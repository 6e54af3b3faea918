// Package richmenu owns the links of rich menus to friends (richmenu_links): a scenario
// step that links a menu writes a row in its own transaction, and a worker calls LINE
// once that transaction has committed, retrying what LINE did not take.
//
// A friend has at most one pending row (a partial unique index says so): a newer request
// rewrites it, since only the latest menu matters, and a row is in one worker's hands at
// a time, so two links for one friend never race each other at LINE. Linking is
// idempotent at LINE, so a call repeated after a crash does no harm.
package richmenu

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/ingest"
	"github.com/linestep/linestep/internal/store"
)

// Link states.
const (
	Pending = "pending"
	Done    = "done"
	Failed  = "failed"  // LINE refused it (4xx), or it kept failing: last_error says why
	Dropped = "dropped" // the friend blocked the account before it was made
)

var idForm = regexp.MustCompile(`^richmenu-[0-9a-f]{32}$`)

// ValidID reports whether s has the form of a rich menu ID as LINE issues them
// ("richmenu-" and 32 hex digits). IDs go into URL paths, so nothing else is accepted.
func ValidID(s string) bool { return idForm.MatchString(s) }

// Linker calls LINE for a channel; the server implements it with the channel's client.
type Linker interface {
	LinkRichMenu(ctx context.Context, channelID, userID, richMenuID string) error
	UnlinkRichMenu(ctx context.Context, channelID, userID string) error
}

// Config tunes the worker. Zero values take the defaults.
type Config struct {
	// BatchSize bounds the rows claimed at once; default 200.
	BatchSize int
	// Workers is how many calls run at once; default 8 (the client's limiter holds
	// LINE's rate, not this).
	Workers int
	// Lease is how long a claimed row stays with its worker; past it, any instance takes
	// it over. Default 30 s.
	Lease time.Duration
	// MaxAttempts before a row that keeps failing with 5xx, 429 or timeouts is failed;
	// default 10 (backoff from 1 s to 5 min).
	MaxAttempts int
	// PollInterval is how often the worker looks for due rows when nothing wakes it;
	// default 1 s.
	PollInterval time.Duration
}

func (c *Config) defaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 200
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
}

// Service queues links and runs the worker that makes them.
type Service struct {
	db     *store.DB
	clock  clock.Clock
	linker Linker
	logger *slog.Logger
	cfg    Config
	wake   chan struct{}
	audit  audit.AppendFunc // the retention job's (SetRetention)
}

// New returns the service. linker may be nil where the worker does not run (applying a
// setup file).
func New(db *store.DB, clk clock.Clock, linker Linker, logger *slog.Logger, cfg Config) *Service {
	cfg.defaults()
	return &Service{db: db, clock: clk, linker: linker, logger: logger, cfg: cfg, wake: make(chan struct{}, 1)}
}

// Notify wakes the worker: a link is due.
func (s *Service) Notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Request asks for a friend's rich menu to change.
type Request struct {
	ChannelID  string
	FriendID   int64
	RichMenuID string // "" unlinks the friend's own menu: they see the default one
	Source     string // what asked, for the record (scenario:<key>/<step>); no personal data
}

// ErrInvalid is a request that cannot be made as it is.
var ErrInvalid = errors.New("richmenu: invalid request")

// Enqueue writes the request inside the caller's transaction, so it is made if and only
// if the change that caused it commits. A request still pending for the friend is
// replaced (only the latest menu matters); if that one is with a worker right now, the
// new one waits for it to finish and goes next.
func (s *Service) Enqueue(ctx context.Context, tx *store.Tx, r Request) error {
	if r.RichMenuID != "" && !ValidID(r.RichMenuID) {
		return fmt.Errorf("%w: not a rich menu ID", ErrInvalid)
	}
	var userID string
	err := tx.QueryRowContext(ctx, "SELECT line_user_id FROM friends WHERE id = ? AND channel_id = ?", r.FriendID, r.ChannelID).Scan(&userID)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("richmenu: friend %d: %w", r.FriendID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("richmenu: enqueue: %w", err)
	}
	now := store.Millis(s.clock.Now())
	// attempts start again: the new menu has not been tried. lease_until is kept, so a
	// row in a worker's hands is not claimed by another until that worker is done.
	_, err = tx.ExecContext(ctx, `INSERT INTO richmenu_links (channel_id, friend_id, line_user_id, rich_menu_id, source, state,
		due_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)
		ON CONFLICT (friend_id) WHERE state = 'pending' DO UPDATE SET line_user_id = excluded.line_user_id,
			rich_menu_id = excluded.rich_menu_id, source = excluded.source, version = richmenu_links.version + 1,
			attempts = 0, due_at = excluded.due_at, last_error = '', updated_at = excluded.updated_at`,
		r.ChannelID, r.FriendID, userID, r.RichMenuID, r.Source, now, now, now)
	if err != nil {
		return fmt.Errorf("richmenu: enqueue: %w", err)
	}
	tx.AfterCommit(s.Notify)
	return nil
}

// Register drops a friend's pending link when they block the account: LINE would refuse
// it, and a menu chosen for them then may no longer be right when they come back. It
// must be registered after the friend service, whose unfollow handler sets the status
// it reads.
func (s *Service) Register(p *ingest.Processor) {
	p.Handle("unfollow", func(ctx context.Context, tx *store.Tx, ev ingest.Event) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM friends WHERE channel_id = ? AND line_user_id = ? AND status = 'blocked'`,
			ev.ChannelID, ev.UserID).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // a late, older unfollow: the friend follows again
		}
		if err != nil {
			return fmt.Errorf("richmenu: unfollow: %w", err)
		}
		// A row with a worker now stays leased: the worker's outcome no longer applies
		// to it (see record), and it is not claimed again.
		if _, err := tx.ExecContext(ctx, `UPDATE richmenu_links SET state = ?, last_error = 'blocked', updated_at = ?
			WHERE friend_id = ? AND state = ?`, Dropped, store.Millis(s.clock.Now()), id, Pending); err != nil {
			return fmt.Errorf("richmenu: unfollow: %w", err)
		}
		return nil
	})
}

// Link is one row, as the console and tests read it.
type Link struct {
	ID         int64
	ChannelID  string
	FriendID   int64
	RichMenuID string
	Source     string
	State      string
	Attempts   int
	LastError  string
	DueAt      time.Time
	CreatedAt  time.Time
	DoneAt     time.Time
}

// ForFriend returns a friend's links, newest first, at most limit.
func ForFriend(ctx context.Context, q store.Querier, friendID int64, limit int) ([]Link, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, channel_id, friend_id, rich_menu_id, source, state, attempts, last_error, due_at,
		created_at, done_at FROM richmenu_links WHERE friend_id = ? ORDER BY id DESC LIMIT ?`, friendID, limit)
	if err != nil {
		return nil, fmt.Errorf("richmenu: list: %w", err)
	}
	defer rows.Close()
	var out []Link
	for rows.Next() {
		var l Link
		var due, created int64
		var done sql.NullInt64
		if err := rows.Scan(&l.ID, &l.ChannelID, &l.FriendID, &l.RichMenuID, &l.Source, &l.State, &l.Attempts, &l.LastError,
			&due, &created, &done); err != nil {
			return nil, fmt.Errorf("richmenu: list: %w", err)
		}
		l.DueAt, l.CreatedAt, l.DoneAt = store.Time(due), store.Time(created), store.NullTime(done)
		out = append(out, l)
	}
	return out, rows.Err()
}
