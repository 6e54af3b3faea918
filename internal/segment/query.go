package segment

import (
	"context"
	"fmt"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// Member is a friend a segment selects.
type Member struct {
	FriendID   int64
	LineUserID string
}

// MaxPage is the largest page Page returns.
const MaxPage = 10000

// Count returns how many friends of the channel match.
func Count(ctx context.Context, q store.Querier, c *Compiled, now time.Time) (int, error) {
	where, args := c.Where(q.Dialect(), now)
	var n int
	err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM friends f WHERE f.channel_id = ? AND "+where,
		append([]any{c.channelID}, args...)...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("segment: count: %w", err)
	}
	return n, nil
}

// Page returns up to limit matching friends with an id above afterID, by id: keyset
// pagination, so a broadcast to a million friends walks the table once, and friends who
// join while it runs are either in a later page or not, never twice. A limit outside
// 1..MaxPage is taken as MaxPage.
func Page(ctx context.Context, q store.Querier, c *Compiled, now time.Time, afterID int64, limit int) ([]Member, error) {
	if limit <= 0 || limit > MaxPage {
		limit = MaxPage
	}
	where, args := c.where(q.Dialect(), now, afterID)
	all := make([]any, 0, len(args)+3)
	all = append(all, c.channelID, afterID)
	all = append(all, args...)
	all = append(all, limit)
	rows, err := q.QueryContext(ctx, "SELECT f.id, f.line_user_id FROM friends f WHERE f.channel_id = ? AND f.id > ? AND "+
		where+" ORDER BY f.id LIMIT ?", all...)
	if err != nil {
		return nil, fmt.Errorf("segment: page: %w", err)
	}
	defer rows.Close()
	out := make([]Member, 0, min(limit, 1024))
	for rows.Next() {
		var m Member
		if err := rows.Scan(&m.FriendID, &m.LineUserID); err != nil {
			return nil, fmt.Errorf("segment: page: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("segment: page: %w", err)
	}
	return out, nil
}

// Match reports whether one friend of the channel matches, for step conditions. A
// friend of another channel never matches.
func (c *Compiled) Match(ctx context.Context, q store.Querier, friendID int64, now time.Time) (bool, error) {
	where, args := c.Where(q.Dialect(), now)
	var n int
	err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM friends f WHERE f.id = ? AND f.channel_id = ? AND "+where,
		append([]any{friendID, c.channelID}, args...)...).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("segment: match: %w", err)
	}
	return n > 0, nil
}
