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
	"slices"
	"sync"
	"time"

	"github.com/linestep/linestep/internal/audit"
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

	// The retention job's audit log and hook (SetRetention).
	audit        audit.AppendFunc
	beforeExpire ExpireHook

	// fullMembers is insertMembers' statement for a full chunk on SQLite, compiled once
	// (Prepare): compiling its 4,000 parameters took longer than running it.
	prepareMu   sync.Mutex
	fullMembers *sql.Stmt
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
	if err := checkMessages(it.Messages); err != nil {
		return err
	}
	if !line.ValidUserID(it.LineUserID) {
		return fmt.Errorf("%w: not a LINE user ID", ErrInvalidItem)
	}
	return nil
}

func checkMessages(msgs []json.RawMessage) error {
	if len(msgs) < 1 || len(msgs) > 5 {
		return fmt.Errorf("%w: %d messages, LINE takes 1 to 5", ErrInvalidItem, len(msgs))
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
	if err := lockChannels(ctx, tx, []string{it.ChannelID}); err != nil {
		return 0, err
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

// lockChannels holds a share lock on the channels' rows until the transaction ends
// (PostgreSQL): deliveries hold no reference to their friend there (migration 0018),
// and channel.Remove takes the row for update before it deletes the channel's
// deliveries, so none written under this lock can outlive its channel. A channel
// already gone is ErrNotFound. (A batch's own reference to its channel takes the same
// lock, which is why a broadcast's pages need no other.)
func lockChannels(ctx context.Context, tx *store.Tx, ids []string) error {
	if tx.Dialect() != store.Postgres || len(ids) == 0 {
		return nil
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	rows, err := tx.QueryContext(ctx, "SELECT id FROM channels WHERE id = ANY(?) FOR KEY SHARE", ids)
	if err != nil {
		return fmt.Errorf("delivery: lock channel: %w", err)
	}
	defer rows.Close()
	found := 0
	for rows.Next() {
		found++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("delivery: lock channel: %w", err)
	}
	if found != len(ids) {
		return fmt.Errorf("delivery: channel: %w", store.ErrNotFound)
	}
	return nil
}

// EnqueueMany writes many deliveries inside the caller's transaction: how a broadcast or
// a scenario step reached by many friends at once fills the outbox fast.
//
// Items with identical content (sharing a messages slice, encoded and hashed once) for
// several friends of a channel, due now and without a reply token, go straight into
// multicast batches of up to 500 distinct users: one batch row per call, each delivery
// written once as 'sending' in its batch. A dispatcher then claims the batch whole (see
// claimQueued); until then it is 'queued', and cancelling or a block can still take its
// deliveries out. The rest is written as pending deliveries, several rows per statement,
// and grouped by the dispatcher when it claims them.
func (s *Service) EnqueueMany(ctx context.Context, tx *store.Tx, items []Item) error {
	now := s.clock.Now()
	type encoded struct{ json, hash string }
	cache := map[*json.RawMessage]encoded{}
	var loose []looseRow
	type group struct {
		channelID, json, hash string
		items                 []*Item
	}
	type groupKey struct{ channelID, hash string }
	groups := map[groupKey]*group{}
	var order []groupKey
	notify := false
	for i := range items {
		it := &items[i]
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
		if it.ReplyToken == "" && !due.After(now) {
			key := groupKey{it.ChannelID, enc.hash}
			g, ok := groups[key]
			if !ok {
				g = &group{channelID: it.ChannelID, json: enc.json, hash: enc.hash}
				groups[key] = g
				order = append(order, key)
			}
			g.items = append(g.items, it)
			continue
		}
		loose = append(loose, looseRow{it: it, json: enc.json, hash: enc.hash, due: due})
	}
	members := make([]memberRow, 0, len(items)-len(loose))
	for _, key := range order {
		g := groups[key]
		if len(g.items) < 2 {
			// Content for one friend alone leaves by push, grouped at claim time with any
			// identical content queued meanwhile.
			loose = append(loose, looseRow{it: g.items[0], json: g.json, hash: g.hash, due: now})
			continue
		}
		for _, chunk := range chunkItems(g.items) {
			source, sourceID := chunk[0].Source, chunk[0].SourceID
			for _, it := range chunk[1:] {
				if it.Source != source {
					source, sourceID = "", 0
					break
				}
				if it.SourceID != sourceID {
					sourceID = 0
				}
			}
			method := MethodMulticast
			if len(chunk) == 1 {
				method = MethodPush
			}
			var batchID int64
			if err := tx.QueryRowContext(ctx, `INSERT INTO batches (channel_id, method, messages, recipients, size, state, lease_until,
				created_at, source, source_id) VALUES (?, ?, ?, '', ?, 'queued', 0, ?, ?, ?) RETURNING id`,
				g.channelID, method, g.json, len(chunk), store.Millis(now), source, sourceID).Scan(&batchID); err != nil {
				return fmt.Errorf("delivery: enqueue: batch: %w", err)
			}
			for _, it := range chunk {
				members = append(members, memberRow{it: it, hash: g.hash, batchID: batchID})
			}
		}
	}
	if err := s.insertMembers(ctx, tx, members, now); err != nil {
		return err
	}
	if err := s.insertLoose(ctx, tx, loose, now); err != nil {
		return err
	}
	if notify {
		tx.AfterCommit(s.Notify)
	}
	return nil
}

// chunkItems splits identical items into calls of at most line.MaxMulticast distinct
// users: a user with two identical deliveries gets them in two calls, as intended.
func chunkItems(items []*Item) [][]*Item {
	var out [][]*Item
	for len(items) > 0 {
		seen := make(map[string]bool, min(len(items), line.MaxMulticast))
		var chunk, rest []*Item
		for _, it := range items {
			if len(chunk) < line.MaxMulticast && !seen[it.LineUserID] {
				seen[it.LineUserID] = true
				chunk = append(chunk, it)
			} else {
				rest = append(rest, it)
			}
		}
		out = append(out, chunk)
		items = rest
	}
	return out
}

// looseRow is a pending delivery: the dispatcher groups it when it claims it.
type looseRow struct {
	it         *Item
	json, hash string
	due        time.Time
}

// memberRow is a delivery written into its batch at once. Its messages stay in the
// batch row alone (the delivery's own column is empty), and its method is set when sent.
type memberRow struct {
	it      *Item
	hash    string
	batchID int64
}

// Prepare compiles ahead the statements EnqueueMany uses most, for a caller that
// enqueues many times (the scenario runner); EnqueueMany works without. Like
// store.DB.PrepareWrite, it must not be called inside a WriteTx.
func (s *Service) Prepare(ctx context.Context) error {
	if s.db.Dialect() != store.SQLite {
		return nil
	}
	s.prepareMu.Lock()
	defer s.prepareMu.Unlock()
	if s.fullMembers != nil {
		return nil
	}
	st, err := s.db.PrepareWrite(ctx, membersSQLite(line.MaxMulticast))
	if err != nil {
		return fmt.Errorf("delivery: prepare: %w", err)
	}
	s.fullMembers = st
	return nil
}

func (s *Service) preparedMembers() *sql.Stmt {
	s.prepareMu.Lock()
	defer s.prepareMu.Unlock()
	return s.fullMembers
}

// membersSQLite inserts n batched deliveries; its parameters are due_at and created_at,
// then 8 per row.
func membersSQLite(n int) string {
	return `INSERT INTO deliveries (channel_id, friend_id, line_user_id, source, source_id, source_ref,
			messages, content_hash, state, batch_id, due_at, created_at)
			SELECT column1, column2, column3, column4, column5, column6, '', column7, 'sending', column8, ?, ?
			FROM (VALUES ` + store.Placeholders(n, 8) + `)`
}

// insertMembers writes batched deliveries. PostgreSQL takes each column as one array
// (one statement, one round trip, whatever the count); SQLite a multi-row INSERT per
// 500 rows, one statement form for all full chunks (compiled once, after Prepare).
func (s *Service) insertMembers(ctx context.Context, tx *store.Tx, rows []memberRow, now time.Time) error {
	if len(rows) == 0 {
		return nil
	}
	nowMs := store.Millis(now)
	if tx.Dialect() == store.Postgres {
		if uniform(rows) {
			return insertUniformMembers(ctx, tx, rows, nowMs)
		}
		n := len(rows)
		chs, users, srcs, refs, hashes := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		fids, sids, bids := make([]int64, n), make([]int64, n), make([]int64, n)
		for i, r := range rows {
			chs[i], fids[i], users[i], srcs[i], sids[i], refs[i], hashes[i], bids[i] =
				r.it.ChannelID, r.it.FriendID, r.it.LineUserID, r.it.Source, r.it.SourceID, r.it.SourceRef, r.hash, r.batchID
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO deliveries (channel_id, friend_id, line_user_id, source, source_id, source_ref,
			messages, content_hash, state, batch_id, due_at, created_at)
			SELECT u.ch, u.fid, u.uid, u.src, u.sid, u.ref, '', u.hash, 'sending', u.bid, ?, ?
			FROM unnest(?::text[], ?::bigint[], ?::text[], ?::text[], ?::bigint[], ?::text[], ?::text[], ?::bigint[])
				AS u(ch, fid, uid, src, sid, ref, hash, bid)`,
			nowMs, nowMs, chs, fids, users, srcs, sids, refs, hashes, bids)
		if err != nil {
			return fmt.Errorf("delivery: enqueue: %w", err)
		}
		return nil
	}
	full := s.preparedMembers()
	args := make([]any, 0, 2+line.MaxMulticast*8)
	for start := 0; start < len(rows); start += line.MaxMulticast {
		chunk := rows[start:min(start+line.MaxMulticast, len(rows))]
		args = append(args[:0], nowMs, nowMs) // due_at and created_at, ahead of the rows in the text
		for _, r := range chunk {
			args = append(args, r.it.ChannelID, r.it.FriendID, r.it.LineUserID, r.it.Source, r.it.SourceID, r.it.SourceRef, r.hash, r.batchID)
		}
		var err error
		if full != nil && len(chunk) == line.MaxMulticast {
			_, err = tx.Stmt(ctx, full).ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, membersSQLite(len(chunk)), args...)
		}
		if err != nil {
			return fmt.Errorf("delivery: enqueue: %w", err)
		}
	}
	return nil
}

// uniform reports whether the rows differ only in friend, source ID and batch: a step or
// a broadcast reached by many at once.
func uniform(rows []memberRow) bool {
	first := rows[0]
	for _, r := range rows[1:] {
		if r.it.ChannelID != first.it.ChannelID || r.hash != first.hash || r.it.Source != first.it.Source ||
			r.it.SourceRef != first.it.SourceRef {
			return false
		}
	}
	return true
}

// insertUniformMembers is insertMembers for uniform rows (PostgreSQL): what they share
// is sent once, not once a row, which halves the statement and its decoding.
func insertUniformMembers(ctx context.Context, tx *store.Tx, rows []memberRow, nowMs int64) error {
	n := len(rows)
	users := make([]string, n)
	fids, sids, bids := make([]int64, n), make([]int64, n), make([]int64, n)
	for i, r := range rows {
		fids[i], users[i], sids[i], bids[i] = r.it.FriendID, r.it.LineUserID, r.it.SourceID, r.batchID
	}
	first := rows[0]
	_, err := tx.ExecContext(ctx, `INSERT INTO deliveries (channel_id, friend_id, line_user_id, source, source_id, source_ref,
		messages, content_hash, state, batch_id, due_at, created_at)
		SELECT ?, u.fid, u.uid, ?, u.sid, ?, '', ?, 'sending', u.bid, ?, ?
		FROM unnest(?::bigint[], ?::text[], ?::bigint[], ?::bigint[]) AS u(fid, uid, sid, bid)`,
		first.it.ChannelID, first.it.Source, first.it.SourceRef, first.hash, nowMs, nowMs, fids, users, sids, bids)
	if err != nil {
		return fmt.Errorf("delivery: enqueue: %w", err)
	}
	return nil
}

// insertLoose writes pending deliveries, several rows per statement.
func (s *Service) insertLoose(ctx context.Context, tx *store.Tx, rows []looseRow, now time.Time) error {
	if len(rows) == 0 {
		return nil
	}
	channels := make([]string, len(rows))
	for i, r := range rows {
		channels[i] = r.it.ChannelID
	}
	if err := lockChannels(ctx, tx, channels); err != nil {
		return err
	}
	nowMs := store.Millis(now)
	const cols = 12
	const perStatement = 250 // well under SQLite's and PostgreSQL's bound-parameter limits
	args := make([]any, 0, perStatement*cols)
	for start := 0; start < len(rows); start += perStatement {
		chunk := rows[start:min(start+perStatement, len(rows))]
		args = args[:0]
		for _, r := range chunk {
			it := r.it
			args = append(args, it.ChannelID, it.FriendID, it.LineUserID, it.Source, it.SourceID, it.SourceRef, r.json, r.hash,
				it.ReplyToken, store.NullMillis(it.ReplyExpiresAt), store.Millis(r.due), nowMs)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO deliveries (channel_id, friend_id, line_user_id, source, source_id,
			source_ref, messages, content_hash, reply_token, reply_expires_at, due_at, created_at) VALUES `+store.Placeholders(len(chunk), cols), args...)
		if err != nil {
			return fmt.Errorf("delivery: enqueue: %w", err)
		}
	}
	return nil
}

// ContentHash identifies identical content: deliveries with the same hash can share one
// multicast.
func ContentHash(messagesJSON []byte) string {
	h := sha256.Sum256(messagesJSON)
	return hex.EncodeToString(h[:16])
}

// DropPending drops a friend's deliveries not yet handed to LINE: those pending, and
// those in a batch no dispatcher has claimed yet. They blocked the account, and LINE
// would not deliver them anyway.
func (s *Service) DropPending(ctx context.Context, tx *store.Tx, friendID int64, reason string) (int64, error) {
	res, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = ?, last_error = ? WHERE friend_id = ? AND state = ?`,
		Dropped, reason, friendID, Pending)
	if err != nil {
		return 0, fmt.Errorf("delivery: drop pending: %w", err)
	}
	n, _ := res.RowsAffected()
	m, err := s.takeFromQueued(ctx, tx, `SELECT batch_id FROM deliveries WHERE friend_id = ? AND state = 'sending'`, []any{friendID},
		`friend_id = ?`, []any{friendID}, Dropped, reason)
	return n + m, err
}

// CancelQueued cancels the deliveries of a source (a broadcast) that wait in batches no
// dispatcher has claimed yet; those claimed are with LINE, or about to be.
func (s *Service) CancelQueued(ctx context.Context, tx *store.Tx, source string, sourceID int64, reason string) (int64, error) {
	return s.takeFromQueued(ctx, tx, `SELECT id FROM batches WHERE source = ? AND source_id = ? AND state = 'queued'`,
		[]any{source, sourceID}, `source = ? AND source_id = ?`, []any{source, sourceID}, Cancelled, reason)
}

// takeFromQueued moves the deliveries matching where, in the queued batches batchQuery
// names, to state. The batches are locked first (PostgreSQL): a dispatcher claiming one
// meanwhile holds it until its claim commits, and then it is no longer queued; so a
// delivery is either in the call or taken out, never both. A batch left empty is
// cancelled; one with members left is sent without those taken out (the claim reads
// its members).
func (s *Service) takeFromQueued(ctx context.Context, tx *store.Tx, batchQuery string, bargs []any, where string, wargs []any,
	state, reason string) (int64, error) {
	lock := ""
	if tx.Dialect() == store.Postgres {
		lock = " FOR UPDATE"
	}
	rows, err := tx.QueryContext(ctx, `SELECT id FROM batches WHERE state = 'queued' AND id IN (`+batchQuery+`) ORDER BY id`+lock, bargs...)
	if err != nil {
		return 0, fmt.Errorf("delivery: take from queued batches: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(ids) == 0 {
		return 0, err
	}
	var total int64
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		args := append([]any{state, reason}, wargs...)
		for _, id := range chunk {
			args = append(args, id)
		}
		in := store.Placeholders(1, len(chunk))
		res, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = ?, last_error = ? WHERE `+where+` AND state = 'sending'
			AND batch_id IN `+in, args...)
		if err != nil {
			return 0, fmt.Errorf("delivery: take from queued batches: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
		if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'cancelled', last_error = ? WHERE id IN `+in+`
			AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.batch_id = batches.id AND d.state = 'sending')`,
			append([]any{reason}, args[2+len(wargs):]...)...); err != nil {
			return 0, fmt.Errorf("delivery: take from queued batches: %w", err)
		}
	}
	return total, nil
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
