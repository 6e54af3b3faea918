package access

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Masking keeps just enough of a value for staff to tell people apart in a list or to
// confirm a value a customer reads out ("the number ending 5678"), and no more:
//
//	山田 太郎            -> 山* **
//	090-1234-5678        -> ***-****-5678
//	taro@example.com     -> t***@e******.com
//	1990-04-01 (a date)  -> ****-**-**
//
// The shape of the value (its length, its separators) is kept so a masked list still
// reads like a list; nothing that would identify a person is.

// Mask masks a personal value, choosing the rule by what the value looks like.
func Mask(v string) string {
	v = strings.TrimSpace(v)
	switch {
	case v == "":
		return ""
	case looksLikeEmail(v):
		return MaskEmail(v)
	case looksLikeDate(v), looksLikeNumber(v):
		return maskAll(v, func(r rune) bool { return unicode.IsDigit(r) })
	case looksLikePhone(v):
		return MaskPhone(v)
	}
	return MaskName(v)
}

// MaskName keeps the first character of the first word and masks every other letter;
// spaces (half- or full-width) stay, so the number of words shows.
func MaskName(v string) string {
	var b strings.Builder
	first := true
	for _, r := range v {
		switch {
		case unicode.IsSpace(r):
			b.WriteRune(r)
		case first:
			b.WriteRune(r)
			first = false
		default:
			b.WriteByte('*')
		}
	}
	return b.String()
}

// MaskPhone keeps the last four digits and the separators.
func MaskPhone(v string) string {
	digits := 0
	for _, r := range v {
		if unicode.IsDigit(r) {
			digits++
		}
	}
	var b strings.Builder
	seen := 0
	for _, r := range v {
		if unicode.IsDigit(r) {
			seen++
			if seen <= digits-4 {
				b.WriteByte('*')
				continue
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}

// MaskEmail keeps the first character of the mailbox and of the domain, and the top-level
// domain.
func MaskEmail(v string) string {
	local, domain, ok := strings.Cut(v, "@")
	if !ok {
		return MaskName(v)
	}
	tld := ""
	if i := strings.LastIndexByte(domain, '.'); i > 0 {
		domain, tld = domain[:i], domain[i:]
	}
	return keepFirst(local) + "@" + keepFirst(domain) + tld
}

func keepFirst(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if size == 0 {
		return ""
	}
	return string(r) + strings.Repeat("*", utf8.RuneCountInString(s[size:]))
}

func maskAll(v string, secret func(rune) bool) string {
	var b strings.Builder
	for _, r := range v {
		if secret(r) {
			b.WriteByte('*')
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func looksLikeEmail(v string) bool {
	if strings.ContainsAny(v, " \t") || strings.Count(v, "@") != 1 {
		return false
	}
	_, err := mail.ParseAddress(v)
	return err == nil
}

// looksLikePhone: seven or more digits with only phone punctuation around them.
func looksLikePhone(v string) bool {
	digits := 0
	for _, r := range v {
		switch {
		case unicode.IsDigit(r):
			digits++
		case strings.ContainsRune("+-() ‐－ー", r):
		default:
			return false
		}
	}
	return digits >= 7
}

// looksLikeNumber: an age, a count, an amount; even its first digit tells too much.
func looksLikeNumber(v string) bool {
	v = strings.TrimPrefix(v, "-")
	for _, r := range v {
		if !unicode.IsDigit(r) && r != '.' && r != ',' {
			return false
		}
	}
	return v != ""
}

// looksLikeDate: YYYY-MM-DD or YYYY/MM/DD.
func looksLikeDate(v string) bool {
	if len(v) != 10 || (v[4] != '-' && v[4] != '/') || v[7] != v[4] {
		return false
	}
	for i, c := range []byte(v) {
		if i != 4 && i != 7 && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
