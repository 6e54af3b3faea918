package friend

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/line/line-bot-sdk-go/v8/linebot/webhook"

	"github.com/linestep/linestep/internal/ingest"
	"github.com/linestep/linestep/internal/store"
)

// Register subscribes the service to the events it applies.
func (s *Service) Register(p *ingest.Processor) {
	p.Handle("follow", s.applyFollow)
	p.Handle("unfollow", s.applyUnfollow)
	p.Handle("message", s.applyMessage)
	p.Handle("postback", s.applyPostback)
}

// applyFollow creates or reactivates the friend and owes them a profile fetch. Follow and
// unfollow compare event times, not arrival order: an older event arriving late (a
// redelivery, another instance) cannot undo a newer one.
func (s *Service) applyFollow(ctx context.Context, tx *store.Tx, ev ingest.Event) error {
	if !validUserID(ev.UserID) {
		return nil // a follow without a user (not from a 1:1 chat): nothing to record
	}
	fe, ok := ev.Decoded.(webhook.FollowEvent)
	if !ok {
		return fmt.Errorf("%w: follow event of type %T", ingest.ErrPermanent, ev.Decoded)
	}
	now := s.clock.Now()
	row, err := ensure(ctx, tx, ev.ChannelID, ev.UserID, now)
	if err != nil {
		return err
	}
	ts := store.Millis(ev.OccurredAt)
	first := ts
	if row.firstFollowed.Valid && row.firstFollowed.Int64 < ts {
		first = row.firstFollowed.Int64
	}
	latest := ts
	if row.followed.Valid && row.followed.Int64 > ts {
		latest = row.followed.Int64
	}
	unblocked := fe.Follow != nil && fe.Follow.IsUnblocked
	nowMs := store.Millis(now)
	if ts >= row.statusAt {
		_, err = tx.ExecContext(ctx, `UPDATE friends SET status = 'following', status_at = ?, unblocked = ?,
			first_followed_at = ?, followed_at = ?, follow_count = follow_count + 1,
			profile_due_at = ?, profile_attempts = 0, updated_at = ? WHERE id = ?`,
			ts, unblocked, first, latest, nowMs, nowMs, row.id)
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE friends SET first_followed_at = ?, followed_at = ?, follow_count = follow_count + 1, updated_at = ? WHERE id = ?`,
			first, latest, nowMs, row.id)
	}
	if err != nil {
		return fmt.Errorf("friend: apply follow: %w", err)
	}
	tx.AfterCommit(s.wakeProfiles)
	return nil
}

// applyUnfollow marks the friend blocked (LINE sends unfollow when a user blocks the
// account) and cancels any owed profile fetch: LINE no longer gives it.
func (s *Service) applyUnfollow(ctx context.Context, tx *store.Tx, ev ingest.Event) error {
	if !validUserID(ev.UserID) {
		return nil
	}
	now := s.clock.Now()
	row, err := ensure(ctx, tx, ev.ChannelID, ev.UserID, now)
	if err != nil {
		return err
	}
	ts := store.Millis(ev.OccurredAt)
	if ts < row.statusAt {
		return nil // a newer follow already happened
	}
	_, err = tx.ExecContext(ctx, `UPDATE friends SET status = 'blocked', status_at = ?, blocked_at = ?,
		profile_due_at = NULL, updated_at = ? WHERE id = ?`, ts, ts, store.Millis(now), row.id)
	if err != nil {
		return fmt.Errorf("friend: apply unfollow: %w", err)
	}
	return nil
}

// applyMessage appends an inbound message to the friend's conversation log.
func (s *Service) applyMessage(ctx context.Context, tx *store.Tx, ev ingest.Event) error {
	if !validUserID(ev.UserID) {
		return nil // group and room messages are not part of a 1:1 conversation
	}
	me, ok := ev.Decoded.(webhook.MessageEvent)
	if !ok {
		return fmt.Errorf("%w: message event of type %T", ingest.ErrPermanent, ev.Decoded)
	}
	m := Message{Direction: Inbound, Kind: "other"}
	switch c := me.Message.(type) {
	case webhook.TextMessageContent:
		m.Kind, m.Text, m.LineMessageID = "text", c.Text, c.Id
	case webhook.StickerMessageContent:
		m.Kind, m.StickerPackageID, m.StickerID, m.LineMessageID = "sticker", c.PackageId, c.StickerId, c.Id
	case webhook.ImageMessageContent:
		m.Kind, m.LineMessageID = "image", c.Id
	case webhook.VideoMessageContent:
		m.Kind, m.LineMessageID = "video", c.Id
	case webhook.AudioMessageContent:
		m.Kind, m.LineMessageID = "audio", c.Id
	case webhook.FileMessageContent:
		m.Kind, m.Text, m.LineMessageID = "file", c.FileName, c.Id
	case webhook.LocationMessageContent:
		m.Kind, m.Text, m.LineMessageID = "location", joinNonEmpty(c.Title, c.Address), c.Id
	}
	_, err := s.logInbound(ctx, tx, ev, m)
	return err
}

// applyPostback logs a postback (a tap on a button or rich menu area) in the conversation.
func (s *Service) applyPostback(ctx context.Context, tx *store.Tx, ev ingest.Event) error {
	if !validUserID(ev.UserID) {
		return nil
	}
	pe, ok := ev.Decoded.(webhook.PostbackEvent)
	if !ok {
		return fmt.Errorf("%w: postback event of type %T", ingest.ErrPermanent, ev.Decoded)
	}
	m := Message{Direction: Inbound, Kind: "postback"}
	if pe.Postback != nil {
		m.PostbackData = pe.Postback.Data
		if len(pe.Postback.Params) > 0 {
			b, _ := json.Marshal(pe.Postback.Params)
			m.PostbackParams = string(b)
		}
	}
	friendID, err := s.logInbound(ctx, tx, ev, m)
	if err != nil || pe.Postback == nil {
		return err
	}
	return s.applyConsentPostback(ctx, tx, ev, friendID, pe.Postback.Data)
}

// logInbound records an inbound message and returns the friend's ID.
func (s *Service) logInbound(ctx context.Context, tx *store.Tx, ev ingest.Event, m Message) (int64, error) {
	now := s.clock.Now()
	row, err := ensure(ctx, tx, ev.ChannelID, ev.UserID, now)
	if err != nil {
		return 0, err
	}
	ts := store.Millis(ev.OccurredAt)
	_, err = tx.ExecContext(ctx, `INSERT INTO messages (channel_id, friend_id, direction, kind, text, sticker_package_id, sticker_id,
			line_message_id, postback_data, postback_params, event_id, occurred_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		ev.ChannelID, row.id, string(m.Direction), m.Kind, m.Text, m.StickerPackageID, m.StickerID,
		m.LineMessageID, m.PostbackData, m.PostbackParams, ev.EventID, ts, store.Millis(now))
	if err != nil {
		return 0, fmt.Errorf("friend: log message: %w", err)
	}
	_, err = tx.ExecContext(ctx, `UPDATE friends SET last_message_at = CASE WHEN last_message_at IS NULL OR last_message_at < ? THEN ? ELSE last_message_at END,
		updated_at = ? WHERE id = ?`, ts, ts, store.Millis(now), row.id)
	if err != nil {
		return 0, fmt.Errorf("friend: log message: %w", err)
	}
	if row.status == Unknown {
		tx.AfterCommit(s.wakeProfiles)
	}
	return row.id, nil
}

func joinNonEmpty(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "\n" + b
}
