// Package broadcast sends one message to a segment of friends, now or at a set time.
//
// A broadcast is expanded into the delivery outbox a chunk of friends at a time, each
// chunk in one transaction that also moves the broadcast's cursor (the last friend ID
// written): after a crash, expansion resumes at the cursor, so nobody is queued twice
// and nobody is missed. Identical content then leaves by multicast, 500 friends a call;
// content personalised per friend (a name, a unique coupon code) by push.
package broadcast

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/template"
)

// States of a broadcast.
const (
	Scheduled = "scheduled" // waiting for its time
	Sending   = "sending"   // being written into the outbox
	Done      = "done"      // every recipient is in the outbox (the outbox tells what LINE took)
	Cancelled = "cancelled"
	Failed    = "failed" // could not be sent as meant (a deleted tag in its segment); see LastError
)

// Broadcast is one message to a segment.
type Broadcast struct {
	ID          int64
	ChannelID   string
	Name        string
	Segment     segment.Filter
	Template    message.Template
	TemplateKey string // the saved template the messages were copied from (see Create)
	State       string
	ScheduledAt time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
	Recipients  int // deliveries written so far
	Skipped     int // members whose message could not be rendered
	LastError   string
	CreatedBy   string
	CreatedAt   time.Time
}

// VarsFunc adds variables beyond the friend's own (coupons), in the expanding
// transaction.
type VarsFunc func(ctx context.Context, q store.Querier, channelID string, friendID int64, names []string, now time.Time) (message.MapVars, error)

// Config tunes expansion. Zero values take the defaults.
type Config struct {
	// Chunk is how many friends one transaction writes into the outbox; default 2,000
	// for personalised content (rendered per friend), 10,000 for content the same for
	// everyone (twenty multicast batches a transaction).
	Chunk int
	// PollInterval is how often scheduled broadcasts are looked for; default 1 s.
	PollInterval time.Duration
	// Expanders is how many chunks are written at once, each in a lane of its own of a
	// broadcast's friends; default 2 on PostgreSQL, which writes them in parallel, and 1
	// on SQLite, which has one writer.
	Expanders int
}

// Service creates, expands and cancels broadcasts.
type Service struct {
	db         *store.DB
	clock      clock.Clock
	friends    *friend.Service
	deliveries *delivery.Service
	logger     *slog.Logger
	cfg        Config
	wake       chan struct{}

	identicalChunk int // Chunk for content the same for everyone

	// ExtraVars, when set, supplies variables beyond the friend's (coupons), and
	// CheckVars checks, when a broadcast is created, that those it names exist.
	ExtraVars VarsFunc
	CheckVars func(ctx context.Context, q store.Querier, channelID string, names []string) error
}

// New returns the broadcast service.
func New(db *store.DB, clk clock.Clock, friends *friend.Service, deliveries *delivery.Service, logger *slog.Logger, cfg Config) *Service {
	identicalChunk := cfg.Chunk
	if cfg.Chunk <= 0 {
		cfg.Chunk, identicalChunk = 2000, 10_000
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Expanders <= 0 {
		cfg.Expanders = 1
		if db.Dialect() == store.Postgres {
			cfg.Expanders = 2
		}
	}
	return &Service{db: db, clock: clk, friends: friends, deliveries: deliveries, logger: logger, cfg: cfg,
		identicalChunk: identicalChunk, wake: make(chan struct{}, 1)}
}

// Notify wakes the expander.
func (s *Service) Notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// ErrInvalid wraps every validation failure; errors.As finds message.Problems.
var ErrInvalid = errors.New("broadcast: invalid")

type invalidError struct{ ps message.Problems }

func (e *invalidError) Error() string   { return "broadcast: invalid: " + e.ps.Error() }
func (e *invalidError) Unwrap() []error { return []error{ErrInvalid, e.ps} }

// Count is how many friends a segment selects now: what the console shows before
// sending.
func (s *Service) Count(ctx context.Context, channelID string, f segment.Filter) (int, error) {
	c, err := segment.Resolve(ctx, s.db, channelID, f)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return segment.Count(ctx, s.db, c, s.clock.Now())
}

// Create validates and stores a broadcast; a zero ScheduledAt sends it now. Its
// messages are b.Template or, when b.TemplateKey names a saved template of the channel
// (package template) instead, a copy of that template's messages read in tx: a
// scheduled broadcast sends what it shows, even if the template is edited or deleted
// meanwhile. The key stays as a record of where the messages came from.
func (s *Service) Create(ctx context.Context, tx *store.Tx, b Broadcast) (Broadcast, error) {
	ps, err := s.content(ctx, tx, &b)
	if err != nil {
		return Broadcast{}, err
	}
	if len([]rune(b.Name)) > 100 {
		ps = append(ps, message.Problem{Path: "name", JA: "名前は100文字以内にしてください", EN: "at most 100 characters"})
	}
	if err := b.Segment.Validate(); err != nil {
		ps = append(ps, message.Problem{Path: "segment", JA: "配信先の条件が正しくありません", EN: err.Error()})
	} else if _, err := segment.Resolve(ctx, tx, b.ChannelID, b.Segment); err != nil {
		ps = append(ps, message.Problem{Path: "segment", JA: "配信先の条件が正しくありません（タグや項目がありません）", EN: err.Error()})
	}
	now := s.clock.Now()
	if b.ScheduledAt.IsZero() {
		b.ScheduledAt = now
	} else if b.ScheduledAt.Before(now.Add(-time.Minute)) {
		ps = append(ps, message.Problem{Path: "scheduled_at", JA: "配信日時が過去です", EN: "the time is in the past"})
	}
	if ps != nil {
		return Broadcast{}, &invalidError{ps}
	}
	seg, err := json.Marshal(b.Segment)
	if err != nil {
		return Broadcast{}, err
	}
	tpl, err := json.Marshal(storedTemplate{Template: b.Template, From: b.TemplateKey})
	if err != nil {
		return Broadcast{}, err
	}
	b.State, b.CreatedAt = Scheduled, now
	err = tx.QueryRowContext(ctx, `INSERT INTO broadcasts (channel_id, name, segment, template, state, scheduled_at, created_by, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		b.ChannelID, b.Name, string(seg), string(tpl), b.State, store.Millis(b.ScheduledAt), b.CreatedBy, store.Millis(now), store.Millis(now)).Scan(&b.ID)
	if err != nil {
		return Broadcast{}, fmt.Errorf("broadcast: create: %w", err)
	}
	if !b.ScheduledAt.After(now) {
		tx.AfterCommit(s.Notify)
	}
	return b, nil
}

// content finds the broadcast's messages and returns their problems, with paths under
// "template" (and "template_key" for the saved template's key).
func (s *Service) content(ctx context.Context, tx *store.Tx, b *Broadcast) (message.Problems, error) {
	if b.TemplateKey != "" {
		if len(b.Template.Messages) > 0 {
			return message.Problems{{Path: "template_key", JA: "メッセージと保存済みテンプレートは、どちらか一方だけを指定してください",
				EN: "give the messages or a saved template's key, not both"}}, nil
		}
		t, err := template.Get(ctx, tx, b.ChannelID, b.TemplateKey)
		if errors.Is(err, store.ErrNotFound) {
			return message.Problems{{Path: "template_key", JA: "このキーの保存済みテンプレートはありません",
				EN: "there is no saved template of this key"}}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("broadcast: %w", err)
		}
		b.Template = t.Body
	}
	var ps message.Problems
	for _, p := range b.Template.Validate() {
		p.Path = "template." + p.Path
		ps = append(ps, p)
	}
	if s.CheckVars == nil {
		return ps, nil
	}
	err := s.CheckVars(ctx, tx, b.ChannelID, b.Template.Variables())
	var vps message.Problems
	switch {
	case errors.As(err, &vps):
		// Each names the variable: a coupon that does not exist, or a misspelt field.
		for _, p := range vps {
			p.Path = "template"
			ps = append(ps, p)
		}
	case err != nil:
		return nil, fmt.Errorf("broadcast: check variables: %w", err)
	}
	return ps, nil
}

// storedTemplate is the template column: the messages, and the key of the saved
// template they were copied from, if any (kept beside them rather than in a column of
// its own).
type storedTemplate struct {
	message.Template
	From string `json:"from_template,omitempty"`
}

const columns = `id, channel_id, name, segment, template, state, scheduled_at, started_at, finished_at, recipients, skipped, last_error, created_by, created_at`

// bColumns is columns of broadcasts b, for a query that joins it.
const bColumns = `b.id, b.channel_id, b.name, b.segment, b.template, b.state, b.scheduled_at, b.started_at, b.finished_at, b.recipients,
	b.skipped, b.last_error, b.created_by, b.created_at`

// scan reads a broadcast's columns, then any that follow them into more.
func scan(row interface{ Scan(...any) error }, more ...any) (Broadcast, error) {
	var b Broadcast
	var seg, tpl string
	var sched, created int64
	var started, finished sql.NullInt64
	if err := row.Scan(append([]any{&b.ID, &b.ChannelID, &b.Name, &seg, &tpl, &b.State, &sched, &started, &finished, &b.Recipients,
		&b.Skipped, &b.LastError, &b.CreatedBy, &created}, more...)...); err != nil {
		return Broadcast{}, err
	}
	if err := json.Unmarshal([]byte(seg), &b.Segment); err != nil {
		return Broadcast{}, fmt.Errorf("broadcast %d: stored segment: %w", b.ID, err)
	}
	var st storedTemplate
	if err := json.Unmarshal([]byte(tpl), &st); err != nil {
		return Broadcast{}, fmt.Errorf("broadcast %d: stored template: %w", b.ID, err)
	}
	b.Template, b.TemplateKey = st.Template, st.From
	b.ScheduledAt, b.StartedAt, b.FinishedAt, b.CreatedAt = store.Time(sched), store.NullTime(started), store.NullTime(finished), store.Time(created)
	return b, nil
}

// Get returns a channel's broadcast.
func (s *Service) Get(ctx context.Context, channelID string, id int64) (Broadcast, error) {
	b, err := scan(s.db.QueryRowContext(ctx, "SELECT "+columns+" FROM broadcasts WHERE id = ? AND channel_id = ?", id, channelID))
	if errors.Is(err, sql.ErrNoRows) {
		return Broadcast{}, fmt.Errorf("broadcast %d: %w", id, store.ErrNotFound)
	}
	return b, err
}

// List returns a channel's broadcasts, newest first.
func (s *Service) List(ctx context.Context, channelID string, limit int) ([]Broadcast, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+columns+" FROM broadcasts WHERE channel_id = ? ORDER BY id DESC LIMIT ?", channelID, limit)
	if err != nil {
		return nil, fmt.Errorf("broadcast: list: %w", err)
	}
	defer rows.Close()
	var out []Broadcast
	for rows.Next() {
		b, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// ListBefore returns up to limit of a channel's broadcasts with an ID below before (0:
// from the newest), newest first: pages by ID stay put while broadcasts are created.
func (s *Service) ListBefore(ctx context.Context, channelID string, before int64, limit int) ([]Broadcast, error) {
	if before <= 0 {
		return s.List(ctx, channelID, limit)
	}
	rows, err := s.db.QueryContext(ctx, "SELECT "+columns+" FROM broadcasts WHERE channel_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
		channelID, before, limit)
	if err != nil {
		return nil, fmt.Errorf("broadcast: list: %w", err)
	}
	defer rows.Close()
	var out []Broadcast
	for rows.Next() {
		b, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// Cancel stops a broadcast: nobody more is queued, and what is queued and not yet
// handed to LINE is cancelled. It returns how many deliveries it cancelled; those
// already in a call to LINE cannot be taken back.
func (s *Service) Cancel(ctx context.Context, channelID string, id int64) (int64, error) {
	var cancelled int64
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		var err error
		cancelled, err = s.CancelTx(ctx, tx, channelID, id)
		return err
	})
	return cancelled, err
}

// CancelTx is Cancel inside the caller's transaction (the console's, which records the
// act in the audit log in the same transaction).
func (s *Service) CancelTx(ctx context.Context, tx *store.Tx, channelID string, id int64) (int64, error) {
	// A done broadcast is all in the outbox; what LINE has not taken can still stop.
	res, err := tx.ExecContext(ctx, `UPDATE broadcasts SET state = ?, finished_at = COALESCE(finished_at, ?), updated_at = ?
		WHERE id = ? AND channel_id = ? AND state <> ?`,
		Cancelled, store.Millis(s.clock.Now()), store.Millis(s.clock.Now()), id, channelID, Cancelled)
	if err != nil {
		return 0, fmt.Errorf("broadcast: cancel: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var state string
		err := tx.QueryRowContext(ctx, "SELECT state FROM broadcasts WHERE id = ? AND channel_id = ?", id, channelID).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("broadcast %d: %w", id, store.ErrNotFound)
		}
		return 0, err // already cancelled: nothing more to do
	}
	res, err = tx.ExecContext(ctx, "UPDATE deliveries SET state = ?, last_error = 'broadcast cancelled' WHERE source = 'broadcast' AND source_id = ? AND state = ?",
		delivery.Cancelled, id, delivery.Pending)
	if err != nil {
		return 0, fmt.Errorf("broadcast: cancel: %w", err)
	}
	cancelled, _ := res.RowsAffected()
	// Identical content waits in whole batches: those no dispatcher has claimed yet.
	n, err := s.deliveries.CancelQueued(ctx, tx, "broadcast", id, "broadcast cancelled")
	if err != nil {
		return 0, fmt.Errorf("broadcast: cancel: %w", err)
	}
	return cancelled + n, nil
}

// Progress counts a broadcast's deliveries by state: those in the outbox, and those the
// retention job has deleted (AddExpired).
func (s *Service) Progress(ctx context.Context, id int64) (map[string]int, error) {
	out, err := delivery.CountStates(ctx, s.db, "source = 'broadcast' AND source_id = ?", id)
	if err != nil {
		return nil, fmt.Errorf("broadcast: progress: %w", err)
	}
	var expired string
	if err := s.db.QueryRowContext(ctx, "SELECT expired_counts FROM broadcasts WHERE id = ?", id).Scan(&expired); err != nil &&
		!errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("broadcast: progress: %w", err)
	}
	if err := addCounts(out, expired); err != nil {
		return nil, fmt.Errorf("broadcast %d: %w", id, err)
	}
	return out, nil
}

// addCounts adds the counts stored in a broadcast's expired_counts to sum.
func addCounts(sum map[string]int, stored string) error {
	if stored == "" {
		return nil
	}
	var counts map[string]int
	if err := json.Unmarshal([]byte(stored), &counts); err != nil {
		return fmt.Errorf("expired counts: %w", err)
	}
	for state, n := range counts {
		sum[state] += n
	}
	return nil
}

// AddExpired is the delivery retention job's hook (delivery.ExpireHook): before the
// deliveries matching where are deleted, their counts by state are added to their
// broadcasts', so that a broadcast's progress still adds up after its deliveries are gone.
func (s *Service) AddExpired(ctx context.Context, tx *store.Tx, where string, args ...any) error {
	rows, err := tx.QueryContext(ctx, `SELECT x.source_id, `+delivery.StateSQL("x", "b")+`, SUM(x.n) FROM
		(SELECT source_id, state, batch_id, COUNT(*) AS n FROM deliveries WHERE source = 'broadcast' AND `+where+`
			GROUP BY source_id, state, batch_id) x
		LEFT JOIN batches b ON b.id = x.batch_id GROUP BY 1, 2 ORDER BY 1`, args...)
	if err != nil {
		return fmt.Errorf("broadcast: expired counts: %w", err)
	}
	counts := map[int64]map[string]int{}
	var ids []int64
	for rows.Next() {
		var id int64
		var state string
		var n int
		if err := rows.Scan(&id, &state, &n); err != nil {
			rows.Close()
			return fmt.Errorf("broadcast: expired counts: %w", err)
		}
		if counts[id] == nil {
			counts[id] = map[string]int{}
			ids = append(ids, id)
		}
		counts[id][state] += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("broadcast: expired counts: %w", err)
	}
	for _, id := range ids {
		var expired string
		err := tx.QueryRowContext(ctx, "SELECT expired_counts FROM broadcasts WHERE id = ?", id).Scan(&expired)
		if errors.Is(err, sql.ErrNoRows) {
			continue // deleted with its channel meanwhile
		}
		if err != nil {
			return fmt.Errorf("broadcast: expired counts: %w", err)
		}
		sum := counts[id]
		if err := addCounts(sum, expired); err != nil {
			return fmt.Errorf("broadcast %d: %w", id, err)
		}
		b, err := json.Marshal(sum)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE broadcasts SET expired_counts = ? WHERE id = ?", string(b), id); err != nil {
			return fmt.Errorf("broadcast: expired counts: %w", err)
		}
	}
	return nil
}
