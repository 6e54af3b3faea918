package friend

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/store"
)

// Retention: a custom field with retention_days keeps each friend's value that many days
// after it was set (changed: setting the same value again does not extend it). A job
// deletes what has run out every hour, and records each deletion in the audit log: how
// many values of which field, never the values.

const (
	retentionInterval = time.Hour
	// retentionChunk bounds the values one transaction deletes, so that a field whose
	// values all ran out at once does not hold SQLite's one writer (and the webhooks
	// waiting for it) for long.
	retentionChunk = 2000
)

// AuditFunc appends a record to the audit log inside tx.
type AuditFunc func(ctx context.Context, tx *store.Tx, rec audit.Record) error

// SetAudit sets where the retention job records its deletions; set before serving.
func (s *Service) SetAudit(f AuditFunc) { s.audit = f }

// RunRetention deletes expired field values until ctx is done.
func (s *Service) RunRetention(ctx context.Context) error {
	for {
		if _, err := s.ExpireFieldValues(ctx); err != nil && ctx.Err() == nil {
			s.logger.Error("friend: retention round failed", "err", err)
		}
		if s.clock.Sleep(ctx, retentionInterval) != nil {
			return nil
		}
	}
}

// ExpireFieldValues deletes the values of every field with a retention that were set
// longer ago than it, and returns how many it deleted.
func (s *Service) ExpireFieldValues(ctx context.Context) (int, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+fieldColumns+" FROM fields WHERE retention_days > 0 ORDER BY id")
	if err != nil {
		return 0, fmt.Errorf("friend: retention: %w", err)
	}
	var fields []Field
	for rows.Next() {
		f, err := scanField(rows)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("friend: retention: %w", err)
		}
		fields = append(fields, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("friend: retention: %w", err)
	}
	total := 0
	for _, f := range fields {
		for {
			n, err := s.expireChunk(ctx, f)
			total += n
			if err != nil {
				return total, err
			}
			if n < retentionChunk {
				break
			}
		}
	}
	return total, nil
}

// expireChunk deletes up to retentionChunk expired values of f with the audit record of
// the deletion, in one transaction.
func (s *Service) expireChunk(ctx context.Context, f Field) (int, error) {
	now := s.clock.Now()
	cutoff := store.Millis(now.Add(-time.Duration(f.RetentionDays) * 24 * time.Hour))
	var n int64
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		if tx.Dialect() == store.Postgres {
			// Instances running the job at once take turns per field: each deletion is
			// then counted and recorded by the one that made it.
			var id int64
			if err := tx.QueryRowContext(ctx, "SELECT id FROM fields WHERE id = ? FOR UPDATE", f.ID).Scan(&id); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM friend_fields WHERE (friend_id, field_id) IN
			(SELECT friend_id, field_id FROM friend_fields WHERE field_id = ? AND updated_at < ? LIMIT ?)`, f.ID, cutoff, retentionChunk)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 || s.audit == nil {
			return err
		}
		return s.audit(ctx, tx, audit.Record{Actor: audit.System("retention"), Action: audit.RetentionDelete, ChannelID: f.ChannelID,
			Subject: audit.Subject("field", f.ID), Fields: []string{f.Key},
			Detail: map[string]string{"values": strconv.FormatInt(n, 10), "retention_days": strconv.Itoa(f.RetentionDays)}})
	})
	if err != nil {
		return 0, fmt.Errorf("friend: retention of field %s: %w", f.Key, err)
	}
	return int(n), nil
}
