package delivery

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

// Retention: a channel keeps what it sent for its delivery_retention_days (0: for ever).
// Every hour a job deletes the calls (batches) that ended longer ago than that, sent,
// failed or cancelled, with their deliveries, and the deliveries that ended without a
// call (dropped or cancelled while pending) as long ago. A delivery holds a LINE user
// ID and, for personal content, a text with the friend's name. Each round's counts go
// to the audit log, never what was deleted.
//
// The newest delivery and the newest batch of the whole table are never deleted: SQLite
// (no AUTOINCREMENT) gives a new row the highest ID plus one, so deleting the highest
// would hand its ID out again: a batch's ID to another call with the same retry key, a
// delivery's to another delivery that a staff reply in the conversation log points to.

const (
	retentionInterval = time.Hour
	// retentionBatches bounds the batches one transaction deletes: up to 100,000
	// deliveries of multicasts, a few hundred milliseconds of SQLite's one writer.
	retentionBatches = 200
	// retentionLoose bounds the deliveries without a batch one transaction deletes.
	retentionLoose = 2000
)

// ExpireHook is told, inside the deleting transaction, which deliveries are about to be
// deleted: those matching where (a condition over deliveries, unqualified) with args. The
// broadcast service adds them to its broadcasts' expired counts.
type ExpireHook func(ctx context.Context, tx *store.Tx, where string, args ...any) error

// SetRetention sets where the retention job records its deletions and whom it tells
// first; set both before serving.
func (s *Service) SetRetention(record audit.AppendFunc, beforeExpire ExpireHook) {
	s.audit, s.beforeExpire = record, beforeExpire
}

// RunRetention deletes expired deliveries every hour until ctx is done.
func (s *Service) RunRetention(ctx context.Context) error {
	clock.Every(ctx, s.clock, retentionInterval, func(ctx context.Context) {
		if _, err := s.ExpireDeliveries(ctx); err != nil && ctx.Err() == nil {
			s.logger.Error("delivery: retention round failed", "err", err)
		}
	})
	return nil
}

// Expired is what a retention round deleted.
type Expired struct {
	Deliveries, Batches int
}

// ExpireDeliveries deletes, for every channel with a delivery retention, what ended
// longer ago than it.
func (s *Service) ExpireDeliveries(ctx context.Context) (Expired, error) {
	var total Expired
	err := channel.ExpireEach(ctx, s.db, channel.KeepDeliveries, func(channelID string, days int) (bool, error) {
		e, more, err := s.expireChunk(ctx, channelID, days)
		total.Deliveries += e.Deliveries
		total.Batches += e.Batches
		return more, err
	})
	if err != nil {
		return total, fmt.Errorf("delivery: %w", err)
	}
	return total, nil
}

// expireChunk deletes up to a chunk of a channel's expired batches and loose deliveries,
// with the audit record of the deletion, in one transaction. more reports a full chunk.
func (s *Service) expireChunk(ctx context.Context, channelID string, days int) (e Expired, more bool, err error) {
	cutoff := store.Millis(s.clock.Now().Add(-time.Duration(days) * 24 * time.Hour))
	err = s.db.WriteTx(ctx, func(tx *store.Tx) error {
		e, more = Expired{}, false
		if err := channel.LockForRetention(ctx, tx, channelID); err != nil {
			return err
		}
		var newestBatch, newestDelivery int64
		if err := tx.QueryRowContext(ctx, "SELECT COALESCE((SELECT MAX(id) FROM batches), 0), COALESCE((SELECT MAX(id) FROM deliveries), 0)").
			Scan(&newestBatch, &newestDelivery); err != nil {
			return err
		}
		batches, err := queryIDs(ctx, tx, `SELECT id FROM batches WHERE channel_id = ? AND state = 'sent' AND sent_at < ? AND id < ?
			ORDER BY sent_at LIMIT ?`, channelID, cutoff, newestBatch, retentionBatches)
		if err != nil {
			return err
		}
		ended, err := queryIDs(ctx, tx, `SELECT id FROM batches WHERE channel_id = ? AND state IN ('failed', 'cancelled') AND created_at < ?
			AND id < ? ORDER BY created_at LIMIT ?`, channelID, cutoff, newestBatch, retentionBatches)
		if err != nil {
			return err
		}
		loose, err := queryIDs(ctx, tx, `SELECT id FROM deliveries WHERE channel_id = ? AND batch_id IS NULL
			AND state IN ('dropped', 'cancelled', 'failed') AND created_at < ? AND id < ? ORDER BY created_at LIMIT ?`,
			channelID, cutoff, newestDelivery, retentionLoose)
		if err != nil {
			return err
		}
		more = len(batches) == retentionBatches || len(ended) == retentionBatches || len(loose) == retentionLoose
		batches = append(batches, ended...)
		for _, part := range []struct {
			col string
			ids []int64
		}{{"batch_id", batches}, {"id", loose}} {
			if len(part.ids) == 0 {
				continue
			}
			in, args := inList(part.ids)
			where, args := part.col+" IN "+in+" AND id < ?", append(args, newestDelivery)
			if s.beforeExpire != nil {
				if err := s.beforeExpire(ctx, tx, where, args...); err != nil {
					return err
				}
			}
			res, err := tx.ExecContext(ctx, "DELETE FROM deliveries WHERE "+where, args...)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			e.Deliveries += int(n)
		}
		if len(batches) > 0 {
			// A batch that kept the newest delivery stays with it.
			in, args := inList(batches)
			res, err := tx.ExecContext(ctx, "DELETE FROM batches WHERE id IN "+in+
				" AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.batch_id = batches.id)", args...)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			e.Batches = int(n)
		}
		if e.Deliveries+e.Batches == 0 || s.audit == nil {
			return nil
		}
		return s.audit(ctx, tx, audit.Record{Actor: audit.System("retention"), Action: audit.RetentionDelete, ChannelID: channelID,
			Subject: "channel:" + channelID, Fields: []string{"deliveries"},
			Detail: map[string]string{"deliveries": strconv.Itoa(e.Deliveries), "batches": strconv.Itoa(e.Batches),
				"retention_days": strconv.Itoa(days)}})
	})
	return e, more, err
}

// queryIDs runs a query of one integer column.
func queryIDs(ctx context.Context, tx *store.Tx, query string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// inList is "(?, ?, ...)" for ids, with its arguments.
func inList(ids []int64) (string, []any) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return store.Placeholders(1, len(ids)), args
}
