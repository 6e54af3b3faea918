package message

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Problem is one validation failure: the path of the offending property, such as
// messages[0].quickReply[2].label, and what to fix, in Japanese and English.
type Problem struct {
	Path string `json:"path"`
	JA   string `json:"ja"`
	EN   string `json:"en"`
}

// Error returns the English message with the path.
func (p Problem) Error() string {
	if p.Path == "" {
		return p.EN
	}
	return p.Path + ": " + p.EN
}

// Problems is every problem found in a template, in the order of the template.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.Error()
	}
	return strings.Join(s, "; ")
}

type validator struct {
	ps   Problems
	seen map[Problem]bool
}

func (v *validator) add(path, ja, en string) {
	p := Problem{Path: path, JA: ja, EN: en}
	if v.seen[p] { // flex strings are checked both as components and as strings
		return
	}
	if v.seen == nil {
		v.seen = map[Problem]bool{}
	}
	v.seen[p] = true
	v.ps = append(v.ps, p)
}

// Validate checks the template against the LINE Messaging API rules, as written (a
// variable counts at the length of its source text). It returns nil if the template is
// valid.
func (t Template) Validate() Problems {
	v := &validator{}
	switch n := len(t.Messages); {
	case n == 0:
		v.add("messages", "メッセージがありません。1件以上追加してください",
			"the template has no messages; add at least one")
	case n > maxMessages:
		v.add("messages", fmt.Sprintf("メッセージが%d件あります。LINE で一度に送れるのは%d件までです", n, maxMessages),
			fmt.Sprintf("the template has %d messages; LINE sends at most %d at once", n, maxMessages))
	}
	for i, m := range t.Messages {
		v.message(fmt.Sprintf("messages[%d]", i), m)
	}
	if len(v.ps) == 0 {
		return nil
	}
	return v.ps
}

var messageTypes = "text, sticker, image, video, audio, location, flex"

// field names shown to staff, by property.
var fieldJA = map[string]string{
	"text": "本文", "altText": "代替テキスト", "label": "ラベル", "data": "ポストバックデータ",
	"displayText": "表示テキスト", "title": "タイトル", "address": "住所", "packageId": "パッケージID",
	"stickerId": "スタンプID", "originalContentUrl": "コンテンツのURL", "previewImageUrl": "プレビュー画像のURL",
	"uri": "URI", "url": "URL", "imageUrl": "アイコン画像のURL", "mode": "モード", "duration": "再生時間",
	"clipboardText": "コピーするテキスト", "previewUrl": "プレビュー画像のURL",
}

func ja(prop string) string {
	if s, ok := fieldJA[prop]; ok {
		return s
	}
	return prop
}

// prop is the last property name of a path: messages[0].quickReply[1].label -> label.
func prop(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		path = path[i+1:]
	}
	if i := strings.IndexByte(path, '['); i >= 0 {
		path = path[:i]
	}
	return path
}

func (v *validator) message(path string, m Message) {
	set := map[string]bool{
		"text": m.Text != "", "packageId": m.PackageID != "", "stickerId": m.StickerID != "",
		"originalContentUrl": m.OriginalContentURL != "", "previewImageUrl": m.PreviewImageURL != "",
		"duration": m.Duration != 0, "title": m.Title != "", "address": m.Address != "",
		"latitude": m.Latitude != 0, "longitude": m.Longitude != 0, "altText": m.AltText != "",
		"contents": len(m.Contents) > 0,
	}
	var uses []string
	switch m.Type {
	case "text":
		uses = []string{"text"}
		v.varText(path+".text", m.Text, maxTextLen, true)
	case "sticker":
		uses = []string{"packageId", "stickerId"}
		v.digits(path+".packageId", m.PackageID)
		v.digits(path+".stickerId", m.StickerID)
	case "image", "video":
		uses = []string{"originalContentUrl", "previewImageUrl"}
		v.httpsURL(path+".originalContentUrl", m.OriginalContentURL, maxURLLen)
		v.httpsURL(path+".previewImageUrl", m.PreviewImageURL, maxURLLen)
		v.noVariables(path+".originalContentUrl", m.OriginalContentURL)
		v.noVariables(path+".previewImageUrl", m.PreviewImageURL)
	case "audio":
		uses = []string{"originalContentUrl", "duration"}
		v.httpsURL(path+".originalContentUrl", m.OriginalContentURL, maxURLLen)
		v.noVariables(path+".originalContentUrl", m.OriginalContentURL)
		if m.Duration <= 0 {
			v.add(path+".duration", "再生時間(duration)をミリ秒で指定してください(例: 60000 は1分)",
				"duration must be the length of the audio in milliseconds, more than 0 (e.g. 60000 for one minute)")
		}
	case "location":
		uses = []string{"title", "address", "latitude", "longitude"}
		v.plainText(path+".title", m.Title, 100)
		v.plainText(path+".address", m.Address, 100)
		if m.Latitude < -90 || m.Latitude > 90 {
			v.add(path+".latitude", fmt.Sprintf("緯度 %g は範囲外です。-90 から 90 の間で指定してください", m.Latitude),
				fmt.Sprintf("latitude %g is out of range; it must be between -90 and 90", m.Latitude))
		}
		if m.Longitude < -180 || m.Longitude > 180 {
			v.add(path+".longitude", fmt.Sprintf("経度 %g は範囲外です。-180 から 180 の間で指定してください", m.Longitude),
				fmt.Sprintf("longitude %g is out of range; it must be between -180 and 180", m.Longitude))
		}
	case "flex":
		uses = []string{"altText", "contents"}
		v.varText(path+".altText", m.AltText, maxAltTextLen, true)
		v.flex(path+".contents", m.Contents)
	case "":
		v.add(path+".type", "メッセージの種類(type)がありません。"+messageTypes+" のいずれかを指定してください",
			"type is missing; use one of "+messageTypes)
		return
	default:
		v.add(path+".type", fmt.Sprintf("メッセージの種類「%s」は使えません。%s のいずれかを指定してください", m.Type, messageTypes),
			fmt.Sprintf("unknown message type %q; use one of %s", m.Type, messageTypes))
		return
	}
	// A property of another type is a sign of a mistake, and would not be sent.
	for _, p := range []string{"text", "packageId", "stickerId", "originalContentUrl", "previewImageUrl",
		"duration", "title", "address", "latitude", "longitude", "altText", "contents"} {
		if set[p] && !contains(uses, p) {
			v.add(path+"."+p, fmt.Sprintf("%s は %s メッセージでは使われません。削除するか、種類(type)を確認してください", p, m.Type),
				fmt.Sprintf("%s is not used by a %s message; remove it or check the type", p, m.Type))
		}
	}
	if len(m.QuickReply) > maxQuickReply {
		v.add(path+".quickReply", fmt.Sprintf("クイックリプライが%d個あります。LINE の上限は%d個です", len(m.QuickReply), maxQuickReply),
			fmt.Sprintf("there are %d quick reply buttons; LINE allows at most %d", len(m.QuickReply), maxQuickReply))
	}
	for j, q := range m.QuickReply {
		v.quickReply(fmt.Sprintf("%s.quickReply[%d]", path, j), q)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (v *validator) quickReply(path string, q QuickReplyItem) {
	a := action{
		Type: q.Type, Label: q.Label, Text: q.Text, Data: q.Data, URI: q.URI,
		DisplayText: q.DisplayText, Mode: q.Mode,
		has: map[string]bool{"label": q.Label != "", "text": q.Text != "", "data": q.Data != "",
			"uri": q.URI != "", "displayText": q.DisplayText != "", "mode": q.Mode != ""},
	}
	v.action(path, a, true, true)
	v.noVariables(path+".uri", q.URI)
	if q.ImageURL != "" {
		v.httpsURL(path+".imageUrl", q.ImageURL, maxURLLen)
		v.noVariables(path+".imageUrl", q.ImageURL)
	}
}

// action is the fields of an action common to quick reply and flex.
type action struct {
	Type, Label, Text, Data, URI, DisplayText, Mode, ClipboardText string
	has                                                            map[string]bool
}

// actionFields lists, per action type, the properties it uses besides type and label.
var actionFields = map[string][]string{
	"postback":       {"data", "displayText", "inputOption", "fillInText"},
	"message":        {"text"},
	"uri":            {"uri", "altUri"},
	"datetimepicker": {"data", "mode", "initial", "max", "min"},
	"camera":         nil,
	"cameraRoll":     nil,
	"location":       nil,
	"clipboard":      {"clipboardText"},
}

// action checks an action. quick says it belongs to a quick reply button, where camera,
// cameraRoll and location are allowed and a label is required.
func (v *validator) action(path string, a action, quick, labelRequired bool) {
	types := "postback, message, uri, datetimepicker, clipboard"
	if quick {
		types = "message, postback, uri, datetimepicker, camera, cameraRoll, location"
	}
	fields, known := actionFields[a.Type]
	switch {
	case a.Type == "":
		v.add(path+".type", "アクションの種類(type)がありません。"+types+" のいずれかを指定してください",
			"the action type is missing; use one of "+types)
		return
	case !known || !contains(strings.Split(types, ", "), a.Type):
		if !quick && (a.Type == "camera" || a.Type == "cameraRoll" || a.Type == "location") {
			v.add(path+".type", fmt.Sprintf("%s アクションはクイックリプライでのみ使えます", a.Type),
				fmt.Sprintf("a %s action can only be used in a quick reply", a.Type))
			return
		}
		v.add(path+".type", fmt.Sprintf("アクションの種類「%s」は使えません。%s のいずれかを指定してください", a.Type, types),
			fmt.Sprintf("unknown action type %q; use one of %s", a.Type, types))
		return
	}
	if labelRequired || a.Label != "" {
		v.varText(path+".label", a.Label, maxLabelLen, labelRequired)
	}
	switch a.Type {
	case "postback":
		v.varText(path+".data", a.Data, maxDataLen, true)
		if a.DisplayText != "" {
			v.varText(path+".displayText", a.DisplayText, maxDataLen, false)
		}
	case "message":
		v.varText(path+".text", a.Text, maxDataLen, true)
	case "uri":
		v.uri(path+".uri", a.URI)
	case "datetimepicker":
		v.varText(path+".data", a.Data, maxDataLen, true)
		switch a.Mode {
		case "date", "time", "datetime":
		case "":
			v.add(path+".mode", "mode がありません。date、time、datetime のいずれかを指定してください",
				"mode is missing; use date, time or datetime")
		default:
			v.add(path+".mode", fmt.Sprintf("mode「%s」は使えません。date、time、datetime のいずれかを指定してください", a.Mode),
				fmt.Sprintf("unknown mode %q; use date, time or datetime", a.Mode))
		}
	case "clipboard":
		v.plainText(path+".clipboardText", a.ClipboardText, 1000)
	}
	for _, p := range []string{"text", "data", "uri", "displayText", "mode"} {
		if a.has[p] && !contains(fields, p) {
			v.add(path+"."+p, fmt.Sprintf("%s は %s アクションでは使われません。削除するか、種類(type)を確認してください", p, a.Type),
				fmt.Sprintf("%s is not used by a %s action; remove it or check the type", p, a.Type))
		}
	}
}

// varText checks a string that may hold variables: required, at most max UTF-16 units
// as written, well-formed variables, and (if required) not empty for a friend who has
// none of its values.
func (v *validator) varText(path, s string, max int, required bool) {
	p := prop(path)
	if s == "" {
		if required {
			v.add(path, fmt.Sprintf("%s(%s)が空です。入力してください", ja(p), p),
				fmt.Sprintf("%s is empty; fill it in", p))
		}
		return
	}
	v.length(path, s, max)
	v.variables(path, s)
	if required && mayRenderEmpty(s) {
		name := "display_name"
		for _, tok := range tokenize(s) {
			if tok.kind == tokVar {
				name = tok.name
				break
			}
		}
		v.add(path, fmt.Sprintf("%s(%s)は、{{%s}} の値がない友だちには空になり、送信できません。{{%s|お客様}} のように代わりの文字を指定するか、固定の文字を加えてください", ja(p), p, name, name),
			fmt.Sprintf("%s is empty for a friend without a value for {{%s}}, and LINE refuses empty %s; give a fallback such as {{%s|customer}} or add fixed text", p, name, p, name))
	}
}

// plainText checks a required string where variables are not expanded.
func (v *validator) plainText(path, s string, max int) {
	p := prop(path)
	if s == "" {
		v.add(path, fmt.Sprintf("%s(%s)が空です。入力してください", ja(p), p),
			fmt.Sprintf("%s is empty; fill it in", p))
		return
	}
	v.length(path, s, max)
	v.noVariables(path, s)
}

func (v *validator) length(path, s string, max int) {
	if n := lineLen(s); n > max {
		p := prop(path)
		v.add(path, fmt.Sprintf("%sが%s文字です。LINE の上限は%s文字です", ja(p), num(n), num(max)),
			fmt.Sprintf("%s is %s characters; LINE allows at most %s", p, num(n), num(max)))
	}
}

// variables reports malformed variables in a string where variables are expanded.
func (v *validator) variables(path, s string) {
	seen := map[string]bool{}
	for _, tok := range tokenize(s) {
		if tok.kind == tokBad && !seen[tok.text] && len(seen) < 5 { // enough to show the mistake
			seen[tok.text] = true
			v.add(path, fmt.Sprintf("「%s」は変数として正しくありません。変数名には英数字、「_」、「.」が使えます(例: {{display_name}}、{{field.next_visit|未定}})", tok.text),
				fmt.Sprintf("%q is not a valid variable; a name has letters, digits, \"_\" and \".\" (e.g. {{display_name}}, {{field.next_visit|soon}})", tok.text))
		}
	}
}

// noVariables reports a variable where it would be sent as written.
func (v *validator) noVariables(path, s string) {
	for _, tok := range tokenize(s) {
		if tok.kind == tokVar {
			p := prop(path)
			v.add(path, fmt.Sprintf("%s(%s)では変数 %s は使えません。そのまま送信されてしまいます", ja(p), p, tok.text),
				fmt.Sprintf("variables are not expanded in %s, so %s would be sent as written; remove it", p, tok.text))
			return
		}
	}
}

func (v *validator) digits(path, s string) {
	p := prop(path)
	if s == "" {
		v.add(path, fmt.Sprintf("%s(%s)がありません。LINE のスタンプ一覧にある番号を指定してください", ja(p), p),
			fmt.Sprintf("%s is missing; use the number from LINE's sticker list", p))
		return
	}
	if _, err := strconv.ParseUint(s, 10, 64); err != nil {
		v.add(path, fmt.Sprintf("%s(%s)「%s」は数字のみで指定してください", ja(p), p, s),
			fmt.Sprintf("%s %q must be digits only", p, s))
	}
}

// httpsURL checks a required URL that LINE fetches: HTTPS only.
func (v *validator) httpsURL(path, s string, max int) {
	p := prop(path)
	switch {
	case s == "":
		v.add(path, fmt.Sprintf("%s(%s)がありません。https:// で始まるURLを指定してください", ja(p), p),
			fmt.Sprintf("%s is missing; give an https:// URL", p))
		return
	case !strings.HasPrefix(s, "https://") || !hasHost(s):
		v.add(path, fmt.Sprintf("%s(%s)は https:// で始まるURLにしてください(「%s」)", ja(p), p, short(s)),
			fmt.Sprintf("%s must be an https:// URL, not %q", p, short(s)))
		return
	}
	if n := lineLen(s); n > max {
		v.add(path, fmt.Sprintf("%sが%s文字です。LINE の上限は%s文字です", ja(p), num(n), num(max)),
			fmt.Sprintf("%s is %s characters; LINE allows at most %s", p, num(n), num(max)))
	}
}

// uri checks an action's URI: http, https, line or tel, at most 1000 characters.
func (v *validator) uri(path, s string) {
	p := prop(path)
	if s == "" {
		v.add(path, fmt.Sprintf("%s(%s)がありません。https://、http://、line://、tel: のいずれかで始まるURIを指定してください", ja(p), p),
			fmt.Sprintf("%s is missing; give a URI starting with https://, http://, line:// or tel:", p))
		return
	}
	ok := false
	switch {
	case strings.HasPrefix(s, "https://"), strings.HasPrefix(s, "http://"):
		ok = hasHost(s)
	case strings.HasPrefix(s, "line://"), strings.HasPrefix(s, "tel:"):
		ok = len(s) > len("tel:")
	}
	if !ok {
		v.add(path, fmt.Sprintf("%s(%s)「%s」は使えません。https://、http://、line://、tel: のいずれかで始まるURIにしてください", ja(p), p, short(s)),
			fmt.Sprintf("%s %q is not allowed; use a URI starting with https://, http://, line:// or tel:", p, short(s)))
		return
	}
	if n := lineLen(s); n > maxURILen {
		v.add(path, fmt.Sprintf("%sが%s文字です。LINE の上限は%s文字です", ja(p), num(n), num(maxURILen)),
			fmt.Sprintf("%s is %s characters; LINE allows at most %s", p, num(n), num(maxURILen)))
	}
}

func hasHost(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Host != ""
}

// short keeps long values readable in a message.
func short(s string) string {
	if lineLen(s) > 60 {
		return cut(s, 57) + "..."
	}
	return s
}

// num formats n with thousands separators, as in 5,214.
func num(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
