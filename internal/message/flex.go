package message

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Flex message rules, from the Messaging API reference ("Flex Message" and "Action
// objects"). Only what LINE rejects is checked, plus where a component may appear.

const componentTypes = "box, text, image, button, icon, separator, filler, video, span"

// boxChildren is what a box may hold; span belongs in a text's contents and video only
// in a bubble's hero.
var boxChildren = map[string]bool{
	"box": true, "text": true, "image": true, "button": true, "icon": true,
	"separator": true, "filler": true,
}

func (v *validator) flex(path string, raw json.RawMessage) {
	if len(bytes.TrimSpace(raw)) == 0 {
		v.add(path, "contents がありません。bubble または carousel を指定してください",
			"contents is missing; give a bubble or a carousel")
		return
	}
	c, err := decodeContents(raw)
	if err != nil {
		v.add(path, fmt.Sprintf("contents が正しい JSON ではありません: %v", err),
			fmt.Sprintf("contents is not valid JSON: %v", err))
		return
	}
	m, ok := c.(map[string]any)
	if !ok {
		v.add(path, "contents は bubble または carousel のオブジェクトにしてください",
			"contents must be an object: a bubble or a carousel")
		return
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, raw) // valid: decodeContents succeeded
	size := compact.Len()
	switch typ := str(m["type"]); typ {
	case "bubble":
		v.size(path, size, maxBubbleBytes, "bubble")
		v.bubble(path, m)
	case "carousel":
		v.size(path, size, maxCarouselBytes, "carousel")
		bubbles, ok := m["contents"].([]any)
		if !ok || len(bubbles) == 0 || len(bubbles) > maxCarouselBubble {
			n := len(bubbles)
			v.add(path+".contents", fmt.Sprintf("カルーセルのバブルが%d個です。1個から%d個にしてください", n, maxCarouselBubble),
				fmt.Sprintf("the carousel has %d bubbles; it needs 1 to %d", n, maxCarouselBubble))
		}
		for i, b := range bubbles {
			bp := fmt.Sprintf("%s.contents[%d]", path, i)
			bm, ok := b.(map[string]any)
			if !ok || str(bm["type"]) != "bubble" {
				v.add(bp, "カルーセルの中身は bubble にしてください", "each item of a carousel must be a bubble")
				continue
			}
			v.bubble(bp, bm)
		}
	case "":
		v.add(path+".type", "contents の type がありません。bubble または carousel を指定してください",
			"contents has no type; use bubble or carousel")
	default:
		v.add(path+".type", fmt.Sprintf("contents の type「%s」は使えません。bubble または carousel を指定してください", typ),
			fmt.Sprintf("contents type %q is not allowed; use bubble or carousel", typ))
	}
	walkStrings(c, path, func(p, key, s string) {
		v.variables(p, s)
		if fixedValue[key] {
			for _, tok := range tokenize(s) {
				if tok.kind == tokVar {
					v.add(p, fmt.Sprintf("%s には変数 %s は使えません。LINE が決まった値しか受け付けないため、値をそのまま書いてください", key, tok.text),
						fmt.Sprintf("variables cannot be used in %s (%s): LINE accepts only fixed values there; write the value itself", key, tok.text))
					break
				}
			}
		}
	})
}

// fixedValue lists flex properties that LINE accepts only from a fixed set or in a fixed
// form (keywords, sizes, colours). A friend's value there would make LINE refuse the
// message for that friend, or change its layout, so variables are not allowed.
var fixedValue = map[string]bool{
	"type": true, "layout": true, "mode": true, "size": true, "weight": true, "style": true,
	"align": true, "gravity": true, "position": true, "decoration": true, "aspectMode": true,
	"aspectRatio": true, "direction": true, "spacing": true, "margin": true, "color": true,
	"backgroundColor": true, "borderColor": true, "borderWidth": true, "cornerRadius": true,
	"width": true, "height": true, "maxWidth": true, "maxHeight": true, "lineSpacing": true,
	"offsetTop": true, "offsetBottom": true, "offsetStart": true, "offsetEnd": true,
	"paddingAll": true, "paddingTop": true, "paddingBottom": true, "paddingStart": true,
	"paddingEnd": true, "adjustMode": true, "justifyContent": true, "alignItems": true,
	"initial": true, "max": true, "min": true, "inputOption": true, "angle": true,
	"startColor": true, "endColor": true, "centerColor": true, "centerPosition": true,
	"separatorColor": true,
}

func (v *validator) size(path string, n, max int, what string) {
	if n > max {
		v.add(path, fmt.Sprintf("%s の JSON が%sバイトです。LINE の上限は%sバイトです。要素を減らしてください", what, num(n), num(max)),
			fmt.Sprintf("the %s is %s bytes of JSON; LINE allows at most %s; remove some components", what, num(n), num(max)))
	}
}

func (v *validator) bubble(path string, m map[string]any) {
	for _, block := range []string{"header", "hero", "body", "footer"} {
		b, ok := m[block]
		if !ok {
			continue
		}
		allowed := map[string]bool{"box": true}
		if block == "hero" {
			allowed = map[string]bool{"box": true, "image": true, "video": true}
		}
		v.component(path+"."+block, b, allowed)
	}
	if s, ok := m["size"]; ok {
		v.enum(path+".size", s, "nano", "micro", "deca", "hecto", "kilo", "mega", "giga")
	}
	if d, ok := m["direction"]; ok {
		v.enum(path+".direction", d, "ltr", "rtl")
	}
	if a, ok := m["action"]; ok {
		v.flexAction(path+".action", a, false)
	}
}

func (v *validator) enum(path string, val any, allowed ...string) {
	s := str(val)
	if !contains(allowed, s) {
		list := strings.Join(allowed, ", ")
		v.add(path, fmt.Sprintf("%s「%v」は使えません。%s のいずれかを指定してください", prop(path), val, list),
			fmt.Sprintf("%s %q is not allowed; use one of %s", prop(path), fmt.Sprint(val), list))
	}
}

// component checks one flex component and, for boxes, its children. allowed is the set
// of types that may appear here.
func (v *validator) component(path string, c any, allowed map[string]bool) {
	m, ok := c.(map[string]any)
	if !ok {
		v.add(path, "コンポーネントはオブジェクト({ \"type\": ... })にしてください",
			"a component must be an object with a type")
		return
	}
	typ := str(m["type"])
	switch typ {
	case "box", "text", "image", "button", "icon", "separator", "filler", "video", "span":
	case "":
		v.add(path+".type", "コンポーネントの type がありません。"+componentTypes+" のいずれかを指定してください",
			"the component has no type; use one of "+componentTypes)
		return
	default:
		v.add(path+".type", fmt.Sprintf("コンポーネントの種類「%s」は使えません。%s のいずれかを指定してください", typ, componentTypes),
			fmt.Sprintf("unknown component type %q; use one of %s", typ, componentTypes))
		return
	}
	if !allowed[typ] {
		where := keys(allowed)
		v.add(path+".type", fmt.Sprintf("%s はここには置けません。ここに置けるのは %s です", typ, where),
			fmt.Sprintf("a %s cannot go here; only %s can", typ, where))
		return
	}
	switch typ {
	case "box":
		v.enum(path+".layout", m["layout"], "horizontal", "vertical", "baseline")
		children, ok := m["contents"].([]any)
		if !ok {
			v.add(path+".contents", "box に contents(中身の配列)がありません。空でも [] を指定してください",
				"the box has no contents array; give one, [] if empty")
		}
		for i, ch := range children {
			v.component(fmt.Sprintf("%s.contents[%d]", path, i), ch, boxChildren)
		}
	case "text":
		spans, hasSpans := m["contents"].([]any)
		if hasSpans && len(spans) > 0 {
			for i, sp := range spans {
				v.component(fmt.Sprintf("%s.contents[%d]", path, i), sp, map[string]bool{"span": true})
			}
		} else {
			v.flexText(path+".text", m["text"])
		}
	case "span":
		v.flexText(path+".text", m["text"])
	case "image", "icon":
		v.flexURL(path+".url", m["url"])
	case "video":
		v.flexURL(path+".url", m["url"])
		v.flexURL(path+".previewUrl", m["previewUrl"])
		if _, ok := m["altContent"].(map[string]any); !ok {
			v.add(path+".altContent", "video に altContent(再生できない端末で表示する image または box)を指定してください",
				"the video needs altContent: an image or box shown where video cannot play")
		} else {
			v.component(path+".altContent", m["altContent"], map[string]bool{"image": true, "box": true})
		}
	case "button":
		a, ok := m["action"]
		if !ok {
			v.add(path+".action", "button に action(押したときの動作)を指定してください",
				"the button needs an action: what happens when it is tapped")
		} else {
			v.flexAction(path+".action", a, true)
		}
	}
	if typ != "button" {
		if a, ok := m["action"]; ok {
			v.flexAction(path+".action", a, false)
		}
	}
}

// flexText checks a text or span's text: required and not empty for any friend.
func (v *validator) flexText(path string, val any) {
	s, ok := val.(string)
	if !ok && val != nil {
		v.add(path, "text は文字列にしてください", "text must be a string")
		return
	}
	v.varText(path, s, maxTextLen, true)
}

func (v *validator) flexURL(path string, val any) {
	s, ok := val.(string)
	if !ok && val != nil {
		v.add(path, fmt.Sprintf("%s は文字列にしてください", prop(path)), fmt.Sprintf("%s must be a string", prop(path)))
		return
	}
	v.httpsURL(path, s, maxURLLen)
}

// flexAction checks an action inside flex contents.
func (v *validator) flexAction(path string, val any, button bool) {
	m, ok := val.(map[string]any)
	if !ok {
		v.add(path, "action はオブジェクトにしてください", "action must be an object")
		return
	}
	a := action{
		Type: str(m["type"]), Label: str(m["label"]), Text: str(m["text"]), Data: str(m["data"]),
		URI: str(m["uri"]), DisplayText: str(m["displayText"]), Mode: str(m["mode"]),
		ClipboardText: str(m["clipboardText"]), has: map[string]bool{},
	}
	for k := range m {
		a.has[k] = true
	}
	v.action(path, a, false, button)
}

// str returns a JSON string value, or "" for anything else.
func str(v any) string {
	s, _ := v.(string)
	return s
}

func keys(m map[string]bool) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// walkStrings calls f for every string value in decoded JSON, with its path and the
// property that holds it. Object keys are visited in sorted order so that problems come
// out in a stable order.
func walkStrings(v any, path string, f func(path, key, s string)) {
	var walk func(v any, path, key string)
	walk = func(v any, path, key string) {
		switch x := v.(type) {
		case map[string]any:
			ks := make([]string, 0, len(x))
			for k := range x {
				ks = append(ks, k)
			}
			sort.Strings(ks)
			for _, k := range ks {
				walk(x[k], path+"."+k, k)
			}
		case []any:
			for i, e := range x {
				walk(e, fmt.Sprintf("%s[%d]", path, i), key)
			}
		case string:
			f(path, key, x)
		}
	}
	walk(v, path, "")
}
