package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// SetStatus moves a friend's conversation to st. The caller checks that the staff
// member may. A conversation that does not exist (the friend never wrote and was never
// written to) is store.ErrNotFound.
func (s *Service) SetStatus(ctx context.Context, channelID string, friendID int64, st Status) error {
	if !st.Valid() {
		return invalidStatus(st)
	}
	now := store.Millis(s.clock.Now())
	res, err := s.db.ExecContext(ctx, `UPDATE conversations SET
			status_at = CASE WHEN status <> ? THEN ? ELSE status_at END,
			status = ?, updated_at = ?
		WHERE channel_id = ? AND friend_id = ?`,
		string(st), now, string(st), now, channelID, friendID)
	if err != nil {
		return fmt.Errorf("inbox: set status: %w", err)
	}
	return found(res, friendID)
}

// Assign makes a staff member responsible for a friend's conversation; staffID 0 leaves
// it unassigned. The caller checks that the acting staff member may assign, and that the
// assignee works on the channel. An unknown or disabled assignee is refused with
// ErrInvalid.
func (s *Service) Assign(ctx context.Context, channelID string, friendID, staffID int64) error {
	assignee := sql.NullInt64{Int64: staffID, Valid: staffID != 0}
	if staffID != 0 {
		var disabled sql.NullInt64
		err := s.db.QueryRowContext(ctx, "SELECT disabled_at FROM staff WHERE id = ?", staffID).Scan(&disabled)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && disabled.Valid) {
			return refuse(ErrInvalid, "assignee", "担当者に選べないスタッフです（存在しないか、無効になっています）",
				"the assignee is not an active staff member")
		}
		if err != nil {
			return fmt.Errorf("inbox: assign: %w", err)
		}
	}
	res, err := s.db.ExecContext(ctx, `UPDATE conversations SET assignee_id = ?, updated_at = ? WHERE channel_id = ? AND friend_id = ?`,
		assignee, store.Millis(s.clock.Now()), channelID, friendID)
	if err != nil {
		// A staff member deleted between the check and the update.
		return fmt.Errorf("inbox: assign: %w", err)
	}
	return found(res, friendID)
}

// MarkRead records that staff have seen a friend's conversation up to and including
// message throughID (a Message.ID), or everything when throughID is 0. Messages that
// arrived after what the staff member saw stay unread, so the console passes the last
// message it showed. The unread count is shared by the staff of the channel.
func (s *Service) MarkRead(ctx context.Context, channelID string, friendID, throughID int64) error {
	now := store.Millis(s.clock.Now())
	var res sql.Result
	var err error
	if throughID == 0 {
		res, err = s.db.ExecContext(ctx, `UPDATE conversations SET unread = 0, read_at = ?, updated_at = ?
			WHERE channel_id = ? AND friend_id = ?`, now, now, channelID, friendID)
	} else {
		// What stays unread is what was counted (messages, not postbacks) after throughID.
		res, err = s.db.ExecContext(ctx, `UPDATE conversations SET
				unread = (SELECT COUNT(*) FROM messages m WHERE m.friend_id = conversations.friend_id AND m.direction = 'in'
					AND m.kind <> 'postback' AND m.id > ? AND m.id <= conversations.counted_message_id),
				read_at = ?, updated_at = ?
			WHERE channel_id = ? AND friend_id = ?`, throughID, now, now, channelID, friendID)
	}
	if err != nil {
		return fmt.Errorf("inbox: mark read: %w", err)
	}
	return found(res, friendID)
}

// found turns an update that touched no row into store.ErrNotFound.
func found(res sql.Result, friendID int64) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("inbox: conversation of friend %d: %w", friendID, store.ErrNotFound)
	}
	return nil
}

// ForgetPreviews is the friend service's hook for deleted messages
// (friend.SetConversationExpiry): a conversation whose newest message was written before
// the channel's retention no longer shows its first characters either.
func (s *Service) ForgetPreviews(ctx context.Context, tx *store.Tx, channelID string, before time.Time) error {
	if _, err := tx.ExecContext(ctx, `UPDATE conversations SET preview_direction = '', preview_kind = '', preview_text = ''
		WHERE channel_id = ? AND last_activity_at < ? AND preview_kind <> ''`, channelID, store.Millis(before)); err != nil {
		return fmt.Errorf("inbox: forget previews: %w", err)
	}
	return nil
}
