package staff

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ccojocar/zxcvbn-go"
	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"

	"github.com/linestep/linestep/internal/message"
)

// Params are Argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over the memory
	Threads uint8
	KeyLen  uint32 // bytes of hash
}

// DefaultParams: 64 MiB, 2 passes, 1 lane. OWASP's floor is 19 MiB with 2 passes; memory
// is what makes guessing on GPUs expensive, so we take over three times that. It costs
// about 0.1 s on one core of the 2-core reference machine; a shop has ten staff at most
// and they sign in a few times a day, so the cost is felt only by someone guessing.
// Concurrent hashes are bounded (Service.hashSlots), so a flood of attempts holds at most
// a few times 64 MiB. One lane: the server gains nothing from spreading one hash over its
// cores while other requests want them too.
var DefaultParams = Params{Memory: 64 * 1024, Time: 2, Threads: 1, KeyLen: 32}

const saltLen = 16

// Password rules (NIST SP 800-63B 3.1.1.2): length, not a known common password, not
// derived from the account; no composition rules, no periodic change.
const (
	MinPasswordRunes = 12
	MaxPasswordRunes = 128
)

// errMalformedHash is returned for a stored hash that is not an Argon2id PHC string.
var errMalformedHash = errors.New("staff: stored password hash is malformed")

// normalizePassword applies NFKC before anything else looks at a password, as NIST asks
// of Unicode passwords: the same characters typed through different input methods
// (full-width or half-width forms in Japanese) are then the same password.
func normalizePassword(pw string) string { return norm.NFKC.String(pw) }

// encodeHash returns the PHC string of an Argon2id hash of password with params p:
// $argon2id$v=19$m=65536,t=2,p=1$<salt>$<hash>, so the parameters travel with the hash.
func encodeHash(password string, p Params) string {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// decodeHash parses a PHC string written by encodeHash.
func decodeHash(encoded string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return Params{}, nil, nil, errMalformedHash
	}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return Params{}, nil, nil, errMalformedHash
		}
		switch k {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > 255 {
				return Params{}, nil, nil, errMalformedHash
			}
			p.Threads = uint8(n)
		default:
			return Params{}, nil, nil, errMalformedHash
		}
	}
	// Bounds: a hash read from the database decides how much memory we allocate.
	if p.Memory < 8 || p.Memory > 4*1024*1024 || p.Time < 1 || p.Time > 100 || p.Threads < 1 {
		return Params{}, nil, nil, errMalformedHash
	}
	if salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return Params{}, nil, nil, errMalformedHash
	}
	if key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(key) < 16 || len(key) > 128 {
		return Params{}, nil, nil, errMalformedHash
	}
	p.KeyLen = uint32(len(key))
	return p, salt, key, nil
}

// verifyHash reports whether password matches encoded, and whether encoded was made with
// parameters other than want (then it should be rehashed).
func verifyHash(encoded, password string, want Params) (ok, stale bool, err error) {
	p, salt, key, err := decodeHash(encoded)
	if err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(got, key) == 1, p != want, nil
}

// slot waits for a free hashing slot; release it with the returned function.
func (s *Service) slot(ctx context.Context) (func(), error) {
	select {
	case s.hashSlots <- struct{}{}:
		return func() { <-s.hashSlots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// hashPassword hashes a (normalized) password with the current parameters.
func (s *Service) hashPassword(ctx context.Context, password string) (string, error) {
	release, err := s.slot(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return encodeHash(password, s.Hashing), nil
}

// checkPassword verifies a (normalized) password against a stored hash. With no hash (an
// unknown login, a member without a password) it verifies against a dummy hash of the
// same cost and fails, so that the answer takes as long as for a real account.
func (s *Service) checkPassword(ctx context.Context, encoded, password string) (ok, stale bool, err error) {
	release, err := s.slot(ctx)
	if err != nil {
		return false, false, err
	}
	defer release()
	if encoded == "" {
		verifyHash(s.dummyHash(), password, s.Hashing)
		return false, false, nil
	}
	ok, stale, err = verifyHash(encoded, password, s.Hashing)
	if err != nil {
		return false, false, err
	}
	return ok, stale, nil
}

func (s *Service) dummyHash() string {
	if h, ok := s.dummies.Load(s.Hashing); ok {
		return h.(string)
	}
	b := make([]byte, 16)
	rand.Read(b)
	h, _ := s.dummies.LoadOrStore(s.Hashing, encodeHash(string(b), s.Hashing))
	return h.(string)
}

// guessable reports whether a password falls to an offline guessing attack, by zxcvbn's
// estimate: it knows breached-password lists, dictionaries, names, keyboard walks,
// repeats, sequences, dates and the member's own login and name. A score under 3 means
// fewer than 10^10 guesses, which a leaked hash does not survive for long. This is the
// "known, expected or compromised" check of NIST SP 800-63B, not a composition rule.
func guessable(pw string, context []string) bool {
	if utf8.RuneCountInString(pw) > 100 {
		return false // its matcher is quadratic; a passphrase this long is not guessable
	}
	return zxcvbn.PasswordStrength(pw, context).Score < 3
}

// CheckPassword applies the password policy to a new password for the member with this
// login and name. It returns nil or message.Problems (path "password") with the reasons in
// Japanese and English. Lengths count characters after NFKC normalization.
func CheckPassword(password, login, name string) error {
	pw := normalizePassword(password)
	var ps message.Problems
	add := func(ja, en string) { ps = append(ps, message.Problem{Path: "password", JA: ja, EN: en}) }
	n := utf8.RuneCountInString(pw)
	switch {
	case n < MinPasswordRunes:
		add(fmt.Sprintf("パスワードは%d文字以上にしてください。", MinPasswordRunes),
			fmt.Sprintf("Use at least %d characters.", MinPasswordRunes))
	case n > MaxPasswordRunes:
		add(fmt.Sprintf("パスワードは%d文字以内にしてください。", MaxPasswordRunes),
			fmt.Sprintf("Use at most %d characters.", MaxPasswordRunes))
	}
	lower := strings.ToLower(pw)
	switch {
	case n < MinPasswordRunes:
	case repeatsOneCharacter(lower):
		add("同じ文字の繰り返しだけのパスワードは使えません。",
			"The password must not be a single character repeated.")
	case guessable(lower, []string{NormalizeLogin(login), strings.ToLower(name), "linestep"}):
		add("よく使われている、または推測されやすいパスワードです（単語や名前、キーボードの並び、連続した文字、日付の組み合わせなど）。別のものにしてください。",
			"This password is common or easy to guess (words, names, keyboard runs, sequences or dates put together); choose another.")
	}
	if l := NormalizeLogin(login); utf8.RuneCountInString(l) >= 3 && strings.Contains(lower, l) {
		add("ログインIDを含むパスワードは使えません。", "The password must not contain your login.")
	}
	if nameIn(lower, name) {
		add("名前を含むパスワードは使えません。", "The password must not contain your name.")
	}
	if len(ps) == 0 {
		return nil
	}
	return ps
}

func repeatsOneCharacter(s string) bool {
	first, _ := utf8.DecodeRuneInString(s)
	return strings.Trim(s, string(first)) == ""
}

// nameIn reports whether pw contains the name: whole (without spaces), two neighbouring
// parts together, or any part of three characters or more. "Taro Yamada" refuses
// "yamada..." and "taroyamada..."; "山田 花子" refuses "山田花子..." (but not every
// password with "山田" in it: two characters are too common to refuse).
func nameIn(pw, name string) bool {
	name = strings.ToLower(normalizePassword(name))
	parts := strings.FieldsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || r == '・' })
	candidates := []string{strings.Join(parts, "")}
	for i, p := range parts {
		candidates = append(candidates, p)
		if i > 0 {
			candidates = append(candidates, parts[i-1]+p)
		}
	}
	for _, c := range candidates {
		if utf8.RuneCountInString(c) >= 3 && strings.Contains(pw, c) {
			return true
		}
	}
	return false
}
