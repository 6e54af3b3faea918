package channel

import (
	"context"
	"fmt"

	"github.com/linestep/linestep/internal/store"
)

// Retention is how long one channel keeps one kind of data, for the jobs that delete it
// (package delivery: what was sent; package friend: conversations).
type Retention struct {
	ChannelID string
	Days      int
}

// Kinds of data a channel keeps for a set time: its column of channels.
const (
	KeepDeliveries    = "delivery_retention_days"
	KeepConversations = "conversation_retention_days"
)

// ExpireEach is a retention job's round: for every channel that keeps kind for a limited
// time, it runs chunk (which deletes a chunk of what expired), again while chunk reports
// more.
func ExpireEach(ctx context.Context, q store.Querier, kind string, chunk func(channelID string, days int) (more bool, err error)) error {
	chs, err := retentions(ctx, q, kind)
	if err != nil {
		return err
	}
	for _, c := range chs {
		for more := true; more; {
			if more, err = chunk(c.ChannelID, c.Days); err != nil {
				return fmt.Errorf("retention of channel %s: %w", c.ChannelID, err)
			}
		}
	}
	return nil
}

// retentions lists the channels that keep kind (KeepDeliveries or KeepConversations)
// for a limited time.
func retentions(ctx context.Context, q store.Querier, kind string) ([]Retention, error) {
	if kind != KeepDeliveries && kind != KeepConversations {
		return nil, fmt.Errorf("channel: retention of %q: no such kind", kind)
	}
	rows, err := q.QueryContext(ctx, "SELECT id, "+kind+" FROM channels WHERE "+kind+" > 0 ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("channel: retentions: %w", err)
	}
	defer rows.Close()
	var out []Retention
	for rows.Next() {
		var r Retention
		if err := rows.Scan(&r.ChannelID, &r.Days); err != nil {
			return nil, fmt.Errorf("channel: retentions: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// LockForRetention makes instances running a retention job at once take turns on a
// channel (PostgreSQL), so that each deletion is counted once. The lock does not hold up
// writers of deliveries, whose share lock on the channel (FOR KEY SHARE) does not
// conflict with it.
func LockForRetention(ctx context.Context, tx *store.Tx, channelID string) error {
	if tx.Dialect() != store.Postgres {
		return nil
	}
	var id string
	if err := tx.QueryRowContext(ctx, "SELECT id FROM channels WHERE id = ? FOR NO KEY UPDATE", channelID).Scan(&id); err != nil {
		return fmt.Errorf("channel: lock for retention: %w", err)
	}
	return nil
}
