package friend

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

// SetAudit sets where the retention job records its deletions; set before serving.
func (s *Service) SetAudit(f audit.AppendFunc) { s.audit = f }

// RunRetention deletes expired field values and conversations every hour until ctx is
// done.
func (s *Service) RunRetention(ctx context.Context) error {
	clock.Every(ctx, s.clock, retentionInterval, func(ctx context.Context) {
		if _, err := s.ExpireFieldValues(ctx); err != nil && ctx.Err() == nil {
			s.logger.Error("friend: retention round failed", "err", err)
		}
		if _, err := s.ExpireConversations(ctx); err != nil && ctx.Err() == nil {
			s.logger.Error("friend: conversation retention round failed", "err", err)
		}
	})
	return nil
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

// Conversations: a channel keeps its conversation log (what friends wrote, what staff
// and the account answered) for its conversation_retention_days (0: for ever). The
// newest message of the whole table is never deleted: SQLite gives a new row the highest
// ID plus one, and the inbox counts a friend's messages by increasing ID.

// ExpiryHook is told, inside the deleting transaction, that a channel's messages written
// before a time were deleted: the inbox clears what it shows of them (its previews).
type ExpiryHook func(ctx context.Context, tx *store.Tx, channelID string, before time.Time) error

// SetConversationExpiry sets who is told of deleted messages; set before serving.
func (s *Service) SetConversationExpiry(f ExpiryHook) { s.messagesExpired = f }

// ExpireConversations deletes, for every channel with a conversation retention, the
// messages written longer ago than it, and returns how many it deleted.
func (s *Service) ExpireConversations(ctx context.Context) (int, error) {
	total := 0
	err := channel.ExpireEach(ctx, s.db, channel.KeepConversations, func(channelID string, days int) (bool, error) {
		n, err := s.expireMessages(ctx, channelID, days)
		total += n
		return n == retentionChunk, err
	})
	if err != nil {
		return total, fmt.Errorf("friend: conversation %w", err)
	}
	return total, nil
}

// expireMessages deletes up to retentionChunk of a channel's expired messages, with the
// audit record of the deletion, in one transaction.
func (s *Service) expireMessages(ctx context.Context, channelID string, days int) (int, error) {
	before := s.clock.Now().Add(-time.Duration(days) * 24 * time.Hour)
	cutoff := store.Millis(before)
	var n int64
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		if err := channel.LockForRetention(ctx, tx, channelID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE id IN
			(SELECT id FROM messages WHERE channel_id = ? AND occurred_at < ? AND id < (SELECT MAX(id) FROM messages)
				ORDER BY occurred_at LIMIT ?)`, channelID, cutoff, retentionChunk)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		if s.messagesExpired != nil {
			if err := s.messagesExpired(ctx, tx, channelID, before); err != nil {
				return err
			}
		}
		if s.audit == nil {
			return nil
		}
		return s.audit(ctx, tx, audit.Record{Actor: audit.System("retention"), Action: audit.RetentionDelete, ChannelID: channelID,
			Subject: "channel:" + channelID, Fields: []string{"messages"},
			Detail: map[string]string{"messages": strconv.FormatInt(n, 10), "retention_days": strconv.Itoa(days)}})
	})
	return int(n), err
}
