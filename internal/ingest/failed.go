package ingest

import (
	"context"
	"fmt"

	"github.com/linestep/linestep/internal/store"
)

// FailedEvents counts a channel's events whose processing failed for good (kept for the
// retention period): the dashboard shows them, the log says why.
func FailedEvents(ctx context.Context, q store.Querier, channelID string) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM webhook_events WHERE channel_id = ? AND state = 'failed'", channelID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("ingest: count failed: %w", err)
	}
	return n, nil
}
