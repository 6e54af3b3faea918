package message

import (
	"encoding/json"
	"testing"

	"github.com/goccy/go-yaml"
)

func yamlMarshal(v any) ([]byte, error) { return yaml.Marshal(v) }

// FuzzRender: whatever staff write and whatever a friend's value holds, the output is one
// JSON object per message, of the template's types, and a flex keeps its shape.
func FuzzRender(f *testing.F) {
	for _, s := range []string{"Hi {{display_name}}", "{{display_name|x}}", "{{{{", "{{a}}{{", "}}{{b|}}", "\x00", "😀{{v}}"} {
		for _, v := range hostile {
			f.Add(s, v)
		}
	}
	f.Fuzz(func(t *testing.T, text, value string) {
		tmpl := Template{Messages: []Message{
			{Type: "text", Text: text + "{{display_name}}", QuickReply: []QuickReplyItem{
				{Type: "postback", Label: text, Data: "d" + text + "{{v}}", DisplayText: text},
				{Type: "message", Label: "{{v}}", Text: text + "{{v|f}}"},
			}},
			{Type: "flex", AltText: text, Contents: json.RawMessage(`{"type":"bubble","body":{"type":"box","layout":"vertical","contents":[` +
				`{"type":"text","text":` + quote(text) + `},{"type":"text","text":"{{v}}"},` +
				`{"type":"button","action":{"type":"uri","label":"{{v}}","uri":"https://e.com/?q={{v}}"}}]}}`)},
			{Type: "sticker", PackageID: "1", StickerID: "2"},
		}}
		vars := MapVars{"display_name": value, "v": value}
		check := func(out []json.RawMessage, err error) {
			if err != nil {
				return // an error is a refusal, never a malformed message
			}
			if len(out) != len(tmpl.Messages) {
				t.Fatalf("%d messages out of %d", len(out), len(tmpl.Messages))
			}
			for i, raw := range out {
				var m map[string]any
				if err := json.Unmarshal(raw, &m); err != nil {
					t.Fatalf("message %d is not a JSON object: %v: %s", i, err, raw)
				}
				if m["type"] != tmpl.Messages[i].Type {
					t.Fatalf("message %d has type %v: %s", i, m["type"], raw)
				}
				for k := range m {
					switch k {
					case "type", "text", "quickReply", "altText", "contents", "packageId", "stickerId":
					default:
						t.Fatalf("message %d grew property %q: %s", i, k, raw)
					}
				}
				if t, ok := m["text"].(string); ok && lineLen(t) > maxTextLen {
					panic("text over the limit")
				}
			}
			var fl struct {
				Contents struct {
					Type string
					Body struct{ Contents []map[string]any }
				}
			}
			if err := json.Unmarshal(out[1], &fl); err != nil || fl.Contents.Type != "bubble" || len(fl.Contents.Body.Contents) != 3 {
				t.Fatalf("flex lost its shape: %s", out[1])
			}
			var q struct{ QuickReply struct{ Items []any } }
			if err := json.Unmarshal(out[0], &q); err != nil || len(q.QuickReply.Items) != 2 {
				t.Fatalf("quick reply lost its shape: %s", out[0])
			}
		}
		check(tmpl.render(vars))
		check(tmpl.Render(vars))
		_ = tmpl.Variables()
	})
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
