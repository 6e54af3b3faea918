package line

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/line/line-bot-sdk-go/v8/linebot/webhook"
)

// ErrMalformedWebhook wraps every reason a signed webhook body is refused.
var ErrMalformedWebhook = errors.New("malformed webhook")

// VerifySignature checks LINE's x-line-signature header: base64 of the HMAC-SHA256 of the
// raw body under the channel secret, compared in constant time.
func VerifySignature(channelSecret, body []byte, signatureHeader string) bool {
	if signatureHeader == "" || len(channelSecret) == 0 {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(signatureHeader)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, channelSecret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// Webhook is a parsed webhook body.
type Webhook struct {
	Destination string
	Events      []RawEvent
}

// RawEvent is the little the ingest path reads of an event (to store and deduplicate it),
// and the event's exact bytes for processing later.
type RawEvent struct {
	WebhookEventID string
	Type           string
	Mode           string
	Timestamp      int64 // milliseconds since the epoch
	SourceType     string
	UserID         string
	GroupID        string
	RoomID         string
	IsRedelivery   bool
	Raw            json.RawMessage
}

type envelope struct {
	Destination string            `json:"destination"`
	Events      *[]jsontext.Value `json:"events"`
}

type eventHeader struct {
	Type           string `json:"type"`
	Mode           string `json:"mode"`
	Timestamp      int64  `json:"timestamp"`
	WebhookEventID string `json:"webhookEventId"`
	Source         *struct {
		Type    string `json:"type"`
		UserID  string `json:"userId"`
		GroupID string `json:"groupId"`
		RoomID  string `json:"roomId"`
	} `json:"source"`
	DeliveryContext *struct {
		IsRedelivery bool `json:"isRedelivery"`
	} `json:"deliveryContext"`
}

// ParseWebhook reads a webhook body: the envelope and each event's header. Every event
// type is accepted, including ones LINE adds later. Errors say what is wrong, never what
// the body contains.
//
// It decodes with encoding/json/v2 (the go-json-experiment module mirrors it until Go
// 1.27 ships it): it validates as it decodes instead of scanning the body once more
// first, which made parsing about twice as fast, a sixth of the webhook handler's CPU.
// It is also stricter where LINE never varies: names match exactly, a name given twice
// and invalid UTF-8 are refused.
func ParseWebhook(body []byte) (Webhook, error) {
	var env envelope
	if err := jsonv2.Unmarshal(body, &env); err != nil {
		return Webhook{}, fmt.Errorf("%w: not a JSON object with an events array", ErrMalformedWebhook)
	}
	if env.Events == nil {
		return Webhook{}, fmt.Errorf("%w: no events array", ErrMalformedWebhook)
	}
	hook := Webhook{Destination: env.Destination, Events: make([]RawEvent, 0, len(*env.Events))}
	for i, raw := range *env.Events {
		var h eventHeader
		if err := jsonv2.Unmarshal(raw, &h); err != nil {
			return Webhook{}, fmt.Errorf("%w: event %d is not an event object", ErrMalformedWebhook, i)
		}
		if !token(h.WebhookEventID, 128) {
			return Webhook{}, fmt.Errorf("%w: event %d has no usable webhookEventId", ErrMalformedWebhook, i)
		}
		if !token(h.Type, 64) {
			return Webhook{}, fmt.Errorf("%w: event %d has no usable type", ErrMalformedWebhook, i)
		}
		ev := RawEvent{WebhookEventID: h.WebhookEventID, Type: h.Type, Mode: h.Mode, Timestamp: h.Timestamp, Raw: json.RawMessage(raw)}
		if h.Source != nil {
			ev.SourceType, ev.UserID, ev.GroupID, ev.RoomID = h.Source.Type, h.Source.UserID, h.Source.GroupID, h.Source.RoomID
		}
		if h.DeliveryContext != nil {
			ev.IsRedelivery = h.DeliveryContext.IsRedelivery
		}
		if len(ev.Mode) > 32 || len(ev.SourceType) > 32 || len(ev.UserID) > 128 || len(ev.GroupID) > 128 || len(ev.RoomID) > 128 {
			return Webhook{}, fmt.Errorf("%w: event %d has oversized fields", ErrMalformedWebhook, i)
		}
		hook.Events = append(hook.Events, ev)
	}
	return hook, nil
}

// token reports whether s is a short printable identifier.
func token(s string, max int) bool {
	if s == "" || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// DecodeEvent turns a stored event into the SDK's typed event; types the SDK does not
// know come back as webhook.UnknownEvent.
func DecodeEvent(raw []byte) (webhook.EventInterface, error) {
	ev, err := webhook.UnmarshalEvent(raw)
	if err != nil {
		return nil, fmt.Errorf("line: decode event: %w", err)
	}
	return ev, nil
}
