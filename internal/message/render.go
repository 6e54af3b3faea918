package message

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Vars resolves variables for one friend. Lookup returns ok=false when the friend has
// no value.
type Vars interface {
	Lookup(name string) (string, bool)
}

// MapVars is Vars from a map.
type MapVars map[string]string

// Lookup implements Vars.
func (m MapVars) Lookup(name string) (string, bool) {
	v, ok := m[name]
	return v, ok
}

// Limits LINE enforces on the rendered message; values may push a valid template past
// them, so Render cuts the text to fit.
const (
	maxMessages       = 5
	maxTextLen        = 5000 // UTF-16 code units, as LINE counts
	maxAltTextLen     = 1500
	maxLabelLen       = 20
	maxDataLen        = 300 // postback data, displayText, message action text
	maxURILen         = 1000
	maxURLLen         = 2000 // image, video, audio URLs
	maxQuickReply     = 13
	maxCarouselBubble = 12
	maxBubbleBytes    = 30_000 // LINE says 30 KB; taking KB as 1000 errs on the safe side
	maxCarouselBytes  = 50_000
)

// wire is a message as sent to LINE. Each type fills only its own fields.
type wire struct {
	Type               string          `json:"type"`
	Text               string          `json:"text,omitempty"`
	PackageID          string          `json:"packageId,omitempty"`
	StickerID          string          `json:"stickerId,omitempty"`
	OriginalContentURL string          `json:"originalContentUrl,omitempty"`
	PreviewImageURL    string          `json:"previewImageUrl,omitempty"`
	Duration           int64           `json:"duration,omitempty"`
	Title              string          `json:"title,omitempty"`
	Address            string          `json:"address,omitempty"`
	Latitude           *float64        `json:"latitude,omitempty"`
	Longitude          *float64        `json:"longitude,omitempty"`
	AltText            string          `json:"altText,omitempty"`
	Contents           json.RawMessage `json:"contents,omitempty"`
	QuickReply         *wireQuick      `json:"quickReply,omitempty"`
}

type wireQuick struct {
	Items []wireQuickItem `json:"items"`
}

type wireQuickItem struct {
	Type     string     `json:"type"` // always "action"
	ImageURL string     `json:"imageUrl,omitempty"`
	Action   wireAction `json:"action"`
}

type wireAction struct {
	Type        string `json:"type"`
	Label       string `json:"label,omitempty"`
	Text        string `json:"text,omitempty"`
	Data        string `json:"data,omitempty"`
	DisplayText string `json:"displayText,omitempty"`
	URI         string `json:"uri,omitempty"`
	Mode        string `json:"mode,omitempty"`
}

// Render returns the template's messages for one friend, as LINE message objects. An
// invalid template is not rendered: the error is its Problems. v may be nil when the
// friend has no values.
func (t Template) Render(v Vars) ([]json.RawMessage, error) {
	if ps := t.Validate(); ps != nil {
		return nil, ps
	}
	return t.render(v)
}

// render does the substitution without validating first; the fuzz test calls it
// directly to show that no input produces malformed JSON.
func (t Template) render(v Vars) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(t.Messages))
	for i, m := range t.Messages {
		path := fmt.Sprintf("messages[%d]", i)
		w := wire{Type: m.Type}
		switch m.Type {
		case "text":
			w.Text = cut(expand(m.Text, v, nil, maxTextLen), maxTextLen)
		case "sticker":
			w.PackageID, w.StickerID = m.PackageID, m.StickerID
		case "image", "video":
			w.OriginalContentURL, w.PreviewImageURL = m.OriginalContentURL, m.PreviewImageURL
		case "audio":
			w.OriginalContentURL, w.Duration = m.OriginalContentURL, m.Duration
		case "location":
			lat, lng := m.Latitude, m.Longitude
			w.Title, w.Address, w.Latitude, w.Longitude = m.Title, m.Address, &lat, &lng
		case "flex":
			w.AltText = cut(expand(m.AltText, v, nil, maxAltTextLen), maxAltTextLen)
			c, err := renderContents(m.Contents, v, path+".contents")
			if err != nil {
				return nil, err
			}
			w.Contents = c
		default:
			return nil, fmt.Errorf("%s.type: unknown message type %q", path, m.Type)
		}
		if len(m.QuickReply) > 0 {
			w.QuickReply = &wireQuick{Items: make([]wireQuickItem, len(m.QuickReply))}
			for j, q := range m.QuickReply {
				a := wireAction{Type: q.Type, Label: cut(expand(q.Label, v, nil, maxLabelLen), maxLabelLen)}
				// Only the properties of the action's type, as Validate demands.
				switch q.Type {
				case "message":
					a.Text = cut(expand(q.Text, v, nil, maxDataLen), maxDataLen)
				case "postback":
					a.Data = cut(expand(q.Data, v, nil, maxDataLen), maxDataLen)
					a.DisplayText = cut(expand(q.DisplayText, v, nil, maxDataLen), maxDataLen)
				case "uri":
					a.URI = q.URI
				case "datetimepicker":
					a.Data = cut(expand(q.Data, v, nil, maxDataLen), maxDataLen)
					a.Mode = q.Mode
				}
				w.QuickReply.Items[j] = wireQuickItem{Type: "action", ImageURL: q.ImageURL, Action: a}
			}
		}
		b, err := marshal(w)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// marshal is json.Marshal without HTML escaping: the JSON goes to LINE, not into a web
// page, and "<" reads better than "\u003c" in logs. Quoting is unaffected.
func marshal(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// renderContents substitutes variables inside the string values of a flex container.
// The JSON is decoded into generic values and re-marshalled, so a value can only ever
// become the content of a JSON string.
func renderContents(raw json.RawMessage, v Vars, path string) (json.RawMessage, error) {
	c, err := decodeContents(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c, err = substitute(c, "", false, path, v)
	if err != nil {
		return nil, err
	}
	b, err := marshal(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	limit := maxBubbleBytes
	if m, ok := c.(map[string]any); ok && m["type"] == "carousel" {
		limit = maxCarouselBytes
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%s: with this friend's values the flex contents are %d bytes; LINE allows at most %d", path, len(b), limit)
	}
	return b, nil
}

// decodeContents decodes flex JSON keeping numbers as written.
func decodeContents(raw json.RawMessage) (any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fmt.Errorf("contents are missing")
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var c any
	if err := d.Decode(&c); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("contents hold more than one JSON value")
	}
	return c, nil
}

// substitute walks decoded flex JSON. key is the property holding v; inAction says v's
// parent object is an action, where LINE limits labels and data.
func substitute(v any, key string, inAction bool, path string, vars Vars) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		isAction := key == "action" || key == "defaultAction"
		for k, e := range x {
			r, err := substitute(e, k, isAction, path+"."+k, vars)
			if err != nil {
				return nil, err
			}
			x[k] = r
		}
		return x, nil
	case []any:
		for i, e := range x {
			r, err := substitute(e, key, false, fmt.Sprintf("%s[%d]", path, i), vars)
			if err != nil {
				return nil, err
			}
			x[i] = r
		}
		return x, nil
	case string:
		if !strings.Contains(x, "{{") {
			return x, nil
		}
		if isURLKey(key) {
			limit := maxURLLen // image and video URLs
			if k := strings.ToLower(key); strings.HasSuffix(k, "uri") || k == "desktop" {
				limit = maxURILen // action URIs
			}
			s := expand(x, vars, escapeURL, limit)
			if n := lineLen(s); n > limit {
				return nil, fmt.Errorf("%s: with this friend's values the URL is %d characters; LINE allows at most %d", path, n, limit)
			}
			return s, nil
		}
		s := expand(x, vars, nil, maxCarouselBytes)
		if inAction {
			switch key {
			case "label":
				s = cut(s, maxLabelLen)
			case "data", "displayText", "text":
				s = cut(s, maxDataLen)
			}
		}
		return s, nil
	default:
		return v, nil
	}
}

// isURLKey: properties holding URLs, where a value is percent-encoded so that it stays
// one path segment or query value and cannot add parameters or change the host.
func isURLKey(k string) bool {
	l := strings.ToLower(k)
	return strings.HasSuffix(l, "uri") || strings.HasSuffix(l, "url") || k == "desktop"
}

// escapeURL percent-encodes everything but RFC 3986 unreserved characters.
func escapeURL(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// expand substitutes variables in s. Values are inserted literally, never expanded
// again, after removing control characters. A fallback is used when the friend has no
// value or an empty one. esc, if not nil, encodes each inserted value. Expansion stops
// once the result is certainly longer than limit UTF-16 units (a unit takes at most 3
// bytes), so many copies of a long value cannot blow up memory; callers cut or refuse.
func expand(s string, v Vars, esc func(string) string, limit int) string {
	if !strings.Contains(s, "{{") {
		return s
	}
	var b strings.Builder
	for _, tok := range tokenize(s) {
		if tok.kind != tokVar {
			b.WriteString(tok.text)
			continue
		}
		var val string
		if v != nil {
			if x, ok := v.Lookup(tok.name); ok {
				val = clean(x)
			}
		}
		if val == "" && tok.hasFallback {
			val = clean(tok.fallback)
		}
		if esc != nil {
			val = esc(val)
		}
		b.WriteString(val)
		if b.Len() > 3*limit {
			break
		}
	}
	return b.String()
}

// clean makes a friend-supplied value safe to show: valid UTF-8, and no C0 control
// characters other than newline and tab (NUL, escape sequences, carriage returns).
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// lineLen counts as LINE does: UTF-16 code units, so an emoji outside the BMP is 2.
func lineLen(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// cut shortens s to at most max UTF-16 code units, dropping whole runes so that a
// surrogate pair is never split.
func cut(s string, max int) string {
	n := 0
	for i, r := range s {
		w := 1
		if r >= 0x10000 {
			w = 2
		}
		if n+w > max {
			// A joiner left dangling at the end would show as a broken emoji.
			return strings.TrimRight(s[:i], "\u200d")
		}
		n += w
	}
	return s
}
