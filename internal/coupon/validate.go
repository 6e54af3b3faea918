package coupon

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/linestep/linestep/internal/message"
)

// Limits on a coupon.
const (
	maxTitleLen       = 100
	maxDescriptionLen = 1000
	maxCodeLen        = 64
)

var (
	keyPattern  = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)
	codePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// ValidKey reports whether s can be a coupon's key.
func ValidKey(s string) bool { return keyPattern.MatchString(s) }

// ValidCode reports whether s can be a shared or imported code: what staff read out and
// friends type, so no spaces or symbols beyond "_" and "-".
func ValidCode(s string) bool { return codePattern.MatchString(s) }

// Validate checks a coupon as Save would. A non-nil error is message.Problems, each
// saying what to fix in Japanese and English. PerFriendLimit 0 stands for the default, 1.
func Validate(c Coupon) error {
	var ps message.Problems
	add := func(path, ja, en string) { ps = append(ps, message.Problem{Path: path, JA: ja, EN: en}) }

	if c.ChannelID == "" {
		add("channel_id", "チャネルを指定してください", "give the channel")
	}
	if !ValidKey(c.Key) {
		add("key", "キーは英小文字・数字・「_」の1〜64文字にしてください（例: osaka10）",
			"the key must be 1 to 64 of a-z, 0-9 and _ (e.g. osaka10)")
	}
	switch n := utf8.RuneCountInString(c.Title); {
	case strings.TrimSpace(c.Title) == "":
		add("title", "タイトルを入力してください（例: 大阪店 10%オフ）", "give a title (e.g. 10% off in Osaka)")
	case n > maxTitleLen:
		add("title", fmt.Sprintf("タイトルは%d文字以内にしてください（%d文字あります）", maxTitleLen, n),
			fmt.Sprintf("the title has %d characters; at most %d are allowed", n, maxTitleLen))
	case strings.ContainsAny(c.Title, "\r\n"):
		add("title", "タイトルは1行にしてください", "the title must be one line")
	}
	if n := utf8.RuneCountInString(c.Description); n > maxDescriptionLen {
		add("description", fmt.Sprintf("説明は%d文字以内にしてください（%d文字あります）", maxDescriptionLen, n),
			fmt.Sprintf("the description has %d characters; at most %d are allowed", n, maxDescriptionLen))
	}
	switch c.CodePolicy {
	case PolicyShared:
		if !ValidCode(c.SharedCode) {
			add("shared_code", "共通コードは英数字・「_」「-」の1〜64文字にしてください（例: OSAKA10）",
				"the shared code must be 1 to 64 of A-Z, a-z, 0-9, _ and - (e.g. OSAKA10)")
		}
	case PolicyGenerated, PolicyImported:
		if c.SharedCode != "" {
			add("shared_code", "共通コードは方式が shared（全員に同じコード）のときだけ指定できます",
				"a shared code is only for the shared policy; leave it empty")
		}
	default:
		add("code_policy", "コードの方式は shared（全員に同じコード）、generated（友だちごとに自動生成）、imported（取り込んだコードを配布）のいずれかにしてください",
			"the code policy must be shared (one code for everyone), generated (a code made for each friend) or imported (codes imported in advance)")
	}
	if c.ValidFrom.IsZero() {
		add("valid_from", "有効期間の開始日時を指定してください", "give when the coupon becomes valid")
	}
	if !c.ValidUntil.IsZero() && !c.ValidFrom.IsZero() && !c.ValidUntil.After(c.ValidFrom) {
		add("valid_until", "有効期間の終了は開始より後にしてください", "the end of the validity period must come after its start")
	}
	if c.PerFriendLimit < 0 {
		add("per_friend_limit", "1人あたりの利用回数は1以上にしてください", "the number of uses per friend must be at least 1")
	}
	if len(ps) == 0 {
		return nil
	}
	return ps
}
