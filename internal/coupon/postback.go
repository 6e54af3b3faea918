package coupon

import (
	"context"
	"fmt"
	"strings"

	"github.com/line/line-bot-sdk-go/v8/linebot/webhook"

	"github.com/linestep/linestep/internal/ingest"
	"github.com/linestep/linestep/internal/store"
)

const postbackPrefix = "linestep:coupon:redeem:"

// PostbackData is the data of a postback action that redeems the coupon of that key
// when the friend taps it ("use now" at the till).
func PostbackData(key string) string { return postbackPrefix + key }

// Register subscribes the service to postback events. Register it after the friend
// service, whose handlers create the friend it looks up.
func (s *Service) Register(p *ingest.Processor) {
	p.Handle("postback", s.onPostback)
}

// onPostback redeems a coupon for a postback made with PostbackData. It runs in the
// processing transaction. A refused redemption is not a failure of the event: nothing
// is recorded and the coupon simply stays unredeemed.
func (s *Service) onPostback(ctx context.Context, tx *store.Tx, ev ingest.Event) error {
	if ev.Standby() || ev.UserID == "" {
		return nil // standby: another channel has the chat
	}
	pe, ok := ev.Decoded.(webhook.PostbackEvent)
	if !ok || pe.Postback == nil {
		return nil
	}
	key, ok := strings.CutPrefix(pe.Postback.Data, postbackPrefix)
	if !ok || !ValidKey(key) {
		return nil
	}
	var friendID int64
	err := tx.QueryRowContext(ctx, "SELECT id FROM friends WHERE channel_id = ? AND line_user_id = ?", ev.ChannelID, ev.UserID).Scan(&friendID)
	if isNoRows(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("coupon: postback redemption: %w", err)
	}
	// The tap's own time decides validity: the event may be processed late (a retry, a
	// redelivery), and a friend who tapped in time has used the coupon in time.
	_, err = s.Redeem(ctx, tx, ev.ChannelID, friendID, key, "postback:"+ev.EventID, ByPostback, ev.OccurredAt)
	if IsRefusal(err) {
		s.logger.Debug("coupon: postback redemption refused", "coupon", key, "reason", err.Error())
		return nil
	}
	return err
}
