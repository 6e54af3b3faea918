package broadcast

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/store"
)

// Run expands due broadcasts until ctx is done, with cfg.Expanders expanders at once.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range s.cfg.Expanders {
		wg.Go(func() { s.runLoop(ctx) })
	}
	wg.Wait()
	return nil
}

func (s *Service) runLoop(ctx context.Context) {
	for {
		more, err := s.Expand(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.logger.Warn("broadcast expansion failed; retrying", "err", err)
		}
		if more && err == nil {
			continue
		}
		if _, err := clock.Wait(ctx, s.clock, s.cfg.PollInterval, s.wake); err != nil {
			return
		}
	}
}

// lane is a range of a broadcast's friends with a cursor of its own (broadcast_lanes):
// several expanders write one broadcast at once, each through a lane.
type lane struct {
	n     int
	after int64         // the lane's friends up to this ID are in the outbox
	last  sql.NullInt64 // its last friend ID; NULL: no end
}

// errStopped: the broadcast stopped being sent (cancelled, or failed in another lane)
// while a chunk of it was being written, which is then undone.
var errStopped = errors.New("broadcast: no longer sending")

// Expand writes the next chunk of a due broadcast's lane into the outbox, in one
// transaction with the move of the lane's cursor; a broadcast whose time has come is
// split into lanes first. It reports whether there was work (call again). On
// PostgreSQL the lane's row is locked meanwhile, so other expanders take other lanes.
func (s *Service) Expand(ctx context.Context) (bool, error) {
	var more, split bool
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		more, split = false, false
		now := s.clock.Now()
		b, l, err := s.claimLane(ctx, tx, now)
		if errors.Is(err, sql.ErrNoRows) {
			b, l, err = s.start(ctx, tx, now)
			split = err == nil && l.last.Valid
		}
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		more = true
		return s.expandChunk(ctx, tx, b, l, now)
	})
	if errors.Is(err, errStopped) {
		return true, nil // undone; the next call finds what else is due
	}
	if err != nil {
		return false, err
	}
	if split {
		s.Notify() // the other expanders, to the other lanes
	}
	if more {
		s.deliveries.Notify()
	}
	return more, nil
}

// claimLane takes an unfinished lane of a broadcast being sent, the earliest first.
func (s *Service) claimLane(ctx context.Context, tx *store.Tx, now time.Time) (Broadcast, lane, error) {
	lock := ""
	if tx.Dialect() == store.Postgres {
		lock = " FOR UPDATE OF l SKIP LOCKED"
	}
	var l lane
	b, err := scan(tx.QueryRowContext(ctx, `SELECT `+bColumns+`, l.lane, l.after_id, l.last_id
		FROM broadcasts b JOIN broadcast_lanes l ON l.broadcast_id = b.id
		WHERE b.state = ? AND b.scheduled_at <= ? AND NOT l.done ORDER BY b.scheduled_at, b.id, l.lane LIMIT 1`+lock,
		Sending, store.Millis(now)), &l.n, &l.after, &l.last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Broadcast{}, lane{}, fmt.Errorf("broadcast: claim: %w", err)
	}
	return b, l, err
}

// start begins sending the earliest scheduled broadcast whose time has come: it splits
// its friends into lanes and returns the first. Content the same for everyone is split
// into cfg.Expanders lanes of about as many of the channel's friends each (when there are
// enough to be worth it); personal content, paced by LINE's push limit, keeps one.
func (s *Service) start(ctx context.Context, tx *store.Tx, now time.Time) (Broadcast, lane, error) {
	lock := ""
	if tx.Dialect() == store.Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	b, err := scan(tx.QueryRowContext(ctx, "SELECT "+columns+` FROM broadcasts WHERE state = ? AND scheduled_at <= ?
		ORDER BY scheduled_at, id LIMIT 1`+lock, Scheduled, store.Millis(now)))
	if err != nil {
		if !errors.Is(err, sql.ErrNoRows) {
			err = fmt.Errorf("broadcast: claim: %w", err)
		}
		return Broadcast{}, lane{}, err
	}
	var bounds []int64 // the last friend ID of each lane but the last
	if lanes := s.cfg.Expanders; lanes > 1 && len(b.Template.Variables()) == 0 {
		if bounds, err = splitFriends(ctx, tx, b.ChannelID, lanes, 2*s.identicalChunk); err != nil {
			return Broadcast{}, lane{}, err
		}
	}
	after := int64(0)
	for i := 0; i <= len(bounds); i++ {
		last := sql.NullInt64{}
		if i < len(bounds) {
			last = sql.NullInt64{Int64: bounds[i], Valid: true}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO broadcast_lanes (broadcast_id, lane, after_id, last_id) VALUES (?, ?, ?, ?)`,
			b.ID, i, after, last); err != nil {
			return Broadcast{}, lane{}, fmt.Errorf("broadcast: start: %w", err)
		}
		after = last.Int64
	}
	if _, err := tx.ExecContext(ctx, `UPDATE broadcasts SET state = ?, started_at = ?, updated_at = ? WHERE id = ?`,
		Sending, store.Millis(now), store.Millis(now), b.ID); err != nil {
		return Broadcast{}, lane{}, fmt.Errorf("broadcast: start: %w", err)
	}
	b.State, b.StartedAt = Sending, now
	var first lane
	if len(bounds) > 0 {
		first.last = sql.NullInt64{Int64: bounds[0], Valid: true}
	}
	return b, first, nil
}

// splitFriends returns the friend IDs that split a channel's friends into n ranges of
// about as many each (fewer ranges when a range would hold fewer than least friends).
func splitFriends(ctx context.Context, tx *store.Tx, channelID string, n, least int) ([]int64, error) {
	var total int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM friends WHERE channel_id = ?", channelID).Scan(&total); err != nil {
		return nil, fmt.Errorf("broadcast: split: %w", err)
	}
	n = min(n, total/max(least, 1))
	var bounds []int64
	after := int64(0)
	for i := 1; i < n; i++ {
		// Each bound is found from the one before, so that no walk starts at the front.
		var id int64
		err := tx.QueryRowContext(ctx, "SELECT id FROM friends WHERE channel_id = ? AND id > ? ORDER BY id LIMIT 1 OFFSET ?",
			channelID, after, total/n-1).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			break // friends were deleted meanwhile: fewer lanes
		}
		if err != nil {
			return nil, fmt.Errorf("broadcast: split: %w", err)
		}
		bounds = append(bounds, id)
		after = id
	}
	return bounds, nil
}

// firstPage is the size of the first page of a broadcast whose content is personal: at
// LINE's 2,000 pushes a second, 100 ms of sending, rendered in a few.
const firstPage = 200

func (s *Service) expandChunk(ctx context.Context, tx *store.Tx, b Broadcast, l lane, now time.Time) error {
	c, err := segment.Resolve(ctx, tx, b.ChannelID, b.Segment)
	if err != nil {
		// A tag or field it names was deleted after it was created: it cannot be sent
		// as meant. Stop it visibly rather than guess.
		s.logger.Warn("broadcast segment no longer resolves; failed", "broadcast", b.ID, "err", err)
		return s.fail(ctx, tx, b.ID, now, fmt.Errorf("segment: %w", err))
	}
	names := b.Template.Variables()
	if len(names) == 0 {
		return s.expandIdentical(ctx, tx, b, c, l, now)
	}
	// Personal content has one lane, with no end (start).
	cursor := l.after
	members, err := segment.Page(ctx, tx, c, now, cursor, s.cfg.Chunk)
	if err != nil {
		return err
	}
	end := len(members) < s.cfg.Chunk
	// Personal content leaves by push, one friend at a time, so its first pages are
	// small: the first pushes leave while the rest is still being rendered (a first page
	// of 2,000 kept LINE waiting a few hundred milliseconds, for good). Then each is three
	// times all before it, up to Chunk, so that the dispatcher soon has enough queued to
	// ride out a page holding SQLite's one writer. Content the same for all (a shared
	// coupon code) keeps whole pages: it is grouped into multicasts a page at a time.
	first := min(len(members), max(firstPage, 3*(b.Recipients+b.Skipped)))
	items, skipped, err := s.renderPage(ctx, tx, b, members[:first], names, now)
	if err != nil {
		return err
	}
	if first < len(members) && personal(items) {
		members, end = members[:first], false
	} else if first < len(members) {
		rest, restSkipped, err := s.renderPage(ctx, tx, b, members[first:], names, now)
		if err != nil {
			return err
		}
		items, skipped = append(items, rest...), skipped+restSkipped
	}
	if err := s.deliveries.EnqueueMany(ctx, tx, items); err != nil {
		return err
	}
	if len(members) > 0 {
		cursor = members[len(members)-1].FriendID
	}
	return s.advance(ctx, tx, b.ID, l, cursor, len(items), skipped, end, now)
}

// renderPage renders the messages of members, leaving out (and counting) those who
// cannot be sent them.
func (s *Service) renderPage(ctx context.Context, tx *store.Tx, b Broadcast, members []segment.Member, names []string,
	now time.Time) ([]delivery.Item, int, error) {
	ids := make([]int64, len(members))
	for i, m := range members {
		ids[i] = m.FriendID
	}
	vars, err := s.friends.VarsOf(ctx, tx, ids)
	if err != nil {
		return nil, 0, err
	}
	skipped := 0
	items := make([]delivery.Item, 0, len(members))
	for _, m := range members {
		msgs, err := s.render(ctx, tx, b, m.FriendID, vars[m.FriendID], names, now)
		if err != nil {
			if errors.Is(err, errUnrenderable) {
				skipped++
				continue
			}
			return nil, 0, err
		}
		it := delivery.Item{ChannelID: b.ChannelID, FriendID: m.FriendID, LineUserID: m.LineUserID,
			Source: "broadcast", SourceID: b.ID, Messages: msgs, DueAt: now}
		if it.Check() != nil {
			skipped++ // e.g. not a LINE user ID (imported by hand): LINE would refuse the whole call
			continue
		}
		items = append(items, it)
	}
	return items, skipped, nil
}

// personal reports whether rendered messages differ from friend to friend: most of the
// first ten are unlike each other.
func personal(items []delivery.Item) bool {
	n := min(len(items), 10)
	seen := make(map[string]bool, n)
	for _, it := range items[:n] {
		var k []byte
		for _, m := range it.Messages {
			k = append(append(k, m...), 0)
		}
		seen[string(k)] = true
	}
	return n >= 2 && 2*len(seen) > n
}

// expandIdentical writes the next friends of a broadcast whose content is the same for
// everyone: rendered once, written by the database itself (delivery.EnqueueAudience).
func (s *Service) expandIdentical(ctx context.Context, tx *store.Tx, b Broadcast, c *segment.Compiled, l lane, now time.Time) error {
	msgs, err := b.Template.Render(nil)
	if err != nil {
		return s.fail(ctx, tx, b.ID, now, fmt.Errorf("template: %w", err))
	}
	a := delivery.Audience{ChannelID: b.ChannelID, Where: func(after int64) (string, []any) {
		where, args := c.WhereAfter(tx.Dialect(), now, after)
		if l.last.Valid {
			where, args = where+" AND f.id <= ?", append(args, l.last.Int64)
		}
		return where, args
	}}
	p, err := s.deliveries.EnqueueAudience(ctx, tx, a, l.after, s.identicalChunk, "broadcast", b.ID, msgs)
	if errors.Is(err, delivery.ErrInvalidItem) {
		return s.fail(ctx, tx, b.ID, now, err)
	}
	if err != nil {
		return err
	}
	return s.advance(ctx, tx, b.ID, l, p.Last, p.Queued, p.Skipped, p.End, now)
}

// advance moves a lane's cursor past what a chunk wrote, and ends the broadcast when the
// chunk found the end of its last lane still open. The broadcast's row is updated last:
// its lock orders the chunk against a Cancel (which waits for it, then cancels what it
// queued, or came first, and the chunk is undone), and the other lanes' chunks wait for
// it only while this one commits.
func (s *Service) advance(ctx context.Context, tx *store.Tx, id int64, l lane, cursor int64, written, skipped int, end bool, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `UPDATE broadcast_lanes SET after_id = ?, done = ? WHERE broadcast_id = ? AND lane = ?`,
		cursor, end, id, l.n); err != nil {
		return fmt.Errorf("broadcast: advance: %w", err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE broadcasts SET recipients = recipients + ?, skipped = skipped + ?, updated_at = ?
		WHERE id = ? AND state = ?`, written, skipped, store.Millis(now), id, Sending)
	if err != nil {
		return fmt.Errorf("broadcast: advance: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errStopped
	}
	if !end {
		return nil
	}
	// A statement of its own, after the row lock above: it sees the lanes that other
	// expanders finished and committed while this one waited for it.
	if _, err := tx.ExecContext(ctx, `UPDATE broadcasts SET state = ?, finished_at = ?, updated_at = ?
		WHERE id = ? AND state = ? AND NOT EXISTS (SELECT 1 FROM broadcast_lanes WHERE broadcast_id = ? AND NOT done)`,
		Done, store.Millis(now), store.Millis(now), id, Sending, id); err != nil {
		return fmt.Errorf("broadcast: advance: %w", err)
	}
	return nil
}

var errUnrenderable = errors.New("broadcast: message cannot be rendered for this friend")

// render renders a friend's messages from their variables (friend.VarsOf).
func (s *Service) render(ctx context.Context, tx *store.Tx, b Broadcast, friendID int64, vars message.MapVars, names []string, now time.Time) ([]json.RawMessage, error) {
	if vars == nil {
		return nil, fmt.Errorf("friend %d: %w", friendID, store.ErrNotFound)
	}
	if s.ExtraVars != nil {
		extra, err := s.ExtraVars(ctx, tx, b.ChannelID, friendID, names, now)
		if err != nil {
			return nil, err
		}
		for k, v := range extra {
			vars[k] = v
		}
	}
	msgs, err := b.Template.Render(vars)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUnrenderable, err)
	}
	return msgs, nil
}

// fail ends a broadcast that cannot be sent as meant; what it queued already stays. A
// cancel that committed after this chunk claimed its lane (the lane's lock does not
// hold the broadcast's row) stands: the staff member's cancel is what they see.
func (s *Service) fail(ctx context.Context, tx *store.Tx, id int64, now time.Time, cause error) error {
	_, err := tx.ExecContext(ctx, "UPDATE broadcasts SET state = ?, last_error = ?, finished_at = ?, updated_at = ? WHERE id = ? AND state = ?",
		Failed, cause.Error(), store.Millis(now), store.Millis(now), id, Sending)
	return err
}

// HoldExpansion waits until no chunk of the channel's broadcasts is being written, and
// keeps the next ones from starting until the transaction ends (PostgreSQL): a chunk
// writes deliveries without locking the friends it reads, so erasing a friend
// (friend.Erase) must let one in progress commit first, and then deletes what it wrote;
// the chunks after it no longer find the friend. The broadcasts due to start are held
// first (a start in progress writes a first chunk, and lanes this would not see), then
// the lanes of those sending. A broadcast created and started while the erasure's own
// transaction runs, a few milliseconds, is not held.
func (s *Service) HoldExpansion(ctx context.Context, tx *store.Tx, channelID string) error {
	if err := tx.Hold(ctx, `SELECT id FROM broadcasts WHERE channel_id = ? AND state = ? FOR UPDATE`, channelID, Scheduled); err != nil {
		return fmt.Errorf("broadcast: hold expansion: %w", err)
	}
	if err := tx.Hold(ctx, `SELECT l.broadcast_id FROM broadcast_lanes l JOIN broadcasts b ON b.id = l.broadcast_id
		WHERE b.channel_id = ? AND b.state = ? AND NOT l.done FOR UPDATE OF l`, channelID, Sending); err != nil {
		return fmt.Errorf("broadcast: hold expansion: %w", err)
	}
	return nil
}
