package richmenu

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/store"
)

// Retention: a link holds a friend's LINE user ID and the menu they were shown, so it is
// kept no longer than what the channel sent (its delivery_retention_days; 0: for ever).
// Every hour a job deletes the links that ended (done, failed or dropped) longer ago
// than that; a pending link is still to be made and stays. Each round's count goes to
// the audit log, never what was deleted.

const (
	retentionInterval = time.Hour
	// retentionChunk bounds the links one transaction deletes.
	retentionChunk = 2000
)

// SetRetention sets where the retention job records its deletions; set it before serving.
func (s *Service) SetRetention(record audit.AppendFunc) { s.audit = record }

// RunRetention deletes expired links every hour until ctx is done.
func (s *Service) RunRetention(ctx context.Context) error {
	clock.Every(ctx, s.clock, retentionInterval, func(ctx context.Context) {
		if _, err := s.ExpireLinks(ctx); err != nil && ctx.Err() == nil {
			s.logger.Error("richmenu: retention round failed", "err", err)
		}
	})
	return nil
}

// ExpireLinks deletes, for every channel with a delivery retention, the links that ended
// longer ago than it. It returns how many it deleted.
func (s *Service) ExpireLinks(ctx context.Context) (int, error) {
	total := 0
	err := channel.ExpireEach(ctx, s.db, channel.KeepDeliveries, func(channelID string, days int) (bool, error) {
		n, err := s.expireChunk(ctx, channelID, days)
		total += n
		return n == retentionChunk, err
	})
	if err != nil {
		return total, fmt.Errorf("richmenu: %w", err)
	}
	return total, nil
}

// expireChunk deletes up to a chunk of a channel's expired links, with the audit record
// of the deletion, in one transaction.
func (s *Service) expireChunk(ctx context.Context, channelID string, days int) (int, error) {
	cutoff := store.Millis(s.clock.Now().Add(-time.Duration(days) * 24 * time.Hour))
	var n int
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		n = 0
		if err := channel.LockForRetention(ctx, tx, channelID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM richmenu_links WHERE id IN (SELECT id FROM richmenu_links
			WHERE channel_id = ? AND state <> 'pending' AND updated_at < ? ORDER BY updated_at LIMIT ?)`,
			channelID, cutoff, retentionChunk)
		if err != nil {
			return err
		}
		deleted, _ := res.RowsAffected()
		if n = int(deleted); n == 0 || s.audit == nil {
			return nil
		}
		return s.audit(ctx, tx, audit.Record{Actor: audit.System("retention"), Action: audit.RetentionDelete, ChannelID: channelID,
			Subject: "channel:" + channelID, Fields: []string{"richmenu_links"},
			Detail: map[string]string{"richmenu_links": strconv.Itoa(n), "retention_days": strconv.Itoa(days)}})
	})
	return n, err
}
