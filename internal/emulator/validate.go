package emulator

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf16"
)

// detail is one entry of the "details" array of LINE's error body.
type detail struct {
	Message  string `json:"message"`
	Property string `json:"property,omitempty"`
}

// validator collects problems the way LINE reports them: every problem at once, each
// with the JSON path of the offending property.
type validator struct{ details []detail }

func (v *validator) add(prop, format string, args ...any) {
	v.details = append(v.details, detail{Message: fmt.Sprintf(format, args...), Property: prop})
}

// LINE's limits on message objects (Messaging API reference, "Message objects").
const (
	maxMessages       = 5
	maxMulticastTo    = 500
	maxTextLength     = 5000 // UTF-16 code units, as LINE counts
	maxAltTextLength  = 1500
	maxURLLength      = 2000
	maxQuickReplies   = 13
	maxSenderName     = 20
	maxEmojis         = 20
	maxImagemapAction = 50
)

// lineLength counts as LINE does: UTF-16 code units, so an emoji outside the BMP is 2.
func lineLength(s string) int { return len(utf16.Encode([]rune(s))) }

// messages validates the "messages" property of a send request.
func (v *validator) messages(raw json.RawMessage) []json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		v.add("messages", "must be specified")
		return nil
	}
	var msgs []json.RawMessage
	if err := json.Unmarshal(raw, &msgs); err != nil {
		v.add("messages", "must be an array of message objects")
		return nil
	}
	if len(msgs) < 1 || len(msgs) > maxMessages {
		v.add("messages", "Size must be between 1 and %d", maxMessages)
		return msgs
	}
	for i, m := range msgs {
		v.message(fmt.Sprintf("messages[%d]", i), m)
	}
	return msgs
}

func (v *validator) message(path string, raw json.RawMessage) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		v.add(path, "must be a message object")
		return
	}
	typ := str(m["type"])
	switch typ {
	case "text":
		v.text(path+".text", m["text"], maxTextLength)
		if e, ok := m["emojis"]; ok {
			var emojis []map[string]json.RawMessage
			if json.Unmarshal(e, &emojis) != nil || len(emojis) > maxEmojis {
				v.add(path+".emojis", "Size must be between 0 and %d", maxEmojis)
			}
		}
	case "textV2":
		v.text(path+".text", m["text"], maxTextLength)
	case "sticker":
		v.required(path+".packageId", m["packageId"])
		v.required(path+".stickerId", m["stickerId"])
	case "image", "video":
		v.httpsURL(path+".originalContentUrl", m["originalContentUrl"])
		v.httpsURL(path+".previewImageUrl", m["previewImageUrl"])
	case "audio":
		v.httpsURL(path+".originalContentUrl", m["originalContentUrl"])
		if !isNumber(m["duration"]) {
			v.add(path+".duration", "must be specified")
		}
	case "location":
		v.text(path+".title", m["title"], 100)
		v.text(path+".address", m["address"], 100)
		if !isNumber(m["latitude"]) {
			v.add(path+".latitude", "must be specified")
		}
		if !isNumber(m["longitude"]) {
			v.add(path+".longitude", "must be specified")
		}
	case "imagemap":
		v.httpsURL(path+".baseUrl", m["baseUrl"])
		v.text(path+".altText", m["altText"], maxAltTextLength)
		var size struct{ Width, Height *float64 }
		if json.Unmarshal(m["baseSize"], &size) != nil || size.Width == nil || size.Height == nil {
			v.add(path+".baseSize", "must be specified")
		}
		var actions []json.RawMessage
		if json.Unmarshal(m["actions"], &actions) != nil || len(actions) < 1 || len(actions) > maxImagemapAction {
			v.add(path+".actions", "Size must be between 1 and %d", maxImagemapAction)
		}
	case "template":
		v.text(path+".altText", m["altText"], maxAltTextLength)
		v.object(path+".template", m["template"], "buttons", "confirm", "carousel", "image_carousel")
	case "flex":
		v.text(path+".altText", m["altText"], maxAltTextLength)
		v.object(path+".contents", m["contents"], "bubble", "carousel")
	case "":
		v.add(path+".type", "must be specified")
		return
	default:
		v.add(path+".type", "invalid message type %q", typ)
		return
	}
	if q, ok := m["quickReply"]; ok {
		var qr struct {
			Items []json.RawMessage `json:"items"`
		}
		if json.Unmarshal(q, &qr) != nil || len(qr.Items) < 1 || len(qr.Items) > maxQuickReplies {
			v.add(path+".quickReply.items", "Size must be between 1 and %d", maxQuickReplies)
		}
	}
	if s, ok := m["sender"]; ok {
		var sender struct {
			Name    *string `json:"name"`
			IconURL *string `json:"iconUrl"`
		}
		if json.Unmarshal(s, &sender) != nil {
			v.add(path+".sender", "must be an object")
		} else {
			if sender.Name != nil && (lineLength(*sender.Name) > maxSenderName || *sender.Name == "") {
				v.add(path+".sender.name", "Length must be between 1 and %d", maxSenderName)
			}
			if sender.IconURL != nil && !strings.HasPrefix(*sender.IconURL, "https://") {
				v.add(path+".sender.iconUrl", "must be an HTTPS URL")
			}
		}
	}
}

// text checks a required string property with a maximum length.
func (v *validator) text(prop string, raw json.RawMessage, max int) {
	var s *string
	if json.Unmarshal(raw, &s) != nil || s == nil {
		v.add(prop, "must be specified")
		return
	}
	if *s == "" {
		v.add(prop, "May not be empty")
		return
	}
	if n := lineLength(*s); n > max {
		v.add(prop, "Length must be between 0 and %d", max)
	}
}

func (v *validator) required(prop string, raw json.RawMessage) {
	if str(raw) == "" {
		v.add(prop, "must be specified")
	}
}

func (v *validator) httpsURL(prop string, raw json.RawMessage) {
	s := str(raw)
	switch {
	case s == "":
		v.add(prop, "must be specified")
	case !strings.HasPrefix(s, "https://"):
		v.add(prop, "must be an HTTPS URL")
	case len(s) > maxURLLength:
		v.add(prop, "Length must be between 0 and %d", maxURLLength)
	}
}

// object checks a nested object whose "type" must be one of types.
func (v *validator) object(prop string, raw json.RawMessage, types ...string) {
	var o map[string]json.RawMessage
	if json.Unmarshal(raw, &o) != nil || o == nil {
		v.add(prop, "must be specified")
		return
	}
	t := str(o["type"])
	for _, want := range types {
		if t == want {
			return
		}
	}
	v.add(prop+".type", "must be one of %s", strings.Join(types, ", "))
}

// userIDs validates a multicast "to": 1-500 well-formed user IDs.
func (v *validator) userIDs(prop string, raw json.RawMessage) []string {
	var ids []string
	if json.Unmarshal(raw, &ids) != nil {
		v.add(prop, "must be specified")
		return nil
	}
	if len(ids) < 1 || len(ids) > maxMulticastTo {
		v.add(prop, "Size must be between 1 and %d", maxMulticastTo)
		return nil
	}
	for i, id := range ids {
		if !userIDForm.MatchString(id) {
			v.add(fmt.Sprintf("%s[%d]", prop, i), "invalid user ID")
		}
	}
	return ids
}

// str returns a JSON string's value, "" for anything else.
func str(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

func isNumber(raw json.RawMessage) bool {
	var f float64
	return len(raw) > 0 && json.Unmarshal(raw, &f) == nil
}
