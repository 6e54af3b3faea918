package message

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// hostile values a friend can choose: their LINE display name or a field they fill in.
var hostile = []string{
	`"},{"type":"text","text":"pwned`,
	`{{coupon.code}}`,
	`<script>alert(1)</script>`,
	"a\x00b\x1b[31mc\r\nd\te",
	`\u0022 \" ] } ,`,
}

func TestRenderHostileValues(t *testing.T) {
	src := Template{Messages: []Message{
		{Type: "text", Text: "Hi {{display_name}}!", QuickReply: []QuickReplyItem{
			{Type: "postback", Label: "{{display_name|you}}", Data: "n={{display_name}}", DisplayText: "{{display_name}}"},
		}},
		{Type: "flex", AltText: "For {{display_name}}", Contents: json.RawMessage(bubbleJSON)},
	}}
	if ps := src.Validate(); ps != nil {
		t.Fatal(ps)
	}
	for i, h := range hostile {
		out, err := src.Render(MapVars{"display_name": h, "coupon.code": "C-1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 2 {
			t.Fatalf("%d messages", len(out))
		}
		want := clean(h) // control characters go; everything else stays as typed
		if i < 3 && want != h {
			t.Fatalf("value %q altered to %q", h, want)
		}

		var text struct {
			Type       string
			Text       string
			QuickReply struct {
				Items []struct {
					Type   string
					Action map[string]string
				}
			}
		}
		strictDecode(t, out[0], &text)
		if text.Type != "text" || text.Text != "Hi "+want+"!" {
			t.Errorf("text %q", text.Text)
		}
		if keys := len(objectKeys(t, out[0])); keys != 3 {
			t.Errorf("text message has %d properties: %s", keys, out[0])
		}
		if len(text.QuickReply.Items) != 1 {
			t.Fatalf("quick reply %s", out[0])
		}
		a := text.QuickReply.Items[0].Action
		if a["type"] != "postback" || a["data"] != "n="+want || a["displayText"] != want || a["label"] != cut(want, 20) || len(a) != 4 {
			t.Errorf("action %v", a)
		}

		var fl struct {
			Type     string
			AltText  string
			Contents struct {
				Type string
				Body struct {
					Type     string
					Layout   string
					Contents []map[string]any
				}
			}
		}
		strictDecode(t, out[1], &fl)
		if keys := len(objectKeys(t, out[1])); keys != 3 {
			t.Errorf("flex message has %d properties: %s", keys, out[1])
		}
		if fl.Type != "flex" || fl.AltText != "For "+want || fl.Contents.Type != "bubble" || len(fl.Contents.Body.Contents) != 2 {
			t.Fatalf("flex %s", out[1])
		}
		if got := fl.Contents.Body.Contents[0]["text"]; got != "Hello "+want {
			t.Errorf("flex text %q", got)
		}
		// The coupon code is a friend value too; in a URI it is percent-encoded.
		uri := fl.Contents.Body.Contents[1]["action"].(map[string]any)["uri"]
		if uri != "https://example.com/c?code=C-1" {
			t.Errorf("uri %q", uri)
		}
	}
}

func TestRenderValueNotExpandedAgain(t *testing.T) {
	out, err := tpl(txt("{{display_name}} / {{coupon.code}}")).Render(MapVars{"display_name": "{{coupon.code}}", "coupon.code": "SECRET"})
	if err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, out[0]); got != "{{coupon.code}} / SECRET" {
		t.Errorf("got %q", got)
	}
}

func TestRenderURIValueEscaped(t *testing.T) {
	m := flex(bubbleWith(`{"type":"button","action":{"type":"uri","label":"Go","uri":"https://e.com/u/{{field.id}}?c={{coupon.code}}"}}`))
	out, err := tpl(m).Render(MapVars{"field.id": "../admin", "coupon.code": "a&b=c #x"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out[0]), `"uri":"https://e.com/u/..%2Fadmin?c=a%26b%3Dc%20%23x"`) {
		t.Errorf("got %s", out[0])
	}
}

func TestRenderFallback(t *testing.T) {
	tmpl := tpl(txt("Hi {{display_name|customer}}, next visit {{field.next_visit|TBD}}{{missing}}."))
	for _, tc := range []struct {
		vars Vars
		want string
	}{
		{nil, "Hi customer, next visit TBD."},
		{MapVars{}, "Hi customer, next visit TBD."},
		{MapVars{"display_name": "Aki", "field.next_visit": "5/1"}, "Hi Aki, next visit 5/1."},
		{MapVars{"display_name": "", "field.next_visit": "\x00"}, "Hi customer, next visit TBD."},
		{MapVars{"missing": "!"}, "Hi customer, next visit TBD!."},
	} {
		out, err := tmpl.Render(tc.vars)
		if err != nil {
			t.Fatal(err)
		}
		if got := textOf(t, out[0]); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.vars, got, tc.want)
		}
	}
	// Spaces around the name and fallback are allowed; there is no escape for "{{".
	out, err := tpl(txt("{{ display_name | guest }} {{{{ x {{{y}}} {{open")).Render(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, out[0]); got != "guest {{{{ x {} {{open" {
		t.Errorf("got %q", got)
	}
}

func TestRenderCutsToLimits(t *testing.T) {
	// 4998 units of text, then a variable: an emoji (2 units) fits, the next does not.
	prefix := strings.Repeat("a", 4990)
	tmpl := tpl(txt(prefix + "{{v}}"))
	out, err := tmpl.Render(MapVars{"v": "bbbbbbbbb😀"})
	if err != nil {
		t.Fatal(err)
	}
	got := textOf(t, out[0])
	if want := prefix + "bbbbbbbbb"; got != want {
		t.Errorf("cut at %d units, %d bytes; want the emoji dropped whole", lineLen(got), len(got))
	}
	out, _ = tmpl.Render(MapVars{"v": "bbbbbbbb😀"})
	if got := textOf(t, out[0]); lineLen(got) != 5000 || !utf8.ValidString(got) || !strings.HasSuffix(got, "😀") {
		t.Errorf("got %d units", lineLen(got))
	}
	out, _ = tmpl.Render(MapVars{"v": "bbbbbbbb😀x"})
	if got := textOf(t, out[0]); !strings.HasSuffix(got, "😀") || lineLen(got) != 5000 {
		t.Errorf("emoji that fits exactly should stay: %d units", lineLen(got))
	}

	long := strings.Repeat("😀", 2000)
	m := Message{Type: "flex", AltText: "{{v|x}}", Contents: json.RawMessage(bubbleJSON), QuickReply: []QuickReplyItem{
		{Type: "postback", Label: "{{v|x}}", Data: "{{v|x}}", DisplayText: "{{v}}"},
		{Type: "message", Label: "x", Text: "{{v|x}}"},
	}}
	out, err = tpl(m).Render(MapVars{"v": long})
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		AltText    string
		QuickReply struct {
			Items []struct{ Action map[string]string }
		}
	}
	strictDecode(t, out[0], &r)
	if lineLen(r.AltText) != 1500 {
		t.Errorf("altText %d units", lineLen(r.AltText))
	}
	a, b := r.QuickReply.Items[0].Action, r.QuickReply.Items[1].Action
	if lineLen(a["label"]) != 20 || lineLen(a["data"]) != 300 || lineLen(a["displayText"]) != 300 || lineLen(b["text"]) != 300 {
		t.Errorf("quick reply %v", r.QuickReply)
	}
	// Odd limits with a pair at the boundary: 21 units would split the 11th emoji.
	if got := cut(strings.Repeat("😀", 11), 21); got != strings.Repeat("😀", 10) {
		t.Errorf("cut = %q", got)
	}
	if got := cut("ab\u200d😀", 3); got != "ab" {
		t.Errorf("dangling joiner kept: %q", got)
	}
}

func TestRenderFlexLimits(t *testing.T) {
	m := flex(bubbleWith(`{"type":"button","action":{"type":"postback","label":"{{v|x}}","data":"{{v|x}}"}}`, `{"type":"text","text":"{{v}}!"}`))
	out, err := tpl(m).Render(MapVars{"v": strings.Repeat("x", 400)})
	if err != nil {
		t.Fatal(err)
	}
	s := string(out[0])
	if !strings.Contains(s, `"label":"`+strings.Repeat("x", 20)+`"`) || !strings.Contains(s, `"data":"`+strings.Repeat("x", 300)+`"`) ||
		!strings.Contains(s, `"text":"`+strings.Repeat("x", 400)+`!"`) {
		t.Errorf("got %s", s)
	}
	// A value that pushes the bubble over LINE's size limit is an error, not a 400 later.
	if _, err := tpl(m).Render(MapVars{"v": strings.Repeat("x", 40000)}); err == nil {
		t.Error("want an error for an oversized bubble")
	}
	// Numbers in flex keep their form.
	out, err = tpl(flex(`{"type":"bubble","body":{"type":"box","layout":"vertical","contents":[],"flex":1.50,"offsetTop":"1px"}}`)).Render(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out[0]), `"flex":1.50`) {
		t.Errorf("got %s", out[0])
	}
}

func TestRenderAllTypes(t *testing.T) {
	tmpl := tpl(
		Message{Type: "sticker", PackageID: "446", StickerID: "1988"},
		Message{Type: "image", OriginalContentURL: "https://e.com/a.jpg", PreviewImageURL: "https://e.com/p.jpg"},
		Message{Type: "audio", OriginalContentURL: "https://e.com/a.m4a", Duration: 1000},
		Message{Type: "location", Title: "Shop", Address: "Tokyo", Latitude: 0, Longitude: 139.5},
		Message{Type: "video", OriginalContentURL: "https://e.com/a.mp4", PreviewImageURL: "https://e.com/p.jpg"},
	)
	out, err := tmpl.Render(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"type":"sticker","packageId":"446","stickerId":"1988"}`,
		`{"type":"image","originalContentUrl":"https://e.com/a.jpg","previewImageUrl":"https://e.com/p.jpg"}`,
		`{"type":"audio","originalContentUrl":"https://e.com/a.m4a","duration":1000}`,
		`{"type":"location","title":"Shop","address":"Tokyo","latitude":0,"longitude":139.5}`,
		`{"type":"video","originalContentUrl":"https://e.com/a.mp4","previewImageUrl":"https://e.com/p.jpg"}`,
	}
	for i := range want {
		if string(out[i]) != want[i] {
			t.Errorf("got  %s\nwant %s", out[i], want[i])
		}
	}
	if tmpl.Personalised() {
		t.Error("no variables, yet Personalised")
	}
}

func TestVariablesAndPersonalised(t *testing.T) {
	tmpl := tpl(
		txt("Hi {{display_name}} {{display_name|x}} {{bad name}} {{{{"),
		Message{Type: "flex", AltText: "{{alt}}", Contents: json.RawMessage(bubbleJSON)},
		qr(QuickReplyItem{Type: "postback", Label: "{{l}}", Data: "{{d}}", DisplayText: "{{dt}}"}),
		Message{Type: "image", OriginalContentURL: "https://e.com/{{not_a_var_here}}.jpg"},
	)
	want := []string{"alt", "coupon.code", "d", "display_name", "dt", "l"}
	if got := tmpl.Variables(); !reflect.DeepEqual(got, want) {
		t.Errorf("Variables = %v, want %v", got, want)
	}
	if !tmpl.Personalised() {
		t.Error("not Personalised")
	}
	plain := tpl(txt("Hello {{ not a var }} {{"))
	if plain.Personalised() || len(plain.Variables()) != 0 {
		t.Errorf("got %v", plain.Variables())
	}
}

func TestContentHash(t *testing.T) {
	tmpl := tpl(txt("Hi {{display_name|there}}"), flex(bubbleJSON))
	render := func(v Vars) []json.RawMessage {
		out, err := tmpl.Render(v)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a := render(MapVars{"display_name": "Aki", "coupon.code": "X"})
	b := render(MapVars{"display_name": "Aki", "coupon.code": "X"})
	c := render(MapVars{"display_name": "Ben", "coupon.code": "X"})
	if ContentHash(a) != ContentHash(b) {
		t.Error("equal content, different hash")
	}
	if ContentHash(a) == ContentHash(c) {
		t.Error("different content, same hash")
	}
	spaced := []json.RawMessage{json.RawMessage(" {\"type\": \"text\",\n \"text\": \"x\"} ")}
	compact := []json.RawMessage{json.RawMessage(`{"type":"text","text":"x"}`)}
	if ContentHash(spaced) != ContentHash(compact) {
		t.Error("whitespace changes the hash")
	}
	arr, _ := json.Marshal(a) // a JSON array of the compact messages
	if sum := sha256.Sum256(arr); ContentHash(a) != hex.EncodeToString(sum[:]) {
		t.Error("not the hex SHA-256 of the compact JSON array")
	}
}
