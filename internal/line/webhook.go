package line

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

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

// ParseWebhook reads a webhook body: the envelope and each event's header. Every event
// type is accepted, including ones LINE adds later. Errors say what is wrong, never what
// the body contains. Each event's Raw is a slice of body, which must not change after.
//
// It walks the body's tokens once with encoding/json/v2's tokenizer (jsontext; the
// go-json-experiment module mirrors it until Go 1.27 ships it), which validates the whole
// body as it goes, and keeps the few fields the ingest path reads: decoding into structs
// read each event twice (once as the envelope's raw value, once for its header) and took
// almost twice as long. It is strict where LINE never varies: names match exactly, a
// name given twice anywhere and invalid UTF-8 are refused, as is anything after the
// body's one object.
func ParseWebhook(body []byte) (Webhook, error) {
	p := webhookParsers.Get().(*webhookParser)
	defer func() {
		// Drop the references to body before the parser is reused.
		p.src = bytes.Buffer{}
		p.dec.Reset(&p.src)
		webhookParsers.Put(p)
	}()
	p.src = *bytes.NewBuffer(body)
	p.dec.Reset(&p.src)
	return p.parse(body)
}

var webhookParsers = sync.Pool{New: func() any { return new(webhookParser) }}

// webhookParser is a tokenizer reading straight from the body (a bytes.Buffer is read
// without a copy), kept for reuse.
type webhookParser struct {
	src bytes.Buffer
	dec jsontext.Decoder
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformedWebhook}, args...)...)
}

func (p *webhookParser) parse(body []byte) (Webhook, error) {
	d := &p.dec
	var hook Webhook
	sawEvents := false
	err := p.object(func(name jsontext.Token) error {
		switch name.String() {
		case "destination":
			s, err := p.str()
			hook.Destination = s
			return err
		case "events":
			if d.PeekKind() == 'n' {
				_, err := d.ReadToken()
				return err
			}
			sawEvents = true
			return p.events(body, &hook)
		}
		return d.SkipValue()
	})
	if err != nil {
		if errors.Is(err, ErrMalformedWebhook) {
			return Webhook{}, err
		}
		return Webhook{}, malformed("not a JSON object with an events array")
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return Webhook{}, malformed("not a JSON object with an events array")
	}
	if !sawEvents {
		return Webhook{}, malformed("no events array")
	}
	if hook.Events == nil {
		hook.Events = []RawEvent{}
	}
	return hook, nil
}

// object reads a JSON object, calling member for each name with the decoder before its
// value; member must read or skip the value, and read the name (valid only until then)
// first. Names stay tokens so that comparing them allocates nothing.
func (p *webhookParser) object(member func(name jsontext.Token) error) error {
	d := &p.dec
	tok, err := d.ReadToken()
	if err != nil {
		return err
	}
	if tok.Kind() != '{' {
		return errWrongKind
	}
	for d.PeekKind() != '}' {
		tok, err := d.ReadToken()
		if err != nil {
			return err
		}
		if err := member(tok); err != nil {
			return err
		}
	}
	_, err = d.ReadToken()
	return err
}

func (p *webhookParser) events(body []byte, hook *Webhook) error {
	d := &p.dec
	tok, err := d.ReadToken()
	if err != nil {
		return err
	}
	if tok.Kind() != '[' {
		return malformed("events is not an array")
	}
	for i := 0; d.PeekKind() != ']'; i++ {
		if d.PeekKind() != '{' {
			if err := d.SkipValue(); err != nil {
				return err
			}
			return malformed("event %d is not an event object", i)
		}
		// The decoder's offset is just past the previous token; the event's object starts
		// at its '{', after whitespace and the separator.
		start := int(d.InputOffset())
		start += bytes.IndexByte(body[start:], '{')
		ev, err := p.event()
		if err != nil {
			var syntax *jsontext.SyntacticError
			if errors.As(err, &syntax) {
				return err
			}
			if errors.Is(err, errCaseVariant) {
				return malformed("event %d has %v", i, err)
			}
			return malformed("event %d is not an event object", i)
		}
		ev.Raw = json.RawMessage(body[start:d.InputOffset()])
		if !token(ev.WebhookEventID, 128) {
			return malformed("event %d has no usable webhookEventId", i)
		}
		if !token(ev.Type, 64) {
			return malformed("event %d has no usable type", i)
		}
		if len(ev.Mode) > 32 || len(ev.SourceType) > 32 || len(ev.UserID) > 128 || len(ev.GroupID) > 128 || len(ev.RoomID) > 128 {
			return malformed("event %d has oversized fields", i)
		}
		hook.Events = append(hook.Events, ev)
	}
	_, err = d.ReadToken()
	return err
}

// event reads one event object's header fields and skips the rest.
func (p *webhookParser) event() (RawEvent, error) {
	var ev RawEvent
	err := p.object(func(name jsontext.Token) error {
		var err error
		switch name.String() {
		case "type":
			ev.Type, err = p.str()
		case "mode":
			ev.Mode, err = p.str()
		case "webhookEventId":
			ev.WebhookEventID, err = p.str()
		case "timestamp":
			ev.Timestamp, err = p.int()
		case "source":
			err = p.optionalObject(func(name jsontext.Token) error {
				var err error
				switch name.String() {
				case "type":
					ev.SourceType, err = p.str()
				case "userId":
					ev.UserID, err = p.str()
				case "groupId":
					ev.GroupID, err = p.str()
				case "roomId":
					ev.RoomID, err = p.str()
				default:
					err = p.skipUnlessCaseVariant(name.String(), sourceNames)
				}
				return err
			})
		case "deliveryContext":
			err = p.optionalObject(func(name jsontext.Token) error {
				if name.String() != "isRedelivery" {
					return p.skipUnlessCaseVariant(name.String(), contextNames)
				}
				var err error
				ev.IsRedelivery, err = p.bool()
				return err
			})
		default:
			err = p.skipUnlessCaseVariant(name.String(), eventNames)
		}
		return err
	})
	return ev, err
}

// The names of an event, and of its source, that ParseWebhook reads. The SDK that decodes
// the event later matches names regardless of case, and takes the last of those that
// match: with "Type" beside "type" it would read another type than the one the event is
// stored and dispatched under, so such names are refused.
var (
	eventNames   = []string{"type", "mode", "webhookEventId", "timestamp", "source", "deliveryContext"}
	sourceNames  = []string{"type", "userId", "groupId", "roomId"}
	contextNames = []string{"isRedelivery"}
)

// errCaseVariant is a member name that differs from one ParseWebhook reads only in case.
var errCaseVariant = errors.New("a name differs from LINE's only in case")

// skipUnlessCaseVariant skips the value of an unread member, unless its name is a case
// variant of one of names.
func (p *webhookParser) skipUnlessCaseVariant(name string, names []string) error {
	for _, n := range names {
		if len(n) == len(name) && strings.EqualFold(n, name) {
			return errCaseVariant
		}
	}
	return p.dec.SkipValue()
}

// optionalObject reads an object, or null as an object without members.
func (p *webhookParser) optionalObject(member func(name jsontext.Token) error) error {
	if p.dec.PeekKind() == 'n' {
		_, err := p.dec.ReadToken()
		return err
	}
	return p.object(member)
}

// errWrongKind is a value of another kind than the field takes (a number for a string,
// an array for an object).
var errWrongKind = errors.New("wrong kind of value")

// str reads a string; null reads as "".
func (p *webhookParser) str() (string, error) {
	tok, err := p.dec.ReadToken()
	switch {
	case err != nil:
		return "", err
	case tok.Kind() == '"':
		return tok.String(), nil
	case tok.Kind() == 'n':
		return "", nil
	}
	return "", errWrongKind
}

// int reads an integer; null reads as 0.
func (p *webhookParser) int() (int64, error) {
	tok, err := p.dec.ReadToken()
	switch {
	case err != nil:
		return 0, err
	case tok.Kind() == '0':
		return tok.Int()
	case tok.Kind() == 'n':
		return 0, nil
	}
	return 0, errWrongKind
}

// bool reads true or false; null reads as false.
func (p *webhookParser) bool() (bool, error) {
	tok, err := p.dec.ReadToken()
	switch {
	case err != nil:
		return false, err
	case tok.Kind() == 't', tok.Kind() == 'f':
		return tok.Bool(), nil
	case tok.Kind() == 'n':
		return false, nil
	}
	return false, errWrongKind
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
