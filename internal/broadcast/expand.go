package broadcast

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/store"
)

// Run expands due broadcasts until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	for {
		more, err := s.Expand(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.logger.Warn("broadcast expansion failed; retrying", "err", err)
		}
		if more && err == nil {
			continue
		}
		if _, err := clock.Wait(ctx, s.clock, s.cfg.PollInterval, s.wake); err != nil {
			return nil
		}
	}
}

// Expand writes the next chunk of one due broadcast into the outbox, in one
// transaction with the move of its cursor. It reports whether there was work (call
// again). On PostgreSQL the broadcast's row is locked meanwhile, so another instance
// takes another broadcast or waits for the next chunk.
func (s *Service) Expand(ctx context.Context) (bool, error) {
	var more bool
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		now := s.clock.Now()
		lock := ""
		if tx.Dialect() == store.Postgres {
			lock = " FOR UPDATE SKIP LOCKED"
		}
		b, err := scan(tx.QueryRowContext(ctx, "SELECT "+columns+` FROM broadcasts WHERE state IN (?, ?) AND scheduled_at <= ?
			ORDER BY scheduled_at, id LIMIT 1`+lock, Scheduled, Sending, store.Millis(now)))
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("broadcast: claim: %w", err)
		}
		more = true
		var cursor int64
		if err := tx.QueryRowContext(ctx, "SELECT cursor_friend_id FROM broadcasts WHERE id = ?", b.ID).Scan(&cursor); err != nil {
			return err
		}
		return s.expandChunk(ctx, tx, b, cursor, now)
	})
	if err != nil {
		return false, err
	}
	if more {
		s.deliveries.Notify()
	}
	return more, nil
}

// firstPage is the size of the first page of a broadcast whose content is personal: at
// LINE's 2,000 pushes a second, 100 ms of sending, rendered in a few.
const firstPage = 200

func (s *Service) expandChunk(ctx context.Context, tx *store.Tx, b Broadcast, cursor int64, now time.Time) error {
	c, err := segment.Resolve(ctx, tx, b.ChannelID, b.Segment)
	if err != nil {
		// A tag or field it names was deleted after it was created: it cannot be sent
		// as meant. Stop it visibly rather than guess.
		s.logger.Warn("broadcast segment no longer resolves; failed", "broadcast", b.ID, "err", err)
		return s.fail(ctx, tx, b.ID, now, fmt.Errorf("segment: %w", err))
	}
	names := b.Template.Variables()
	if len(names) == 0 {
		return s.expandIdentical(ctx, tx, b, c, cursor, now)
	}
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
	return s.advance(ctx, tx, b.ID, cursor, len(items), skipped, end, now)
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
func (s *Service) expandIdentical(ctx context.Context, tx *store.Tx, b Broadcast, c *segment.Compiled, cursor int64, now time.Time) error {
	msgs, err := b.Template.Render(nil)
	if err != nil {
		return s.fail(ctx, tx, b.ID, now, fmt.Errorf("template: %w", err))
	}
	a := delivery.Audience{ChannelID: b.ChannelID, Where: func(after int64) (string, []any) {
		return c.WhereAfter(tx.Dialect(), now, after)
	}}
	p, err := s.deliveries.EnqueueAudience(ctx, tx, a, cursor, s.identicalChunk, "broadcast", b.ID, msgs)
	if errors.Is(err, delivery.ErrInvalidItem) {
		return s.fail(ctx, tx, b.ID, now, err)
	}
	if err != nil {
		return err
	}
	return s.advance(ctx, tx, b.ID, p.Last, p.Queued, p.Skipped, p.End, now)
}

// advance moves a broadcast's cursor past what a chunk wrote, and ends it when the
// chunk found the segment's end.
func (s *Service) advance(ctx context.Context, tx *store.Tx, id, cursor int64, written, skipped int, end bool, now time.Time) error {
	state, finished := Sending, sql.NullInt64{}
	if end {
		state, finished = Done, store.NullMillis(now)
	}
	_, err := tx.ExecContext(ctx, `UPDATE broadcasts SET state = ?, cursor_friend_id = ?, recipients = recipients + ?, skipped = skipped + ?,
		started_at = COALESCE(started_at, ?), finished_at = ?, updated_at = ? WHERE id = ?`,
		state, cursor, written, skipped, store.Millis(now), finished, store.Millis(now), id)
	if err != nil {
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

// fail ends a broadcast that cannot be sent as meant; what it queued already stays.
func (s *Service) fail(ctx context.Context, tx *store.Tx, id int64, now time.Time, cause error) error {
	_, err := tx.ExecContext(ctx, "UPDATE broadcasts SET state = ?, last_error = ?, finished_at = ?, updated_at = ? WHERE id = ?",
		Failed, cause.Error(), store.Millis(now), store.Millis(now), id)
	return err
}
