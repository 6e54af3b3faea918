package message

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func txt(s string) Message { return Message{Type: "text", Text: s} }

func tpl(ms ...Message) Template { return Template{Messages: ms} }

const bubbleJSON = `{"type":"bubble","body":{"type":"box","layout":"vertical","contents":[
 {"type":"text","text":"Hello {{display_name|guest}}"},
 {"type":"button","action":{"type":"uri","label":"Open","uri":"https://example.com/c?code={{coupon.code}}"}}]}}`

func flex(contents string) Message {
	return Message{Type: "flex", AltText: "alt", Contents: json.RawMessage(contents)}
}

// bubbleWith wraps components in a bubble body.
func bubbleWith(components ...string) string {
	return `{"type":"bubble","body":{"type":"box","layout":"vertical","contents":[` + strings.Join(components, ",") + `]}}`
}

func qr(items ...QuickReplyItem) Message {
	m := txt("pick one")
	m.QuickReply = items
	return m
}

func TestValidate(t *testing.T) {
	six := tpl(txt("1"), txt("2"), txt("3"), txt("4"), txt("5"), txt("6"))
	thirteen := make([]QuickReplyItem, 14)
	for i := range thirteen {
		thirteen[i] = QuickReplyItem{Type: "message", Label: "x", Text: "x"}
	}
	carousel := func(n int) string {
		b := make([]string, n)
		for i := range b {
			b[i] = bubbleWith(`{"type":"text","text":"x"}`)
		}
		return `{"type":"carousel","contents":[` + strings.Join(b, ",") + `]}`
	}
	bigText := strings.Repeat("あ", 10000)

	tests := []struct {
		name string
		t    Template
		path string // "" means valid
	}{
		{"one text", tpl(txt("hello")), ""},
		{"five messages", tpl(txt("1"), txt("2"), txt("3"), txt("4"), txt("5")), ""},
		{"no messages", tpl(), "messages"},
		{"six messages", six, "messages"},
		{"missing type", tpl(Message{Text: "x"}), "messages[0].type"},
		{"unknown type", tpl(Message{Type: "imagemap"}), "messages[0].type"},
		{"empty text", tpl(txt("")), "messages[0].text"},
		{"text 5000", tpl(txt(strings.Repeat("a", 5000))), ""},
		{"text 5001", tpl(txt(strings.Repeat("a", 5001))), "messages[0].text"},
		{"text 2500 emoji is 5000 units", tpl(txt(strings.Repeat("😀", 2500))), ""},
		{"text 2501 emoji is 5002 units", tpl(txt(strings.Repeat("😀", 2501))), "messages[0].text"},
		{"variable counted as written", tpl(txt(strings.Repeat("a", 4990) + "{{display_name}}")), "messages[0].text"},
		{"variable with fallback", tpl(txt("Hi {{display_name|there}}")), ""},
		{"dotted variable", tpl(txt("Next {{field.next_visit}}")), ""},
		{"malformed variable", tpl(txt("Hi {{display name}}")), "messages[0].text"},
		{"empty variable", tpl(txt("Hi {{}}")), "messages[0].text"},
		{"leading dot", tpl(txt("Hi {{.x}}")), "messages[0].text"},
		{"unterminated is literal", tpl(txt("Hi {{display_name")), ""},
		{"only a variable may be empty", tpl(txt("{{display_name}}")), "messages[0].text"},
		{"only a variable with fallback", tpl(txt("{{display_name|customer}}")), ""},
		{"stray property", tpl(Message{Type: "text", Text: "x", AltText: "y"}), "messages[0].altText"},

		{"sticker", tpl(Message{Type: "sticker", PackageID: "446", StickerID: "1988"}), ""},
		{"sticker no package", tpl(Message{Type: "sticker", StickerID: "1988"}), "messages[0].packageId"},
		{"sticker no sticker", tpl(Message{Type: "sticker", PackageID: "446"}), "messages[0].stickerId"},
		{"sticker not digits", tpl(Message{Type: "sticker", PackageID: "446", StickerID: "abc"}), "messages[0].stickerId"},

		{"image", tpl(Message{Type: "image", OriginalContentURL: "https://e.com/a.jpg", PreviewImageURL: "https://e.com/p.jpg"}), ""},
		{"image http", tpl(Message{Type: "image", OriginalContentURL: "http://e.com/a.jpg", PreviewImageURL: "https://e.com/p.jpg"}), "messages[0].originalContentUrl"},
		{"image no preview", tpl(Message{Type: "image", OriginalContentURL: "https://e.com/a.jpg"}), "messages[0].previewImageUrl"},
		{"image url 2001", tpl(Message{Type: "image", OriginalContentURL: "https://e.com/" + strings.Repeat("a", 1987), PreviewImageURL: "https://e.com/p.jpg"}), "messages[0].originalContentUrl"},
		{"image url 2000", tpl(Message{Type: "image", OriginalContentURL: "https://e.com/" + strings.Repeat("a", 1986), PreviewImageURL: "https://e.com/p.jpg"}), ""},
		{"image url variable", tpl(Message{Type: "image", OriginalContentURL: "https://e.com/{{x}}.jpg", PreviewImageURL: "https://e.com/p.jpg"}), "messages[0].originalContentUrl"},
		{"video", tpl(Message{Type: "video", OriginalContentURL: "https://e.com/a.mp4", PreviewImageURL: "https://e.com/p.jpg"}), ""},
		{"video bad preview", tpl(Message{Type: "video", OriginalContentURL: "https://e.com/a.mp4", PreviewImageURL: "ftp://e.com/p.jpg"}), "messages[0].previewImageUrl"},
		{"audio", tpl(Message{Type: "audio", OriginalContentURL: "https://e.com/a.m4a", Duration: 60000}), ""},
		{"audio no duration", tpl(Message{Type: "audio", OriginalContentURL: "https://e.com/a.m4a"}), "messages[0].duration"},
		{"audio http", tpl(Message{Type: "audio", OriginalContentURL: "http://e.com/a.m4a", Duration: 1}), "messages[0].originalContentUrl"},

		{"location", tpl(Message{Type: "location", Title: "Shop", Address: "Tokyo", Latitude: 35.68, Longitude: 139.76}), ""},
		{"location no title", tpl(Message{Type: "location", Address: "Tokyo", Latitude: 35.68, Longitude: 139.76}), "messages[0].title"},
		{"location long address", tpl(Message{Type: "location", Title: "Shop", Address: strings.Repeat("a", 101)}), "messages[0].address"},
		{"location latitude", tpl(Message{Type: "location", Title: "Shop", Address: "x", Latitude: 91}), "messages[0].latitude"},
		{"location longitude", tpl(Message{Type: "location", Title: "Shop", Address: "x", Longitude: -180.5}), "messages[0].longitude"},

		{"flex bubble", tpl(flex(bubbleJSON)), ""},
		{"flex no alt", tpl(Message{Type: "flex", Contents: json.RawMessage(bubbleJSON)}), "messages[0].altText"},
		{"flex alt 1501", tpl(Message{Type: "flex", AltText: strings.Repeat("a", 1501), Contents: json.RawMessage(bubbleJSON)}), "messages[0].altText"},
		{"flex no contents", tpl(Message{Type: "flex", AltText: "a"}), "messages[0].contents"},
		{"flex bad json", tpl(flex(`{"type":`)), "messages[0].contents"},
		{"flex array", tpl(flex(`[1]`)), "messages[0].contents"},
		{"flex bad type", tpl(flex(`{"type":"bubbles"}`)), "messages[0].contents.type"},
		{"carousel 12", tpl(flex(carousel(12))), ""},
		{"carousel 13", tpl(flex(carousel(13))), "messages[0].contents.contents"},
		{"carousel 0", tpl(flex(`{"type":"carousel","contents":[]}`)), "messages[0].contents.contents"},
		{"carousel of box", tpl(flex(`{"type":"carousel","contents":[{"type":"box"}]}`)), "messages[0].contents.contents[0]"},
		{"bubble too big", tpl(flex(bubbleWith(`{"type":"text","text":"` + bigText + `"}`))), "messages[0].contents"},
		{"unknown component", tpl(flex(bubbleWith(`{"type":"label","text":"x"}`))), "messages[0].contents.body.contents[0].type"},
		{"box no layout", tpl(flex(`{"type":"bubble","body":{"type":"box","contents":[]}}`)), "messages[0].contents.body.layout"},
		{"box bad layout", tpl(flex(`{"type":"bubble","body":{"type":"box","layout":"grid","contents":[]}}`)), "messages[0].contents.body.layout"},
		{"box no contents", tpl(flex(`{"type":"bubble","body":{"type":"box","layout":"vertical"}}`)), "messages[0].contents.body.contents"},
		{"body is text", tpl(flex(`{"type":"bubble","body":{"type":"text","text":"x"}}`)), "messages[0].contents.body.type"},
		{"hero image", tpl(flex(`{"type":"bubble","hero":{"type":"image","url":"https://e.com/a.png"}}`)), ""},
		{"image http", tpl(flex(bubbleWith(`{"type":"image","url":"http://e.com/a.png"}`))), "messages[0].contents.body.contents[0].url"},
		{"image no url", tpl(flex(bubbleWith(`{"type":"image"}`))), "messages[0].contents.body.contents[0].url"},
		{"text no text", tpl(flex(bubbleWith(`{"type":"text"}`))), "messages[0].contents.body.contents[0].text"},
		{"text with spans", tpl(flex(bubbleWith(`{"type":"text","contents":[{"type":"span","text":"a"}]}`))), ""},
		{"span outside text", tpl(flex(bubbleWith(`{"type":"span","text":"a"}`))), "messages[0].contents.body.contents[0].type"},
		{"text malformed var", tpl(flex(bubbleWith(`{"type":"text","text":"{{a b}}"}`))), "messages[0].contents.body.contents[0].text"},
		{"separator filler", tpl(flex(bubbleWith(`{"type":"separator"}`, `{"type":"filler"}`))), ""},
		{"icon baseline", tpl(flex(`{"type":"bubble","body":{"type":"box","layout":"baseline","contents":[{"type":"icon","url":"https://e.com/i.png"},{"type":"text","text":"x"}]}}`)), ""},
		{"button no action", tpl(flex(bubbleWith(`{"type":"button"}`))), "messages[0].contents.body.contents[0].action"},
		{"button postback", tpl(flex(bubbleWith(`{"type":"button","action":{"type":"postback","label":"Buy","data":"buy=1"}}`))), ""},
		{"button no label", tpl(flex(bubbleWith(`{"type":"button","action":{"type":"postback","data":"buy=1"}}`))), "messages[0].contents.body.contents[0].action.label"},
		{"button label 21", tpl(flex(bubbleWith(`{"type":"button","action":{"type":"message","label":"` + strings.Repeat("a", 21) + `","text":"x"}}`))), "messages[0].contents.body.contents[0].action.label"},
		{"postback no data", tpl(flex(bubbleWith(`{"type":"button","action":{"type":"postback","label":"Buy"}}`))), "messages[0].contents.body.contents[0].action.data"},
		{"postback data 301", tpl(flex(bubbleWith(`{"type":"button","action":{"type":"postback","label":"Buy","data":"` + strings.Repeat("d", 301) + `"}}`))), "messages[0].contents.body.contents[0].action.data"},
		{"uri ftp", tpl(flex(bubbleWith(`{"type":"button","action":{"type":"uri","label":"Go","uri":"ftp://e.com"}}`))), "messages[0].contents.body.contents[0].action.uri"},
		{"uri tel", tpl(flex(bubbleWith(`{"type":"button","action":{"type":"uri","label":"Call","uri":"tel:0312345678"}}`))), ""},
		{"uri line", tpl(flex(bubbleWith(`{"type":"button","action":{"type":"uri","label":"Add","uri":"line://ti/p/@shop"}}`))), ""},
		{"uri 1001", tpl(flex(bubbleWith(`{"type":"button","action":{"type":"uri","label":"Go","uri":"https://e.com/` + strings.Repeat("a", 987) + `"}}`))), "messages[0].contents.body.contents[0].action.uri"},
		{"camera in flex", tpl(flex(bubbleWith(`{"type":"button","action":{"type":"camera","label":"Cam"}}`))), "messages[0].contents.body.contents[0].action.type"},
		{"datetimepicker flex", tpl(flex(bubbleWith(`{"type":"button","action":{"type":"datetimepicker","label":"When","data":"d","mode":"date"}}`))), ""},
		{"variable in size", tpl(flex(bubbleWith(`{"type":"text","text":"x","size":"{{display_name}}"}`))), "messages[0].contents.body.contents[0].size"},
		{"variable in url", tpl(flex(bubbleWith(`{"type":"image","url":"https://e.com/{{field.photo}}.png"}`))), ""},
		{"image action", tpl(flex(bubbleWith(`{"type":"image","url":"https://e.com/a.png","action":{"type":"message","text":""}}`))), "messages[0].contents.body.contents[0].action.text"},

		{"quick reply", tpl(qr(QuickReplyItem{Type: "message", Label: "Yes", Text: "yes"})), ""},
		{"quick reply 14", tpl(qr(thirteen...)), "messages[0].quickReply"},
		{"quick reply no label", tpl(qr(QuickReplyItem{Type: "camera"})), "messages[0].quickReply[0].label"},
		{"quick reply camera", tpl(qr(QuickReplyItem{Type: "camera", Label: "Camera"})), ""},
		{"quick reply location", tpl(qr(QuickReplyItem{Type: "location", Label: "Where"})), ""},
		{"quick reply label 21", tpl(qr(QuickReplyItem{Type: "message", Label: strings.Repeat("a", 21), Text: "x"})), "messages[0].quickReply[0].label"},
		{"quick reply label 20 emoji", tpl(qr(QuickReplyItem{Type: "message", Label: strings.Repeat("😀", 10), Text: "x"})), ""},
		{"quick reply message no text", tpl(qr(QuickReplyItem{Type: "message", Label: "a"})), "messages[0].quickReply[0].text"},
		{"quick reply postback", tpl(qr(QuickReplyItem{Type: "postback", Label: "a", Data: "x=1", DisplayText: "A"})), ""},
		{"quick reply postback text", tpl(qr(QuickReplyItem{Type: "postback", Label: "a", Data: "x=1", Text: "A"})), "messages[0].quickReply[0].text"},
		{"quick reply displayText 301", tpl(qr(QuickReplyItem{Type: "postback", Label: "a", Data: "x", DisplayText: strings.Repeat("a", 301)})), "messages[0].quickReply[0].displayText"},
		{"quick reply uri", tpl(qr(QuickReplyItem{Type: "uri", Label: "a", URI: "https://e.com"})), ""},
		{"quick reply uri javascript", tpl(qr(QuickReplyItem{Type: "uri", Label: "a", URI: "javascript:alert(1)"})), "messages[0].quickReply[0].uri"},
		{"quick reply dtp", tpl(qr(QuickReplyItem{Type: "datetimepicker", Label: "a", Data: "d", Mode: "datetime"})), ""},
		{"quick reply dtp mode", tpl(qr(QuickReplyItem{Type: "datetimepicker", Label: "a", Data: "d", Mode: "week"})), "messages[0].quickReply[0].mode"},
		{"quick reply unknown", tpl(qr(QuickReplyItem{Type: "share", Label: "a"})), "messages[0].quickReply[0].type"},
		{"quick reply image http", tpl(qr(QuickReplyItem{Type: "camera", Label: "a", ImageURL: "http://e.com/i.png"})), "messages[0].quickReply[0].imageUrl"},
		{"quick reply on sticker", tpl(Message{Type: "sticker", PackageID: "1", StickerID: "2", QuickReply: []QuickReplyItem{{Type: "camera", Label: "a"}}}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := tt.t.Validate()
			if tt.path == "" {
				if ps != nil {
					t.Fatalf("want valid, got %v", ps)
				}
				return
			}
			if ps == nil {
				t.Fatalf("want a problem at %s, got none", tt.path)
			}
			found := false
			for _, p := range ps {
				if p.Path == tt.path {
					found = true
				}
				if p.JA == "" || p.EN == "" || p.Path == "" {
					t.Errorf("incomplete problem %+v", p)
				}
			}
			if !found {
				t.Fatalf("want a problem at %s, got %v", tt.path, ps)
			}
			if _, err := tt.t.Render(nil); err == nil {
				t.Fatal("Render accepted an invalid template")
			}
		})
	}
}

func TestProblemWording(t *testing.T) {
	ps := tpl(txt(strings.Repeat("a", 5214))).Validate()
	if len(ps) != 1 {
		t.Fatalf("got %v", ps)
	}
	p := ps[0]
	if p.EN != "text is 5,214 characters; LINE allows at most 5,000" {
		t.Errorf("EN = %q", p.EN)
	}
	if p.JA != "本文が5,214文字です。LINE の上限は5,000文字です" {
		t.Errorf("JA = %q", p.JA)
	}
	if got := ps.Error(); got != "messages[0].text: text is 5,214 characters; LINE allows at most 5,000" {
		t.Errorf("Error() = %q", got)
	}
	ps = tpl(qr(QuickReplyItem{Type: "message", Label: "", Text: "x"}, QuickReplyItem{Type: "message", Label: "ok", Text: "x"},
		QuickReplyItem{Type: "message", Label: strings.Repeat("長", 21), Text: "x"})).Validate()
	if len(ps) != 2 || ps[0].Path != "messages[0].quickReply[0].label" || ps[1].Path != "messages[0].quickReply[2].label" {
		t.Fatalf("got %v", ps)
	}
	if !strings.Contains(ps[1].EN, "21 characters") || !strings.Contains(ps[1].JA, "21文字") {
		t.Errorf("got %+v", ps[1])
	}
}

func TestParseYAML(t *testing.T) {
	src := `
messages:
  - type: text
    text: "こんにちは {{display_name|お客様}}さん"
    quickReply:
      - type: postback
        label: 予約する
        data: action=reserve
        displayText: 予約
  - type: sticker
    packageId: 446
    stickerId: 1988
  - type: flex
    altText: "{{display_name|お客様}}へのクーポン"
    contents:
      type: bubble
      hero:
        type: image
        url: https://example.com/hero.png
        size: full
        aspectRatio: "20:13"
      body:
        type: box
        layout: vertical
        spacing: md
        contents:
          - type: text
            text: "コード: {{coupon.code}}"
            weight: bold
            flex: 1
          - type: button
            style: primary
            action:
              type: uri
              label: 使う
              uri: https://example.com/use?c={{coupon.code}}
`
	got, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if ps := got.Validate(); ps != nil {
		t.Fatal(ps)
	}
	if len(got.Messages) != 3 || got.Messages[1].PackageID != "446" || got.Messages[1].StickerID != "1988" {
		t.Fatalf("got %+v", got)
	}
	if q := got.Messages[0].QuickReply; len(q) != 1 || q[0].Label != "予約する" || q[0].DisplayText != "予約" {
		t.Fatalf("quick reply %+v", q)
	}
	var c map[string]any
	if err := json.Unmarshal(got.Messages[2].Contents, &c); err != nil {
		t.Fatal(err)
	}
	body := c["body"].(map[string]any)
	if c["type"] != "bubble" || body["layout"] != "vertical" || len(body["contents"].([]any)) != 2 {
		t.Fatalf("contents %s", got.Messages[2].Contents)
	}
	if text := body["contents"].([]any)[0].(map[string]any); text["flex"] != float64(1) || text["text"] != "コード: {{coupon.code}}" {
		t.Fatalf("text %v", text)
	}
	if want := []string{"coupon.code", "display_name"}; !reflect.DeepEqual(got.Variables(), want) {
		t.Errorf("Variables = %v, want %v", got.Variables(), want)
	}

	// The same template as JSON parses to the same thing.
	j, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(j)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, got) {
		t.Errorf("JSON round trip:\n%+v\n%+v", again, got)
	}
}

func TestParseShapes(t *testing.T) {
	for _, src := range []string{
		`{"messages":[{"type":"text","text":"hi"}]}`,
		`[{"type":"text","text":"hi"}]`,
		`{"type":"text","text":"hi"}`,
		"messages:\n  - type: text\n    text: hi\n",
		"- type: text\n  text: hi\n",
		"type: text\ntext: hi\n",
		"{type: text, text: hi}", // flow YAML, not JSON
	} {
		got, err := Parse([]byte(src))
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if want := tpl(txt("hi")); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v", src, got)
		}
	}
}

func TestParseFlexContentsAsJSONString(t *testing.T) {
	src := "type: flex\naltText: hi\ncontents: |\n  {\"type\": \"bubble\", \"body\": {\"type\": \"box\", \"layout\": \"vertical\", \"contents\": []}}\n"
	got, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Messages[0].Contents) != `{"type":"bubble","body":{"type":"box","layout":"vertical","contents":[]}}` {
		t.Fatalf("contents %s", got.Messages[0].Contents)
	}
	if ps := got.Validate(); ps != nil {
		t.Fatal(ps)
	}
}

func TestParseErrors(t *testing.T) {
	for name, src := range map[string]string{
		"empty":          "  \n",
		"unknown yaml":   "messages:\n  - type: text\n    txt: hi\n",
		"unknown nested": "messages:\n  - type: text\n    text: hi\n    quickReply:\n      - type: message\n        lable: x\n",
		"unknown json":   `{"messages":[{"type":"text","txt":"hi"}]}`,
		"bad yaml":       "messages: [\n",
		"scalar":         "hello",
		"bad contents":   "type: flex\naltText: a\ncontents: \"{not json\"\n",
	} {
		if _, err := Parse([]byte(src)); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	_, err := Parse([]byte("messages:\n  - type: text\n    txt: hi\n"))
	if err == nil || !strings.Contains(err.Error(), "txt") || !strings.Contains(err.Error(), "3") {
		t.Errorf("want the field and line in %v", err)
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	src := tpl(flex(bubbleJSON))
	b, err := yamlMarshal(src)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `{"type"`) || !strings.Contains(string(b), "layout: vertical") {
		t.Errorf("contents not written as a mapping:\n%s", b)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	var x, y any
	_ = json.Unmarshal(got.Messages[0].Contents, &x)
	_ = json.Unmarshal(src.Messages[0].Contents, &y)
	if !reflect.DeepEqual(x, y) || got.Messages[0].AltText != "alt" {
		t.Errorf("round trip changed the template:\n%s", b)
	}
}

func strictDecode(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if !json.Valid(raw) {
		t.Fatalf("invalid JSON: %s", raw)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
}

func objectKeys(t *testing.T, raw json.RawMessage) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	strictDecode(t, raw, &m)
	return m
}

func textOf(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var m struct{ Text string }
	strictDecode(t, raw, &m)
	return m.Text
}
