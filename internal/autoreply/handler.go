package autoreply

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/line/line-bot-sdk-go/v8/linebot/webhook"

	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/ingest"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
)

// Source names auto-replies in the outbox.
const Source = "autoreply"

// Register answers text messages. It must be registered after the friend service, whose
// message handler records the friend this one looks up.
func (s *Service) Register(p *ingest.Processor) {
	p.Handle("message", s.applyMessage)
}

// applyMessage writes at most one auto-reply for a text message from a following friend.
// It runs in the event's transaction and calls nothing remote. A redelivered event is
// stored and applied once, so it is not answered twice; when its reply token has gone
// stale meanwhile, the dispatcher pushes instead.
func (s *Service) applyMessage(ctx context.Context, tx *store.Tx, ev ingest.Event) error {
	if ev.UserID == "" || ev.Standby() {
		return nil // a group or room, or another channel has the chat: stay silent
	}
	me, ok := ev.Decoded.(webhook.MessageEvent)
	if !ok {
		return nil // the friend service reports the undecodable event
	}
	text, ok := me.Message.(webhook.TextMessageContent)
	if !ok {
		return nil
	}
	var friendID int64
	var lineUserID string
	err := tx.QueryRowContext(ctx, `SELECT id, line_user_id FROM friends WHERE channel_id = ? AND line_user_id = ? AND status = 'following'`,
		ev.ChannelID, ev.UserID).Scan(&friendID, &lineUserID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // blocked, not yet confirmed as following, or no 1:1 chat
	}
	if err != nil {
		return fmt.Errorf("autoreply: look up friend: %w", err)
	}
	// The window is judged at the time the friend wrote, not when the event is applied
	// (which may be later, after retries).
	rule, ok, err := s.match(ctx, tx, ev.ChannelID, text.Text, ev.OccurredAt)
	if err != nil || !ok {
		return err
	}
	// Validated when saved: only a stricter validator since can refuse it now. Failing
	// the event would not fix the rule, and would undo the message log. Checked before
	// the variables, so that no coupon is issued for a reply that is not written.
	if ps := rule.Template.Validate(); ps != nil {
		s.logger.Warn("autoreply: template not rendered", "channel", ev.ChannelID, "rule", rule.Key, "err", ps)
		return nil
	}
	vars, err := s.vars(ctx, tx, ev.ChannelID, friendID, rule)
	if err != nil {
		return err
	}
	msgs, err := rule.Template.Render(vars)
	if err != nil {
		s.logger.Warn("autoreply: template not rendered", "channel", ev.ChannelID, "rule", rule.Key, "err", err)
		return nil
	}
	it := delivery.Item{
		ChannelID: ev.ChannelID, FriendID: friendID, LineUserID: lineUserID,
		Source: Source, SourceID: rule.ID, SourceRef: rule.Key, Messages: msgs,
	}
	if me.ReplyToken != "" {
		it.ReplyToken, it.ReplyExpiresAt = me.ReplyToken, delivery.ReplyExpiry(ev)
	}
	if _, err := s.deliveries.Enqueue(ctx, tx, it); err != nil {
		return fmt.Errorf("autoreply: rule %s: %w", rule.Key, err)
	}
	occurred := store.Millis(ev.OccurredAt)
	_, err = tx.ExecContext(ctx, `UPDATE autoreplies SET hits = hits + 1,
		last_hit_at = CASE WHEN last_hit_at IS NULL OR last_hit_at < ? THEN ? ELSE last_hit_at END WHERE id = ?`,
		occurred, occurred, rule.ID)
	if err != nil {
		return fmt.Errorf("autoreply: count hit: %w", err)
	}
	return nil
}

// vars are the values the rule's messages may show the friend. A coupon they name is
// issued to the friend here, in the transaction that writes the reply, so the issue and
// the reply stand or fall together; asked again, the friend is shown the same code.
func (s *Service) vars(ctx context.Context, tx *store.Tx, channelID string, friendID int64, rule Rule) (message.MapVars, error) {
	vars, err := s.friends.Vars(ctx, tx, friendID)
	if err != nil {
		return nil, fmt.Errorf("autoreply: %w", err)
	}
	names := rule.Template.Variables()
	if s.ExtraVars == nil || len(names) == 0 {
		return vars, nil
	}
	// Coupons are judged at the time the reply is written, when their code is issued.
	extra, err := s.ExtraVars(ctx, tx, channelID, friendID, names, s.clock.Now())
	if err != nil {
		return nil, fmt.Errorf("autoreply: rule %s: %w", rule.Key, err)
	}
	for k, v := range extra {
		vars[k] = v
	}
	return vars, nil
}
