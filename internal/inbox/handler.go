package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/line/line-bot-sdk-go/v8/linebot/webhook"

	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/ingest"
	"github.com/linestep/linestep/internal/store"
)

// previewLen bounds the text kept to show under a conversation in the list, in runes.
const previewLen = 100

// Register subscribes the inbox to friends' messages and postbacks. It must be
// registered after the friend service, whose handlers log the message this one reads.
func (s *Service) Register(p *ingest.Processor) {
	p.Handle("message", s.applyMessage)
	p.Handle("postback", s.applyPostback)
}

// logged is the conversation-log row the friend service wrote for an event.
type logged struct {
	id, friendID int64
	kind, text   string
	occurredAt   int64
	replyToken   string
}

// loggedMessage finds the row the friend service logged for the event; ok is false when
// it logged none (not a 1:1 chat).
func loggedMessage(ctx context.Context, tx *store.Tx, ev ingest.Event) (m logged, ok bool, err error) {
	err = tx.QueryRowContext(ctx, `SELECT id, friend_id, kind, text, occurred_at, reply_token FROM messages
		WHERE channel_id = ? AND event_id = ? AND direction = 'in'`, ev.ChannelID, ev.EventID).
		Scan(&m.id, &m.friendID, &m.kind, &m.text, &m.occurredAt, &m.replyToken)
	if errors.Is(err, sql.ErrNoRows) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("inbox: find logged message: %w", err)
	}
	return m, true, nil
}

// keepReplyToken stores the event's reply token on its logged message, for a staff reply
// within the minute. A redelivered event's token counts as spent (delivery.ReplyExpiry),
// and an event in standby mode has none.
func keepReplyToken(ctx context.Context, tx *store.Tx, ev ingest.Event, m logged, token string) error {
	if token == "" || m.replyToken != "" || ev.Standby() {
		return nil
	}
	expires := delivery.ReplyExpiry(ev)
	if expires.IsZero() {
		return nil
	}
	_, err := tx.ExecContext(ctx, `UPDATE messages SET reply_token = ?, reply_expires_at = ? WHERE id = ?`,
		token, store.Millis(expires), m.id)
	if err != nil {
		return fmt.Errorf("inbox: keep reply token: %w", err)
	}
	return nil
}

// applyMessage counts a friend's message in their conversation and (re)opens it.
func (s *Service) applyMessage(ctx context.Context, tx *store.Tx, ev ingest.Event) error {
	if ev.UserID == "" {
		return nil // groups and rooms have no 1:1 conversation
	}
	me, ok := ev.Decoded.(webhook.MessageEvent)
	if !ok {
		return nil // the friend service reports the undecodable event
	}
	m, ok, err := loggedMessage(ctx, tx, ev)
	if err != nil || !ok {
		return err
	}
	if err := keepReplyToken(ctx, tx, ev, m, me.ReplyToken); err != nil {
		return err
	}
	return s.inbound(ctx, tx, ev, m)
}

// applyPostback keeps a postback's reply token; the tap itself does not move the
// conversation (see the package comment).
func (s *Service) applyPostback(ctx context.Context, tx *store.Tx, ev ingest.Event) error {
	if ev.UserID == "" {
		return nil
	}
	pe, ok := ev.Decoded.(webhook.PostbackEvent)
	if !ok {
		return nil
	}
	m, ok, err := loggedMessage(ctx, tx, ev)
	if err != nil || !ok {
		return err
	}
	return keepReplyToken(ctx, tx, ev, m, pe.ReplyToken)
}

// inbound counts message m in its friend's conversation, creating the conversation if
// need be. The friend row is locked by the friend service for the rest of the
// transaction, so the messages of one friend are logged, and counted, one after the
// other, in increasing ID order: a message whose ID is not above the last one counted
// was counted before (the same event applied again).
//
// The inbox is ordered by when we received a message, on our clock, like the staff
// replies it sits among; last_inbound_at keeps the time the friend sent it (LINE's).
func (s *Service) inbound(ctx context.Context, tx *store.Tx, ev ingest.Event, m logged) error {
	now := store.Millis(s.clock.Now())
	at := store.Millis(ev.ReceivedAt)
	if err := ensure(ctx, tx, ev.ChannelID, m.friendID, Open, now); err != nil {
		return err
	}
	// Every expression of SET reads the row as it was before the update.
	_, err := tx.ExecContext(ctx, `UPDATE conversations SET
			unread = unread + 1,
			counted_message_id = ?,
			status_at = CASE WHEN status <> 'open' THEN ? ELSE status_at END,
			status = 'open',
			last_inbound_at = CASE WHEN last_inbound_at IS NULL OR last_inbound_at < ? THEN ? ELSE last_inbound_at END,
			preview_direction = CASE WHEN last_activity_at <= ? THEN 'in' ELSE preview_direction END,
			preview_kind = CASE WHEN last_activity_at <= ? THEN ? ELSE preview_kind END,
			preview_text = CASE WHEN last_activity_at <= ? THEN ? ELSE preview_text END,
			last_activity_at = CASE WHEN last_activity_at < ? THEN ? ELSE last_activity_at END,
			updated_at = ?
		WHERE friend_id = ? AND counted_message_id < ?`,
		m.id, now, m.occurredAt, m.occurredAt,
		at, at, m.kind, at, preview(m.text),
		at, at, now, m.friendID, m.id)
	if err != nil {
		return fmt.Errorf("inbox: count message: %w", err)
	}
	return nil
}

// ensure creates the friend's conversation, in status st, unless it exists. A new row
// has no activity yet (time 0): the update that follows sets it.
func ensure(ctx context.Context, tx *store.Tx, channelID string, friendID int64, st Status, now int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO conversations (friend_id, channel_id, status, status_at, last_activity_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT (friend_id) DO NOTHING`,
		friendID, channelID, string(st), now, now, now)
	if err != nil {
		return fmt.Errorf("inbox: create conversation: %w", err)
	}
	return nil
}

// preview cuts a message's text for the list.
func preview(s string) string {
	n := 0
	for i := range s {
		if n == previewLen {
			return s[:i]
		}
		n++
	}
	return s
}
