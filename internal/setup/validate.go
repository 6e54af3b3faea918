package setup

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/linestep/linestep/internal/autoreply"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/template"
)

// checker collects problems, and remembers which entries have them so that applying
// skips those (their problems are reported once, not again as broken references).
type checker struct {
	ps  message.Problems
	bad map[string]bool // "fields.<key>", "scenarios.<key>", ...
}

func (c *checker) add(path, ja, en string) {
	c.ps = append(c.ps, message.Problem{Path: path, JA: ja, EN: en})
}

// addAll adds problems found inside an entry, their paths below prefix.
func (c *checker) addAll(prefix string, ps message.Problems) {
	for _, p := range ps {
		p.Path = join(prefix, p.Path)
		c.ps = append(c.ps, p)
	}
}

func (c *checker) mark(id string, before int) {
	if len(c.ps) > before {
		c.bad[id] = true
	}
}

func join(prefix, path string) string {
	switch {
	case path == "":
		return prefix
	case prefix == "", strings.HasPrefix(path, "["):
		return prefix + path
	}
	return prefix + "." + path
}

var fieldKey = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// check validates the file on its own, without a database: every entry against the
// rules its kind is saved with. References are checked by Apply, in its transaction.
func (f *File) check(svc Services) *checker {
	c := &checker{bad: map[string]bool{}}
	seen := map[string]bool{}
	for i, name := range f.Tags {
		path := fmt.Sprintf("tags[%d]", i)
		n := len(c.ps)
		c.tagName(path, name)
		if t := strings.TrimSpace(name); seen[t] {
			c.add(path, fmt.Sprintf("タグ「%s」が2回書かれています", t), fmt.Sprintf("tag %q is listed twice", t))
		} else {
			seen[t] = true
		}
		c.mark("tags."+strings.TrimSpace(name), n)
	}
	seen = map[string]bool{}
	for i, fd := range f.Fields {
		n := len(c.ps)
		c.field(fmt.Sprintf("fields[%d]", i), fd, seen)
		c.mark("fields."+fd.Key, n)
	}
	for _, key := range sortedKeys(f.Templates) {
		t := f.Templates[key]
		path, n := "templates."+key, len(c.ps)
		for _, p := range template.Check(key, t.Name, message.Template{Messages: t.Messages}) {
			if p.Path == "key" {
				p.Path = ""
			}
			c.addAll(path, message.Problems{p})
		}
		c.mark(path, n)
	}
	for _, key := range sortedKeys(f.Segments) {
		s := f.Segments[key]
		path, n := "segments."+key, len(c.ps)
		c.key(path, key, segment.ValidKey(key))
		c.name(path+".name", s.Name)
		switch {
		case !s.Filter.set:
			c.add(path+".filter", "条件（filter）がありません。友だち全員なら {} と書いてください",
				"the filter is missing; write {} to select every follower")
		default:
			c.filter(path+".filter", s.Filter.Validate())
		}
		c.mark(path, n)
	}
	for _, key := range sortedKeys(f.Coupons) {
		path, n := "coupons."+key, len(c.ps)
		c.coupon(path, key, f.Coupons[key])
		c.mark(path, n)
	}
	for _, key := range sortedKeys(f.Scenarios) {
		s := f.Scenarios[key]
		path, n := "scenarios."+key, len(c.ps)
		c.key(path, key, scenario.ValidKey(key))
		c.addAll(path, s.Definition.Validate())
		c.scenarioTags(path, s.Definition)
		c.mark(path, n)
	}
	for _, key := range sortedKeys(f.AutoReplies) {
		path, n := "autoreplies."+key, len(c.ps)
		for _, p := range validateRule(svc.AutoReplies, rule("-", key, f.AutoReplies[key])) {
			switch {
			case p.Path == "key":
				p.Path = ""
			case strings.HasPrefix(p.Path, "template."):
				p.Path = strings.TrimPrefix(p.Path, "template.") // the file has no template level
			}
			c.addAll(path, message.Problems{p})
		}
		c.mark(path, n)
	}
	return c
}

func validateRule(svc *autoreply.Service, r autoreply.Rule) message.Problems {
	var ps message.Problems
	if err := svc.Validate(r); err != nil && !errors.As(err, &ps) {
		return message.Problems{{JA: err.Error(), EN: err.Error()}}
	}
	return ps
}

func (c *checker) key(path, key string, ok bool) {
	if !ok {
		c.add(path, fmt.Sprintf("キー「%s」は使えません。英小文字・数字・「_」「-」の64文字以内で、英小文字か数字で始めてください", key),
			fmt.Sprintf("%q is not a valid key: at most 64 of a-z, 0-9, _ and -, starting with a letter or digit", key))
	}
}

func (c *checker) name(path, name string) {
	if utf8.RuneCountInString(name) > 100 || strings.ContainsAny(name, "\r\n") {
		c.add(path, "名前は改行なしの100文字以内にしてください", "the name must be at most 100 characters on one line")
	}
}

// tagName applies the rules friend.CreateTag applies.
func (c *checker) tagName(path, name string) {
	t := strings.TrimSpace(name)
	if t == "" || utf8.RuneCountInString(t) > 100 || strings.ContainsAny(t, "\x00\r\n\t") {
		c.add(path, "タグ名は改行なしの1〜100文字にしてください", "a tag name must be 1 to 100 characters on one line")
	}
}

// scenarioTags checks the tag names a scenario creates when it is saved.
func (c *checker) scenarioTags(path string, d scenario.Definition) {
	if d.Trigger.Type == scenario.TriggerTag && strings.TrimSpace(d.Trigger.Tag) != "" {
		c.tagName(path+".trigger.tag", d.Trigger.Tag)
	}
	for i, st := range d.Steps {
		for j, t := range slices.Concat(st.Actions.AddTags, st.Actions.RemoveTags) {
			if strings.TrimSpace(t) != "" { // empty ones are reported by Definition.Validate
				c.tagName(fmt.Sprintf("%s.steps[%d].actions.tags[%d]", path, i, j), t)
			}
		}
	}
}

func (c *checker) filter(path string, err error) {
	if err == nil {
		return
	}
	var e *segment.Error
	if errors.As(err, &e) {
		c.add(join(path, e.Path), "条件が正しくありません: "+e.Msg, e.Msg)
		return
	}
	c.add(path, "条件が正しくありません: "+err.Error(), err.Error())
}

func (c *checker) field(path string, f Field, seen map[string]bool) {
	switch {
	case !fieldKey.MatchString(f.Key):
		c.add(path+".key", "項目のキーは英小文字で始め、英小文字・数字・「_」の63文字以内にしてください（例: next_visit）",
			"a field key starts with a-z and has at most 63 of a-z, 0-9 and _ (e.g. next_visit)")
	case seen[f.Key]:
		c.add(path+".key", fmt.Sprintf("項目「%s」が2回書かれています", f.Key), fmt.Sprintf("field %q is defined twice", f.Key))
	}
	seen[f.Key] = true
	if l := strings.TrimSpace(f.Label); l == "" || utf8.RuneCountInString(l) > 100 || strings.ContainsAny(l, "\x00\r\n\t") {
		c.add(path+".label", "表示名（label）を改行なしの1〜100文字で書いてください", "give a label of 1 to 100 characters on one line")
	}
	switch f.Type {
	case "text", "number", "date":
		if len(f.Choices) > 0 {
			c.add(path+".choices", "選択肢（choices）は type: choice の項目にだけ書けます", "only choice fields have choices")
		}
	case "choice":
		if len(f.Choices) == 0 || len(f.Choices) > 100 {
			c.add(path+".choices", "選択肢を1〜100個書いてください", "a choice field needs 1 to 100 choices")
		}
		dup := map[string]bool{}
		for i, ch := range f.Choices {
			if strings.TrimSpace(ch) == "" || dup[ch] {
				c.add(fmt.Sprintf("%s.choices[%d]", path, i), "選択肢が空か、重複しています", "the choice is empty or listed twice")
			}
			dup[ch] = true
		}
	default:
		c.add(path+".type", "種類（type）は text、number、date、choice のいずれかにしてください",
			"type must be text, number, date or choice")
	}
	if strings.TrimSpace(f.Purpose) == "" {
		c.add(path+".purpose", "利用目的（purpose）を書いてください。何のために集めるかを説明せずに個人情報を集めることはできません",
			"give the purpose: why the value is collected (personal data is not collected without one)")
	}
	switch f.Sensitivity {
	case "", "attribute", "normal", "special":
	default:
		c.add(path+".sensitivity", "sensitivity は attribute（個人を特定しない属性）、normal（個人情報）、special（要配慮個人情報）のどれかにしてください",
			"sensitivity must be attribute (not personal on its own), normal (personal data) or special (special care-required data)")
	}
	if f.RetentionDays < 0 {
		c.add(path+".retention_days", "保存期間（retention_days）は0以上の日数にしてください（0: 友だちである間）",
			"retention_days must be 0 (kept while the friend is) or more")
	}
}
