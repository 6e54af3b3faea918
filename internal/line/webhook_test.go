package line_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/line/line-bot-sdk-go/v8/linebot/webhook"

	"github.com/linestep/linestep/internal/line"
)

func TestVerifySignature(t *testing.T) {
	t.Parallel()
	secret := []byte("channel-secret")
	body := []byte(`{"events":[]}`)
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	good := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !line.VerifySignature(secret, body, good) {
		t.Fatal("good signature refused")
	}
	for name, c := range map[string]struct {
		secret, body []byte
		sig          string
	}{
		"empty header":   {secret, body, ""},
		"not base64":     {secret, body, "!!!"},
		"other secret":   {[]byte("other"), body, good},
		"other body":     {secret, []byte(`{"events":[ ]}`), good},
		"truncated":      {secret, body, good[:20]},
		"no secret":      {nil, body, good},
		"hex not base64": {secret, body, strings.Repeat("ab", 32)},
	} {
		if line.VerifySignature(c.secret, c.body, c.sig) {
			t.Errorf("%s: accepted", name)
		}
	}
}

const typical = `{"destination":"Uxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","events":[{"type":"message","message":{"type":"text","id":"14353798921116","text":"Hello, world","quoteToken":"q3Plxr4AgKd..."},"webhookEventId":"01FZ74A0TDDPYRVKNK77XKC3ZR","deliveryContext":{"isRedelivery":false},"timestamp":1625665242211,"source":{"type":"user","userId":"U80696558e1aa831c0c93a4a1c0a4b4b0"},"replyToken":"757913772c4646b784d4b7ce46d12671","mode":"active"}]}`

func TestParseWebhook(t *testing.T) {
	t.Parallel()
	hook, err := line.ParseWebhook([]byte(typical))
	if err != nil {
		t.Fatal(err)
	}
	ev := hook.Events[0]
	if ev.WebhookEventID != "01FZ74A0TDDPYRVKNK77XKC3ZR" || ev.Type != "message" || ev.Mode != "active" ||
		ev.Timestamp != 1625665242211 || ev.UserID != "U80696558e1aa831c0c93a4a1c0a4b4b0" || ev.SourceType != "user" || ev.IsRedelivery {
		t.Fatalf("%+v", ev)
	}
	decoded, err := line.DecodeEvent(ev.Raw)
	if err != nil {
		t.Fatal(err)
	}
	me, ok := decoded.(webhook.MessageEvent)
	if !ok || me.Message.(webhook.TextMessageContent).Text != "Hello, world" {
		t.Fatalf("decoded %#v", decoded)
	}

	unknown := `{"events":[{"type":"teleport","webhookEventId":"E1","timestamp":1,"mode":"active","deliveryContext":{"isRedelivery":true}}]}`
	hook, err = line.ParseWebhook([]byte(unknown))
	if err != nil || hook.Events[0].Type != "teleport" || !hook.Events[0].IsRedelivery {
		t.Fatalf("unknown type: %+v %v", hook, err)
	}
	if d, err := line.DecodeEvent(hook.Events[0].Raw); err != nil || d.GetType() != "teleport" {
		t.Fatalf("unknown decode: %#v %v", d, err)
	}
	if hook, err := line.ParseWebhook([]byte(`{"destination":"U1","events":[]}`)); err != nil || len(hook.Events) != 0 {
		t.Fatalf("verify call: %v", err)
	}

	for name, body := range map[string]string{
		"not JSON":       `{"events":[`,
		"no events":      `{"destination":"U1"}`,
		"events null":    `{"events":null}`,
		"event a string": `{"events":["x"]}`,
		"no ID":          `{"events":[{"type":"message"}]}`,
		"no type":        `{"events":[{"webhookEventId":"E"}]}`,
		"ID with spaces": `{"events":[{"type":"message","webhookEventId":"E 1"}]}`,
		"secret in body": `{"events":[{"type":"message","webhookEventId":"E","timestamp":"山田 太郎"}]}`,
		// A name given twice could be read one way here and another by the SDK later.
		"ID twice":      `{"events":[{"type":"message","webhookEventId":"E1","webhookEventId":"E2"}]}`,
		"type twice":    `{"events":[{"type":"message","type":"follow","webhookEventId":"E"}]}`,
		"events twice":  `{"events":[],"events":[{"type":"message","webhookEventId":"E"}]}`,
		"invalid UTF-8": "{\"events\":[{\"type\":\"message\",\"webhookEventId\":\"E\",\"x\":\"\xff\"}]}",
		// The SDK matches names regardless of case: it would read these as the type and
		// the user, and differ from what the event is stored under.
		"type in another case":     `{"events":[{"type":"message","Type":"follow","webhookEventId":"E"}]}`,
		"user ID in another case":  `{"events":[{"type":"message","webhookEventId":"E","source":{"type":"user","userId":"U1","UserID":"U2"}}]}`,
		"redelivery in other case": `{"events":[{"type":"message","webhookEventId":"E","deliveryContext":{"IsRedelivery":true}}]}`,
	} {
		_, err := line.ParseWebhook([]byte(body))
		if !errors.Is(err, line.ErrMalformedWebhook) {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if strings.Contains(err.Error(), "山田") {
			t.Errorf("%s: error echoes the body: %v", name, err)
		}
	}
}

func FuzzParseWebhook(f *testing.F) {
	f.Add([]byte(typical))
	f.Add([]byte(`{"events":[]}`))
	f.Add([]byte(`{"events":[{"type":"x","webhookEventId":"y"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		hook, err := line.ParseWebhook(body)
		if err != nil {
			return
		}
		for _, ev := range hook.Events {
			if ev.WebhookEventID == "" || ev.Type == "" {
				t.Fatalf("event without ID or type: %+v", ev)
			}
			if !json.Valid(ev.Raw) {
				t.Fatalf("Raw is not JSON: %q", ev.Raw)
			}
		}
	})
}

func BenchmarkParseWebhook(b *testing.B) {
	body := []byte(typical)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := line.ParseWebhook(body); err != nil {
			b.Fatal(err)
		}
	}
}

// referenceEnvelope and referenceEvent decode a webhook into structs with
// encoding/json/v2, the plain way ParseWebhook's token walk must agree with.
type referenceEnvelope struct {
	Destination string            `json:"destination"`
	Events      *[]jsontext.Value `json:"events"`
}

type referenceEvent struct {
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

// referenceParse returns the events as struct decoding reads them, or ok false where it
// refuses the body or a name of the header differs from LINE's only in case (which
// ParseWebhook refuses on purpose: the SDK would read it).
func referenceParse(body []byte) (events []line.RawEvent, ok bool) {
	var env referenceEnvelope
	if jsonv2.Unmarshal(body, &env) != nil || env.Events == nil {
		return nil, false
	}
	for _, raw := range *env.Events {
		var h referenceEvent
		if raw.Kind() != '{' || jsonv2.Unmarshal(raw, &h) != nil || h.WebhookEventID == "" || h.Type == "" {
			return nil, false
		}
		if hasCaseVariant(raw) {
			return nil, false
		}
		ev := line.RawEvent{WebhookEventID: h.WebhookEventID, Type: h.Type, Mode: h.Mode, Timestamp: h.Timestamp, Raw: json.RawMessage(raw)}
		if h.Source != nil {
			ev.SourceType, ev.UserID, ev.GroupID, ev.RoomID = h.Source.Type, h.Source.UserID, h.Source.GroupID, h.Source.RoomID
		}
		if h.DeliveryContext != nil {
			ev.IsRedelivery = h.DeliveryContext.IsRedelivery
		}
		events = append(events, ev)
	}
	return events, true
}

// FuzzParseWebhookAgreesWithStructs checks the token walk against struct decoding: the
// same bodies refused, the same fields and the same raw bytes of each event read.
func FuzzParseWebhookAgreesWithStructs(f *testing.F) {
	f.Add([]byte(typical))
	f.Add([]byte(`{"events":[]}`))
	f.Add([]byte(` {"events" : [ {"type":"x","webhookEventId":"y","source":null,"deliveryContext":{"isRedelivery":true}} , {"webhookEventId":"z","type":"follow","timestamp":12,"mode":null} ] } `))
	f.Add([]byte(`{"events":[{"type":"x","webhookEventId":"y","timestamp":1e3}]}`))
	f.Add([]byte(`{"events":[{"type":"x","webhookEventId":"y","source":{"userId":"U1","userId":"U2"}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		hook, err := line.ParseWebhook(body)
		want, ok := referenceParse(body)
		if !ok {
			// Struct decoding refused it; the token walk refuses at least that much, and
			// refuses what fails its own field checks (printable IDs, lengths).
			if err == nil {
				t.Fatalf("accepted a body struct decoding refuses: %q", body)
			}
			return
		}
		if err != nil {
			for _, ev := range want {
				if !line.Printable(ev.WebhookEventID, 128) || !line.Printable(ev.Type, 64) || len(ev.Mode) > 32 || len(ev.SourceType) > 32 ||
					len(ev.UserID) > 128 || len(ev.GroupID) > 128 || len(ev.RoomID) > 128 {
					return // refused by ParseWebhook's field checks, as intended
				}
			}
			t.Fatalf("refused a body struct decoding reads: %q: %v", body, err)
		}
		if len(hook.Events) != len(want) {
			t.Fatalf("%d events, struct decoding read %d: %q", len(hook.Events), len(want), body)
		}
		for i := range want {
			got, w := hook.Events[i], want[i]
			if string(got.Raw) != string(w.Raw) {
				t.Fatalf("event %d raw %q, want %q", i, got.Raw, w.Raw)
			}
			got.Raw, w.Raw = nil, nil
			if !reflect.DeepEqual(got, w) {
				t.Fatalf("event %d %+v, want %+v", i, got, w)
			}
		}
	})
}

// hasCaseVariant reports whether the event raw, or its source or delivery context, has a
// member named like one ParseWebhook reads but for case.
func hasCaseVariant(raw jsontext.Value) bool {
	var event map[string]jsontext.Value
	if jsonv2.Unmarshal(raw, &event) != nil {
		return false
	}
	if caseVariant(event, "type", "mode", "webhookEventId", "timestamp", "source", "deliveryContext") {
		return true
	}
	for member, names := range map[string][]string{"source": {"type", "userId", "groupId", "roomId"}, "deliveryContext": {"isRedelivery"}} {
		var inner map[string]jsontext.Value
		if v, ok := event[member]; ok && v.Kind() == '{' && jsonv2.Unmarshal(v, &inner) == nil && caseVariant(inner, names...) {
			return true
		}
	}
	return false
}

func caseVariant(members map[string]jsontext.Value, names ...string) bool {
	for name := range members {
		for _, n := range names {
			if name != n && strings.EqualFold(name, n) {
				return true
			}
		}
	}
	return false
}
