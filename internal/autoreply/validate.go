package autoreply

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"

	"github.com/linestep/linestep/internal/keyword"
	"github.com/linestep/linestep/internal/message"
)

var keyPattern = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

type checker struct{ ps message.Problems }

func (c *checker) add(path, ja, en string) {
	c.ps = append(c.ps, message.Problem{Path: path, JA: ja, EN: en})
}

// validate returns every problem of r, in the order of its fields, or nil.
func validate(r Rule) message.Problems {
	c := &checker{}
	if r.ChannelID == "" {
		c.add("channel_id", "チャネルを指定してください", "give the channel")
	}
	if !keyPattern.MatchString(r.Key) {
		c.add("key", "キーは英小文字・数字・「_」「-」の1〜64文字にしてください（例: opening-hours）",
			"the key must be 1 to 64 of a-z, 0-9, _ and - (e.g. opening-hours)")
	}
	if utf8.RuneCountInString(r.Name) > maxNameLen || strings.ContainsAny(r.Name, "\r\n") {
		c.add("name", fmt.Sprintf("名前は改行なしの%d文字以内にしてください", maxNameLen),
			fmt.Sprintf("the name must be at most %d characters on one line", maxNameLen))
	}
	c.keywords(r.Match, r.Keywords)
	if r.Window != nil {
		c.window(*r.Window)
	}
	for _, p := range r.Template.Validate() {
		p.Path = "template." + p.Path
		c.ps = append(c.ps, p)
	}
	if len(c.ps) == 0 {
		return nil
	}
	return c.ps
}

func (c *checker) keywords(kind string, keywords []string) {
	switch kind {
	case MatchExact, MatchContains, MatchRegex:
	default:
		c.add("match", "一致の方法は exact（完全一致）、contains（部分一致）、regex（正規表現）のいずれかにしてください",
			"match must be exact, contains or regex")
	}
	switch n := len(keywords); {
	case n == 0:
		c.add("keywords", "キーワードを1つ以上指定してください", "give at least one keyword")
		return
	case n > MaxKeywords:
		c.add("keywords", fmt.Sprintf("キーワードは%d個までです（%d個あります）", MaxKeywords, n),
			fmt.Sprintf("a rule has at most %d keywords; this one has %d", MaxKeywords, n))
		return
	}
	for i, k := range keywords {
		path := fmt.Sprintf("keywords[%d]", i)
		n := utf8.RuneCountInString(k)
		switch {
		case keyword.Normalize(k) == "":
			c.add(path, "キーワードが空です", "the keyword is empty")
		case kind == MatchRegex && n > MaxPatternLen:
			c.add(path, fmt.Sprintf("正規表現は%d文字以内にしてください（%d文字あります）", MaxPatternLen, n),
				fmt.Sprintf("a pattern has at most %d characters; this one has %d", MaxPatternLen, n))
		case kind == MatchRegex:
			if _, err := compilePattern(k); err != nil {
				c.add(path, "正規表現として正しくありません（"+patternError(err)+"）",
					"not a valid regular expression ("+patternError(err)+")")
			}
		case n > MaxKeywordLen:
			c.add(path, fmt.Sprintf("キーワードは%d文字以内にしてください（%d文字あります）", MaxKeywordLen, n),
				fmt.Sprintf("a keyword has at most %d characters; this one has %d", MaxKeywordLen, n))
		}
	}
}

// patternError says what is wrong with a pattern without quoting it back in the form
// compilePattern gave it (with its (?i) prefix), which would confuse.
func patternError(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return se.Code.String() + ": " + strings.TrimPrefix(se.Expr, "(?i)")
	}
	return err.Error()
}

func (c *checker) window(w Window) {
	for i, d := range w.Days {
		if _, ok := weekdays[d]; !ok {
			c.add(fmt.Sprintf("window.days[%d]", i), "曜日は mon、tue、wed、thu、fri、sat、sun で書いてください",
				"write days as mon, tue, wed, thu, fri, sat or sun")
		}
	}
	from, okFrom := parseClock(w.From)
	to, okTo := parseClock(w.To)
	if !okFrom {
		c.add("window.from", "開始時刻を「09:00」のように HH:MM で書いてください", "write the start as HH:MM, e.g. 09:00")
	}
	if !okTo {
		c.add("window.to", "終了時刻を「18:00」のように HH:MM で書いてください", "write the end as HH:MM, e.g. 18:00")
	}
	if okFrom && okTo && from == to {
		c.add("window.to", "開始と終了が同じ時刻です。終日応答するなら時間帯を指定しないでください",
			"the start and the end are the same; to answer at any time, leave the window out")
	}
}
