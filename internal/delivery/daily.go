package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// Tally is what became of a channel's deliveries over a period: what the dashboard
// shows.
type Tally struct {
	Sent   int // handed to LINE in the period
	Failed int // due in the period and refused by LINE for good
}

// TallySince counts a channel's deliveries sent since a time, and those failed that were
// due since then (a failure records no time of its own). Every delivery goes out in a
// batch whose size is its member count, so what was sent is summed over batches.
func (s *Service) TallySince(ctx context.Context, channelID string, since time.Time) (Tally, error) {
	var t Tally
	ms := store.Millis(since)
	err := s.db.QueryRowContext(ctx, `SELECT
			(SELECT COALESCE(SUM(size), 0) FROM batches WHERE channel_id = ? AND state = 'sent' AND sent_at >= ?),
			(SELECT COUNT(*) FROM deliveries WHERE channel_id = ? AND state = 'failed' AND due_at >= ?)`,
		channelID, ms, channelID, ms).Scan(&t.Sent, &t.Failed)
	if err != nil {
		return Tally{}, fmt.Errorf("delivery: tally: %w", err)
	}
	return t, nil
}

// RecentFailures returns a channel's failed deliveries due since a time, newest first.
func (s *Service) RecentFailures(ctx context.Context, channelID string, since time.Time, limit int) ([]Record, error) {
	return s.query(ctx, `WHERE d.channel_id = ? AND d.state = 'failed' AND d.due_at >= ? ORDER BY d.id DESC LIMIT ?`,
		channelID, store.Millis(since), limit)
}
