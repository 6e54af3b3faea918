package emulator

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// WebhookResult tells how a webhook delivery went.
type WebhookResult struct {
	EventID    string `json:"webhookEventId"`
	ReplyToken string `json:"replyToken,omitempty"`
	MessageID  string `json:"messageId,omitempty"`
	Status     int    `json:"status"` // the server's HTTP status; 0 when it did not answer
}

// WebhookError is returned when the server did not answer a webhook with 2xx.
type WebhookError struct {
	Status int
	Err    error // transport error, when Status is 0
}

func (e *WebhookError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("emulator: webhook not answered: %v", e.Err)
	}
	return fmt.Sprintf("emulator: webhook answered %d", e.Status)
}

func (e *WebhookError) Unwrap() error { return e.Err }

// maxStoredEvents bounds the per-channel memory of sent events kept for Redeliver.
const maxStoredEvents = 10000

// Follow makes the user add the channel as a friend (again, after a block: the event
// then says isUnblocked). The user must be known (AddUser) and not following.
func (e *Emulator) Follow(ctx context.Context, channelID, userID string) (WebhookResult, error) {
	return e.act(ctx, channelID, userID, func(ch *channel, u *user, ev map[string]any) error {
		if u.status == StatusFollowing {
			return ErrFollowing
		}
		ev["type"] = "follow"
		ev["follow"] = map[string]bool{"isUnblocked": u.status == StatusBlocked}
		if u.status == StatusNone {
			ch.order = append(ch.order, u.ID)
		}
		u.status = StatusFollowing
		u.followedAt = e.cfg.Now()
		return nil
	})
}

// Block makes the user block the channel: an unfollow event, without a reply token.
func (e *Emulator) Block(ctx context.Context, channelID, userID string) (WebhookResult, error) {
	return e.act(ctx, channelID, userID, func(ch *channel, u *user, ev map[string]any) error {
		if u.status != StatusFollowing {
			return ErrNotFollowing
		}
		ev["type"] = "unfollow"
		delete(ev, "replyToken")
		u.status = StatusBlocked
		return nil
	})
}

// SendText makes the user send a text message to the channel.
func (e *Emulator) SendText(ctx context.Context, channelID, userID, text string) (WebhookResult, error) {
	return e.message(ctx, channelID, userID, map[string]any{"type": "text", "text": text})
}

// SendSticker makes the user send a sticker.
func (e *Emulator) SendSticker(ctx context.Context, channelID, userID, packageID, stickerID string) (WebhookResult, error) {
	return e.message(ctx, channelID, userID, map[string]any{"type": "sticker", "packageId": packageID,
		"stickerId": stickerID, "stickerResourceType": "STATIC", "keywords": []string{}})
}

// SendImage makes the user send a picture; its bytes are then served by the content
// endpoint of the data API.
func (e *Emulator) SendImage(ctx context.Context, channelID, userID string, data []byte, contentType string) (WebhookResult, error) {
	msg := map[string]any{"type": "image", "contentProvider": map[string]string{"type": "line"}}
	return e.messageWith(ctx, channelID, userID, msg, &content{data: data, contentType: contentType})
}

// Postback makes the user tap a button (or rich-menu area) whose postback data is data.
func (e *Emulator) Postback(ctx context.Context, channelID, userID, data string) (WebhookResult, error) {
	return e.act(ctx, channelID, userID, func(ch *channel, u *user, ev map[string]any) error {
		if u.status != StatusFollowing {
			return ErrNotFollowing
		}
		ev["type"] = "postback"
		ev["postback"] = map[string]string{"data": data}
		return nil
	})
}

func (e *Emulator) message(ctx context.Context, channelID, userID string, msg map[string]any) (WebhookResult, error) {
	return e.messageWith(ctx, channelID, userID, msg, nil)
}

func (e *Emulator) messageWith(ctx context.Context, channelID, userID string, msg map[string]any, c *content) (WebhookResult, error) {
	return e.act(ctx, channelID, userID, func(ch *channel, u *user, ev map[string]any) error {
		if u.status != StatusFollowing {
			return ErrNotFollowing
		}
		id := newMessageID()
		msg["id"] = id
		msg["quoteToken"] = randomHex(16)
		ev["type"] = "message"
		ev["message"] = msg
		if c != nil {
			ch.content[id] = *c
		}
		return nil
	})
}

// act builds one user-sourced event under the lock (change applies the user's act and
// fills in the event), then delivers it as a signed webhook outside the lock.
func (e *Emulator) act(ctx context.Context, channelID, userID string, change func(*channel, *user, map[string]any) error) (WebhookResult, error) {
	e.mu.Lock()
	u, err := e.userLocked(channelID, userID)
	if err != nil {
		e.mu.Unlock()
		return WebhookResult{}, err
	}
	ch := e.channels[channelID]
	now := e.cfg.Now()
	ev := map[string]any{
		"mode":            "active",
		"timestamp":       now.UnixMilli(),
		"source":          map[string]string{"type": "user", "userId": userID},
		"webhookEventId":  newEventID(now),
		"deliveryContext": map[string]bool{"isRedelivery": false},
		"replyToken":      randomHex(16),
	}
	if err := change(ch, u, ev); err != nil {
		e.mu.Unlock()
		return WebhookResult{}, err
	}
	res := WebhookResult{EventID: ev["webhookEventId"].(string)}
	if ch.standby {
		ev["mode"] = "standby"
		delete(ev, "replyToken") // the bot may not reply in standby
	}
	if tok, ok := ev["replyToken"].(string); ok {
		ch.replyTokens[tok] = replyToken{userID: userID, expires: now.Add(e.cfg.ReplyTokenTTL)}
		res.ReplyToken = tok
	}
	if m, ok := ev["message"].(map[string]any); ok {
		res.MessageID, _ = m["id"].(string)
	}
	raw, _ := json.Marshal(ev)
	ch.remember(res.EventID, raw)
	url, secret, dest := ch.WebhookURL, ch.Secret, ch.BotUserID
	e.mu.Unlock()

	status, err := e.post(ctx, url, secret, dest, raw)
	res.Status = status
	return res, err
}

func (ch *channel) remember(id string, raw []byte) {
	ch.events[id] = raw
	ch.eventOrder = append(ch.eventOrder, id)
	if len(ch.eventOrder) > maxStoredEvents {
		delete(ch.events, ch.eventOrder[0])
		ch.eventOrder = ch.eventOrder[1:]
	}
}

// Redeliver sends an earlier event again, as LINE does when webhook redelivery is on and
// the first delivery failed: same webhookEventId, deliveryContext.isRedelivery true.
func (e *Emulator) Redeliver(ctx context.Context, channelID, eventID string) (WebhookResult, error) {
	e.mu.Lock()
	ch, ok := e.channels[channelID]
	if !ok {
		e.mu.Unlock()
		return WebhookResult{}, ErrUnknownChannel
	}
	raw, ok := ch.events[eventID]
	if !ok {
		e.mu.Unlock()
		return WebhookResult{}, fmt.Errorf("%w event: %s not sent or forgotten", ErrInvalid, eventID)
	}
	var ev map[string]any
	json.Unmarshal(raw, &ev)
	ev["deliveryContext"] = map[string]bool{"isRedelivery": true}
	raw, _ = json.Marshal(ev)
	url, secret, dest := ch.WebhookURL, ch.Secret, ch.BotUserID
	e.mu.Unlock()
	status, err := e.post(ctx, url, secret, dest, raw)
	return WebhookResult{EventID: eventID, Status: status}, err
}

// Verify sends LINE's "verify" webhook: a body with no events.
func (e *Emulator) Verify(ctx context.Context, channelID string) (int, error) {
	e.mu.Lock()
	ch, ok := e.channels[channelID]
	if !ok {
		e.mu.Unlock()
		return 0, ErrUnknownChannel
	}
	url, secret, dest := ch.WebhookURL, ch.Secret, ch.BotUserID
	e.mu.Unlock()
	return e.postBody(ctx, url, secret, []byte(`{"destination":"`+dest+`","events":[]}`))
}

// post delivers events in a webhook body signed with the channel secret.
func (e *Emulator) post(ctx context.Context, url, secret, destination string, events ...[]byte) (int, error) {
	var b bytes.Buffer
	b.WriteString(`{"destination":`)
	d, _ := json.Marshal(destination)
	b.Write(d)
	b.WriteString(`,"events":[`)
	b.Write(bytes.Join(events, []byte(",")))
	b.WriteString(`]}`)
	return e.postBody(ctx, url, secret, b.Bytes())
}

func (e *Emulator) postBody(ctx context.Context, url, secret string, body []byte) (int, error) {
	if url == "" {
		return 0, ErrNoWebhookURL
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "LineBotWebhook/2.0")
	req.Header.Set("x-line-signature", Sign(secret, body))
	start := time.Now()
	res, err := e.client.Do(req)
	if err != nil {
		e.countWebhook(0)
		return 0, &WebhookError{Err: err}
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 1<<16))
	res.Body.Close()
	e.countWebhook(res.StatusCode)
	if res.StatusCode/100 != 2 {
		e.logger.Warn("emulator: webhook not accepted", "status", res.StatusCode, "took", time.Since(start))
		return res.StatusCode, &WebhookError{Status: res.StatusCode}
	}
	return res.StatusCode, nil
}

func (e *Emulator) countWebhook(status int) {
	e.mu.Lock()
	e.stats.webhooks[status]++
	e.mu.Unlock()
}

// Sign computes LINE's x-line-signature for a body: base64 of HMAC-SHA256 with the
// channel secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
