// Package message holds message templates as shop staff write them (YAML files, the
// console), checks them against the LINE Messaging API rules when they are saved, and
// renders them per friend into LINE message objects that are sent as they are.
//
// Templates may hold variables, {{name}} or {{name|fallback}}, in the places listed on
// Template. Rendering substitutes friend values into Go strings and marshals the result
// with encoding/json, so a value can never change the structure of a message.
package message

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// Template is 1-5 messages, sent together.
//
// Variables may appear in a text message's text, a flex message's altText, any string
// value inside flex contents, and the text, label, data and displayText of quick reply
// items. Elsewhere (URLs of images, sticker IDs, ...) "{{" is plain text.
type Template struct {
	Messages []Message `json:"messages" yaml:"messages"`
}

// Message is one LINE message object in the subset of types linestep supports.
type Message struct {
	Type string `json:"type" yaml:"type"` // text | sticker | image | video | audio | location | flex

	Text string `json:"text,omitempty" yaml:"text,omitempty"` // text

	PackageID string `json:"packageId,omitempty" yaml:"packageId,omitempty"` // sticker
	StickerID string `json:"stickerId,omitempty" yaml:"stickerId,omitempty"`

	OriginalContentURL string `json:"originalContentUrl,omitempty" yaml:"originalContentUrl,omitempty"` // image, video, audio
	PreviewImageURL    string `json:"previewImageUrl,omitempty" yaml:"previewImageUrl,omitempty"`       // image, video
	Duration           int64  `json:"duration,omitempty" yaml:"duration,omitempty"`                     // audio, milliseconds

	Title     string  `json:"title,omitempty" yaml:"title,omitempty"` // location
	Address   string  `json:"address,omitempty" yaml:"address,omitempty"`
	Latitude  float64 `json:"latitude,omitempty" yaml:"latitude,omitempty"`
	Longitude float64 `json:"longitude,omitempty" yaml:"longitude,omitempty"`

	AltText string `json:"altText,omitempty" yaml:"altText,omitempty"` // flex
	// Contents is the flex container (bubble or carousel) as JSON. In YAML it may be
	// written as a mapping, or as a string holding JSON.
	Contents json.RawMessage `json:"contents,omitempty" yaml:"-"`

	QuickReply []QuickReplyItem `json:"quickReply,omitempty" yaml:"quickReply,omitempty"`
}

// QuickReplyItem is one quick reply button; Type is the type of its action.
type QuickReplyItem struct {
	Type        string `json:"type" yaml:"type"` // message | postback | uri | camera | cameraRoll | location | datetimepicker
	Label       string `json:"label,omitempty" yaml:"label,omitempty"`
	Text        string `json:"text,omitempty" yaml:"text,omitempty"`
	Data        string `json:"data,omitempty" yaml:"data,omitempty"`
	URI         string `json:"uri,omitempty" yaml:"uri,omitempty"`
	DisplayText string `json:"displayText,omitempty" yaml:"displayText,omitempty"`
	ImageURL    string `json:"imageUrl,omitempty" yaml:"imageUrl,omitempty"`
	Mode        string `json:"mode,omitempty" yaml:"mode,omitempty"` // datetimepicker: date | time | datetime
}

// yamlMessage mirrors Message with Contents as any YAML value, so that staff can write a
// flex bubble as a YAML mapping rather than as JSON inside a string.
type yamlMessage struct {
	Type               string           `yaml:"type"`
	Text               string           `yaml:"text,omitempty"`
	PackageID          string           `yaml:"packageId,omitempty"`
	StickerID          string           `yaml:"stickerId,omitempty"`
	OriginalContentURL string           `yaml:"originalContentUrl,omitempty"`
	PreviewImageURL    string           `yaml:"previewImageUrl,omitempty"`
	Duration           int64            `yaml:"duration,omitempty"`
	Title              string           `yaml:"title,omitempty"`
	Address            string           `yaml:"address,omitempty"`
	Latitude           float64          `yaml:"latitude,omitempty"`
	Longitude          float64          `yaml:"longitude,omitempty"`
	AltText            string           `yaml:"altText,omitempty"`
	Contents           any              `yaml:"contents,omitempty"`
	QuickReply         []QuickReplyItem `yaml:"quickReply,omitempty"`
}

// UnmarshalYAML decodes a message, turning the contents mapping into JSON. It works on
// the node so that errors keep their line numbers in the staff's file.
func (m *Message) UnmarshalYAML(node ast.Node) error {
	var y yamlMessage
	if err := yaml.NodeToValue(node, &y, yaml.DisallowUnknownField()); err != nil {
		return err
	}
	*m = Message{
		Type: y.Type, Text: y.Text, PackageID: y.PackageID, StickerID: y.StickerID,
		OriginalContentURL: y.OriginalContentURL, PreviewImageURL: y.PreviewImageURL,
		Duration: y.Duration, Title: y.Title, Address: y.Address,
		Latitude: y.Latitude, Longitude: y.Longitude, AltText: y.AltText,
		QuickReply: y.QuickReply,
	}
	switch c := y.Contents.(type) {
	case nil:
	case string:
		// JSON pasted from LINE's Flex Message Simulator into a block scalar.
		if !json.Valid([]byte(c)) {
			return errors.New("contents: the string is not valid JSON; write the bubble as a YAML mapping or paste valid JSON")
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, []byte(c)); err != nil {
			return err
		}
		m.Contents = buf.Bytes()
	default:
		v, err := jsonable(c)
		if err != nil {
			return fmt.Errorf("contents: %w", err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("contents: %w", err)
		}
		m.Contents = b
	}
	return nil
}

// MarshalYAML writes contents as a YAML mapping, the form staff read and edit.
func (m Message) MarshalYAML() (any, error) {
	y := yamlMessage{
		Type: m.Type, Text: m.Text, PackageID: m.PackageID, StickerID: m.StickerID,
		OriginalContentURL: m.OriginalContentURL, PreviewImageURL: m.PreviewImageURL,
		Duration: m.Duration, Title: m.Title, Address: m.Address,
		Latitude: m.Latitude, Longitude: m.Longitude, AltText: m.AltText,
		QuickReply: m.QuickReply,
	}
	if len(m.Contents) > 0 {
		var c any
		if err := json.Unmarshal(m.Contents, &c); err != nil {
			return nil, fmt.Errorf("contents: %w", err)
		}
		y.Contents = c
	}
	return y, nil
}

// jsonable converts a decoded YAML value to one encoding/json can marshal: YAML allows
// non-string mapping keys, JSON does not.
func jsonable(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("mapping key %v is not a string", k)
			}
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			out[ks] = c
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case nil, string, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return x, nil
	default:
		return nil, fmt.Errorf("value %v of type %T has no JSON form; quote it", v, v)
	}
}

// Parse reads a template written as JSON or YAML. Besides {"messages": [...]} it accepts
// a bare list of messages or a single message, the shapes staff tend to write. Unknown
// properties are errors, so a misspelt name is caught rather than silently dropped.
// Parse does not validate; call Validate.
func Parse(data []byte) (Template, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return Template{}, errors.New("the template is empty")
	}
	if trimmed[0] == '{' || trimmed[0] == '[' {
		if json.Valid(trimmed) {
			return parseJSON(trimmed)
		}
		// Flow-style YAML also starts with { or [; let the YAML parser judge it.
	}
	return parseYAML(data)
}

func parseJSON(data []byte) (Template, error) {
	var t Template
	var err error
	switch {
	case data[0] == '[':
		err = decodeStrict(data, &t.Messages)
	case hasKey(data, "messages"):
		err = decodeStrict(data, &t)
	default:
		var m Message
		err = decodeStrict(data, &m)
		t.Messages = []Message{m}
	}
	if err != nil {
		return Template{}, fmt.Errorf("template JSON: %w", err)
	}
	return t, nil
}

func decodeStrict(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

func hasKey(data []byte, key string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return false
	}
	_, ok := m[key]
	return ok
}

func parseYAML(data []byte) (Template, error) {
	var probe any
	if err := yaml.Unmarshal(data, &probe); err != nil {
		return Template{}, fmt.Errorf("template YAML: %s", yaml.FormatError(err, false, true))
	}
	var t Template
	var err error
	switch p := probe.(type) {
	case []any:
		err = yaml.UnmarshalWithOptions(data, &t.Messages, yaml.DisallowUnknownField())
	case map[string]any:
		if _, ok := p["messages"]; ok {
			err = yaml.UnmarshalWithOptions(data, &t, yaml.DisallowUnknownField())
		} else {
			var m Message
			err = yaml.UnmarshalWithOptions(data, &m, yaml.DisallowUnknownField())
			t.Messages = []Message{m}
		}
	default:
		return Template{}, errors.New("template YAML: expected a mapping with messages, a list of messages, or one message")
	}
	if err != nil {
		return Template{}, fmt.Errorf("template YAML: %s", yaml.FormatError(err, false, true))
	}
	return t, nil
}

// Variables returns the distinct names of well-formed variables the template uses,
// sorted.
func (t Template) Variables() []string {
	seen := map[string]bool{}
	t.eachVarString(func(_ string, s string) {
		for _, tok := range tokenize(s) {
			if tok.kind == tokVar {
				seen[tok.name] = true
			}
		}
	})
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Personalised reports whether the template uses any variable, in which case each friend
// gets different content and it cannot be sent to many friends in one multicast.
func (t Template) Personalised() bool { return len(t.Variables()) > 0 }

// ContentHash is the hex SHA-256 of the messages as compact JSON, so that friends whose
// rendered messages are identical can be grouped into one multicast.
func ContentHash(msgs []json.RawMessage) string {
	h := sha256.New()
	h.Write([]byte{'['})
	for i, m := range msgs {
		if i > 0 {
			h.Write([]byte{','})
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, m); err != nil {
			h.Write(m) // not JSON: hash as given rather than fail
		} else {
			h.Write(buf.Bytes())
		}
	}
	h.Write([]byte{']'})
	return hex.EncodeToString(h.Sum(nil))
}

// eachVarString calls f with the path and value of every string in which variables are
// expanded. Flex contents that are not valid JSON are skipped; Validate reports them.
func (t Template) eachVarString(f func(path, s string)) {
	for i, m := range t.Messages {
		p := fmt.Sprintf("messages[%d]", i)
		switch m.Type {
		case "text":
			f(p+".text", m.Text)
		case "flex":
			f(p+".altText", m.AltText)
			if c, err := decodeContents(m.Contents); err == nil {
				walkStrings(c, p+".contents", func(path, _ string, s string) { f(path, s) })
			}
		}
		for j, q := range m.QuickReply {
			qp := fmt.Sprintf("%s.quickReply[%d]", p, j)
			f(qp+".label", q.Label)
			f(qp+".text", q.Text)
			f(qp+".data", q.Data)
			f(qp+".displayText", q.DisplayText)
		}
	}
}

// Variable syntax.

type tokKind int

const (
	tokLit tokKind = iota
	tokVar
	tokBad // looks like a variable but the name is malformed; rendered literally
)

type token struct {
	kind        tokKind
	text        string // the source text of the token
	name        string
	fallback    string
	hasFallback bool
}

// tokenize splits s into literal text and variables. A variable runs from the last "{{"
// before the first following "}}", so "{{{name}}" is "{" then a variable; there is no
// escape, and an unterminated "{{" is literal text.
func tokenize(s string) []token {
	var toks []token
	lit := func(x string) {
		if x == "" {
			return
		}
		if n := len(toks); n > 0 && toks[n-1].kind == tokLit {
			toks[n-1].text += x
			return
		}
		toks = append(toks, token{kind: tokLit, text: x})
	}
	for {
		open := strings.Index(s, "{{")
		if open < 0 {
			lit(s)
			return toks
		}
		end := strings.Index(s[open+2:], "}}")
		if end < 0 {
			lit(s)
			return toks
		}
		end += open + 2
		open += strings.LastIndex(s[open:end], "{{")
		lit(s[:open])
		inner := s[open+2 : end]
		tok := token{kind: tokVar, text: s[open : end+2]}
		name := inner
		if k := strings.IndexByte(inner, '|'); k >= 0 {
			name, tok.fallback, tok.hasFallback = inner[:k], strings.Trim(inner[k+1:], " "), true
		}
		tok.name = strings.Trim(name, " ")
		if !validName(tok.name) {
			tok.kind = tokBad
		}
		toks = append(toks, tok)
		s = s[end+2:]
	}
}

// validName: letters, digits and '_' in segments separated by single dots, such as
// display_name or field.next_visit.
func validName(n string) bool {
	if n == "" || n[0] == '.' || n[len(n)-1] == '.' || strings.Contains(n, "..") {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// mayRenderEmpty reports whether s renders as "" for a friend who has none of its
// variables: it has no literal text and no variable with a non-empty fallback.
func mayRenderEmpty(s string) bool {
	for _, tok := range tokenize(s) {
		switch {
		case tok.kind != tokVar:
			return false
		case tok.fallback != "":
			return false
		}
	}
	return true
}
