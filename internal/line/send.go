package line

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/line/line-bot-sdk-go/v8/linebot/messaging_api"
)

// SendResult tells how a send went.
type SendResult struct {
	// RequestID is LINE's x-line-request-id (for narrowcast: the ID to poll progress with).
	// For an already accepted retry key it is the original request's ID.
	RequestID string
	// AlreadyAccepted: LINE had accepted this retry key before (409): the messages were
	// sent by an earlier attempt, perhaps before a crash. It counts as success.
	AlreadyAccepted bool
	Attempts        int
}

var uuidForm = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// RetryKey derives a stable retry key from the identity of what is being sent (e.g. an
// outbox row). The same parts always give the same key, so a send retried after a crash
// carries the key of the first attempt and LINE recognises it. The form is a UUID
// (version 8: custom) made of a SHA-256 of the parts.
func RetryKey(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x80 // version 8
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	x := hex.EncodeToString(b)
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

func checkRetryKey(key string) error {
	if !uuidForm.MatchString(key) {
		return ErrInvalidRetryKey
	}
	return nil
}

func (c *Client) result(o outcome) SendResult {
	r := SendResult{Attempts: o.attempts, AlreadyAccepted: o.accepted}
	if o.res != nil {
		r.RequestID = o.res.Header.Get("x-line-request-id")
		if o.accepted {
			r.RequestID = o.res.Header.Get("x-line-accepted-request-id")
		}
	}
	return r
}

// Reply answers an event with its reply token. Replies do not count against the monthly
// message quota. They have no retry key: see ErrReplyOutcomeUnknown.
func (c *Client) Reply(ctx context.Context, replyToken string, msgs []messaging_api.MessageInterface) (SendResult, error) {
	req := &messaging_api.ReplyMessageRequest{ReplyToken: replyToken, Messages: msgs}
	o, err := c.call(ctx, EndpointReply, retrySafeOnly, func(api *messaging_api.MessagingApiAPI) (*http.Response, error) {
		res, _, err := api.ReplyMessageWithHttpInfo(req)
		return res, err
	})
	return c.result(o), err
}

// Push sends messages to one user.
func (c *Client) Push(ctx context.Context, to string, msgs []messaging_api.MessageInterface, retryKey string) (SendResult, error) {
	if err := checkRetryKey(retryKey); err != nil {
		return SendResult{}, err
	}
	req := &messaging_api.PushMessageRequest{To: to, Messages: msgs}
	o, err := c.call(ctx, EndpointPush, retryAll, func(api *messaging_api.MessagingApiAPI) (*http.Response, error) {
		res, _, err := api.PushMessageWithHttpInfo(req, retryKey)
		return res, err
	})
	return c.result(o), err
}

// MaxMulticast is the most recipients one multicast takes.
const MaxMulticast = 500

// Multicast sends the same messages to up to 500 users.
func (c *Client) Multicast(ctx context.Context, to []string, msgs []messaging_api.MessageInterface, retryKey string) (SendResult, error) {
	if err := checkRetryKey(retryKey); err != nil {
		return SendResult{}, err
	}
	if len(to) == 0 || len(to) > MaxMulticast {
		return SendResult{}, fmt.Errorf("line: multicast takes 1 to %d recipients, got %d", MaxMulticast, len(to))
	}
	req := &messaging_api.MulticastRequest{To: to, Messages: msgs}
	o, err := c.call(ctx, EndpointMulticast, retryAll, func(api *messaging_api.MessagingApiAPI) (*http.Response, error) {
		res, _, err := api.MulticastWithHttpInfo(req, retryKey)
		return res, err
	})
	return c.result(o), err
}

// Broadcast sends messages to every friend of the channel.
func (c *Client) Broadcast(ctx context.Context, msgs []messaging_api.MessageInterface, retryKey string) (SendResult, error) {
	if err := checkRetryKey(retryKey); err != nil {
		return SendResult{}, err
	}
	req := &messaging_api.BroadcastRequest{Messages: msgs}
	o, err := c.call(ctx, EndpointBroadcast, retryAll, func(api *messaging_api.MessagingApiAPI) (*http.Response, error) {
		res, _, err := api.BroadcastWithHttpInfo(req, retryKey)
		return res, err
	})
	return c.result(o), err
}

// Narrowcast starts a narrowcast; poll NarrowcastProgress with the result's RequestID.
func (c *Client) Narrowcast(ctx context.Context, req *messaging_api.NarrowcastRequest, retryKey string) (SendResult, error) {
	if err := checkRetryKey(retryKey); err != nil {
		return SendResult{}, err
	}
	o, err := c.call(ctx, EndpointNarrowcast, retryAll, func(api *messaging_api.MessagingApiAPI) (*http.Response, error) {
		res, _, err := api.NarrowcastWithHttpInfo(req, retryKey)
		return res, err
	})
	return c.result(o), err
}

// NarrowcastProgress reports how far a narrowcast has gone.
func (c *Client) NarrowcastProgress(ctx context.Context, requestID string) (*messaging_api.NarrowcastProgressResponse, error) {
	var out *messaging_api.NarrowcastProgressResponse
	_, err := c.call(ctx, EndpointProgress, retryAll, func(api *messaging_api.MessagingApiAPI) (*http.Response, error) {
		res, body, err := api.GetNarrowcastProgressWithHttpInfo(requestID)
		out = body
		return res, decodeErr(res, body == nil, err)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// decodeErr turns "2xx but the body did not decode" into a failure of its own: for calls
// whose answer we need, a success without a readable body is not a success.
func decodeErr(res *http.Response, missing bool, err error) error {
	if res != nil && res.StatusCode/100 == 2 && missing {
		res.StatusCode = http.StatusBadGateway // counted as a 5xx: retried
		res.Body = http.NoBody
		return fmt.Errorf("line: unreadable answer: %w", err)
	}
	return err
}

// RawMessage is a message object already in LINE's JSON form (rendered from a template
// and stored in the outbox). It is sent byte for byte, so what was validated and stored
// is exactly what LINE receives.
type RawMessage json.RawMessage

// GetType implements messaging_api.MessageInterface.
func (m RawMessage) GetType() string {
	var t struct {
		Type string `json:"type"`
	}
	json.Unmarshal(m, &t)
	return t.Type
}

// MarshalJSON returns the message as it is.
func (m RawMessage) MarshalJSON() ([]byte, error) {
	if len(m) == 0 {
		return []byte("null"), nil
	}
	return m, nil
}

// RawMessages wraps stored message objects for the send methods.
func RawMessages(msgs []json.RawMessage) []messaging_api.MessageInterface {
	out := make([]messaging_api.MessageInterface, len(msgs))
	for i, m := range msgs {
		out[i] = RawMessage(m)
	}
	return out
}
