// Package staff owns the people who use the console: their accounts and roles, how they
// sign in (passwords, one-time links, TOTP two-factor with recovery codes), their
// sessions, the throttling of guessing, and the history of sign-ins with the suspicious
// ones flagged. Nothing secret is stored as given: passwords as Argon2id hashes, tokens and
// recovery codes as SHA-256, TOTP secrets sealed under the master key. No password, code,
// token or secret ever appears in a log line or an error message.
//
// The package decides how to sign in; what a role may do is decided by its callers.
package staff

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/keyring"
	"github.com/linestep/linestep/internal/store"
)

// Role is what a staff member may do. Besides the four built-in roles there will be
// custom ones, so any non-empty name is a role here.
type Role string

const (
	Owner    Role = "owner"
	Admin    Role = "admin"
	Operator Role = "operator"
	Analyst  Role = "analyst"
)

var (
	// ErrInvalidToken is returned for an unknown, used, expired or ended token. One error
	// for all cases: a caller learns nothing about which tokens exist.
	ErrInvalidToken = errors.New("staff: invalid or expired token")
	// ErrBadCredentials is the one answer to a failed sign-in, whether the login is
	// unknown, the password wrong, the account disabled or the login locked, so that an
	// attacker learns nothing about which logins exist or whether guessing still works.
	ErrBadCredentials = errors.New("staff: wrong login or password")
	// ErrBadCode is returned for a second-factor code that is wrong or was already used.
	ErrBadCode = errors.New("staff: wrong or already used code")
	// ErrSecondFactorRequired is returned where a code is needed and none was given.
	ErrSecondFactorRequired = errors.New("staff: a two-factor code is required")
	// ErrNoKeyring is returned by two-factor set-up when the service has no master key to
	// seal secrets with.
	ErrNoKeyring = errors.New("staff: no master key to seal two-factor secrets")
	// ErrNoPendingTOTP is returned by ConfirmTOTP when no set-up is under way (none begun,
	// expired, or replaced by a newer one).
	ErrNoPendingTOTP = errors.New("staff: no two-factor set-up under way")
	// ErrTOTPNotEnabled is returned for recovery codes of a member without two-factor.
	ErrTOTPNotEnabled = errors.New("staff: two-factor sign-in is not enabled")
	// ErrReauthRequired is returned for an act that needs a recent Reauthenticate.
	ErrReauthRequired = errors.New("staff: confirm your password first")
	// ErrLoginTaken is returned when a new member's login is already in use.
	ErrLoginTaken = errors.New("staff: login already in use")
	// ErrRestricted is returned by Session for a session that may only finish signing in
	// (change the password, set up two-factor). It matches ErrInvalidToken too, so a
	// caller that only knows full sessions treats it as no session at all.
	ErrRestricted error = restrictedError{}
)

type restrictedError struct{}

func (restrictedError) Error() string        { return "staff: session is limited to finishing sign-in" }
func (restrictedError) Is(target error) bool { return target == ErrInvalidToken }

// Member is a staff account.
type Member struct {
	ID        int64
	Login     string
	Name      string
	Role      Role
	CreatedAt time.Time
	// DisabledAt is when the account was disabled; zero for an active one.
	DisabledAt time.Time
	// HasPassword is false for a member invited by link who has not set one yet.
	HasPassword        bool
	MustChangePassword bool
	PasswordChangedAt  time.Time
	TOTPEnabled        bool
}

// Disabled reports whether the account is disabled.
func (m Member) Disabled() bool { return !m.DisabledAt.IsZero() }

// Session lifetimes: an idle session ends after IdleTimeout, any session after
// AbsoluteTimeout, whatever its activity.
const (
	IdleTimeout     = 30 * time.Minute
	AbsoluteTimeout = 12 * time.Hour
	// touchEvery limits writes: a busy session updates last_seen at most this often.
	touchEvery = time.Minute
)

// Service manages staff accounts, sign-in and sessions. Set its exported fields when
// wiring, before use.
type Service struct {
	db    *store.DB
	clock clock.Clock

	// Keys seals TOTP secrets. Without it two-factor set-up fails with ErrNoKeyring.
	Keys *keyring.Keyring
	// Logger receives operational messages (never a secret).
	Logger *slog.Logger
	// Notifier, if set, is told of every suspicious sign-in once it is recorded.
	Notifier Notifier
	// RequireTOTP says whether members of a role must use two-factor sign-in; those
	// without it are signed in only to set it up. DefaultRequireTOTP unless changed.
	RequireTOTP func(Role) bool
	// Hashing is the Argon2id cost for new hashes; hashes with other parameters are
	// rehashed at the next successful sign-in. DefaultParams unless changed.
	Hashing Params
	// Issuer names the service in authenticator apps.
	Issuer string
	// Audit, if set, receives an audit record of every sign-in, second-factor and
	// re-authentication outcome (success or failure), inside the transaction that records
	// the attempt in the sign-in history: the two commit together.
	Audit audit.AppendFunc

	// hashSlots bounds concurrent Argon2 computations: each takes Hashing.Memory, and a
	// flood of sign-in attempts must not take the server's memory with it.
	hashSlots chan struct{}
	dummies   sync.Map // Params -> a hash to verify against when there is no real one
	notifying sync.WaitGroup
}

// NewService returns a staff service.
func NewService(db *store.DB, clk clock.Clock) *Service {
	return &Service{
		db: db, clock: clk,
		Logger:      slog.Default(),
		RequireTOTP: DefaultRequireTOTP,
		Hashing:     DefaultParams,
		Issuer:      "linestep",
		hashSlots:   make(chan struct{}, max(1, min(runtime.GOMAXPROCS(0), 4))),
	}
}

// DefaultRequireTOTP requires two-factor sign-in of owners and admins: they can see and
// change everything, including who else may.
func DefaultRequireTOTP(r Role) bool { return r == Owner || r == Admin }

func (s *Service) requireTOTP(r Role) bool {
	if s.RequireTOTP == nil {
		return DefaultRequireTOTP(r)
	}
	return s.RequireTOTP(r)
}

// WaitNotifications waits until every notification under way has been sent or has
// failed; for shutdown and tests.
func (s *Service) WaitNotifications() { s.notifying.Wait() }

// EnsureOwner returns the owner account with this login, creating it if there is none.
func (s *Service) EnsureOwner(ctx context.Context, login, name string) (Member, bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO staff (login, name, role, created_at) VALUES (?, ?, 'owner', ?)
		ON CONFLICT (login) DO NOTHING`, login, name, store.Millis(s.clock.Now()))
	if err != nil {
		return Member{}, false, fmt.Errorf("staff: create owner: %w", err)
	}
	n, _ := res.RowsAffected()
	m, err := s.byLogin(ctx, s.db, login)
	return m, n > 0, err
}

// Count reports how many staff accounts exist (none: the installation is new).
func (s *Service) Count(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM staff WHERE disabled_at IS NULL").Scan(&n); err != nil {
		return 0, fmt.Errorf("staff: count: %w", err)
	}
	return n, nil
}

// memberColumns are the columns scanMember reads, from staff aliased st.
const memberColumns = `st.id, st.login, st.name, st.role, st.created_at, st.disabled_at, st.password_hash <> '',
	st.must_change_password, st.password_changed_at, st.totp_enabled_at IS NOT NULL`

type scanner interface{ Scan(dest ...any) error }

// scanMember reads memberColumns, then extra columns into extra.
func scanMember(row scanner, extra ...any) (Member, error) {
	var m Member
	var role string
	var created int64
	var disabled, changed sql.NullInt64
	dest := append([]any{&m.ID, &m.Login, &m.Name, &role, &created, &disabled, &m.HasPassword,
		&m.MustChangePassword, &changed, &m.TOTPEnabled}, extra...)
	if err := row.Scan(dest...); err != nil {
		return Member{}, err
	}
	m.Role, m.CreatedAt = Role(role), store.Time(created)
	m.DisabledAt, m.PasswordChangedAt = store.NullTime(disabled), store.NullTime(changed)
	return m, nil
}

func (s *Service) byLogin(ctx context.Context, q store.Querier, login string) (Member, error) {
	m, err := scanMember(q.QueryRowContext(ctx, "SELECT "+memberColumns+" FROM staff st WHERE st.login = ?", login))
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, fmt.Errorf("staff login: %w", store.ErrNotFound)
	}
	if err != nil {
		return Member{}, fmt.Errorf("staff: get: %w", err)
	}
	return m, nil
}

func (s *Service) byID(ctx context.Context, q store.Querier, id int64) (Member, error) {
	m, err := scanMember(q.QueryRowContext(ctx, "SELECT "+memberColumns+" FROM staff st WHERE st.id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, fmt.Errorf("staff %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return Member{}, fmt.Errorf("staff: get: %w", err)
	}
	return m, nil
}

// NormalizeLogin is how logins are compared and stored: NFKC (full-width letters typed
// with a Japanese input method become ASCII), trimmed, lower-cased.
func NormalizeLogin(login string) string {
	return strings.ToLower(strings.TrimSpace(norm.NFKC.String(login)))
}

// Client is who is on the other end of a request: the address (without port) and the
// browser's User-Agent, as the web layer saw them.
type Client struct {
	Addr      string
	UserAgent string
}

// clean makes a client safe to store: valid UTF-8 without NUL (PostgreSQL refuses
// either in text), cut to a sane length.
func (c Client) clean() Client {
	return Client{Addr: cleanText(c.Addr, 100), UserAgent: cleanText(c.UserAgent, 300)}
}

// newToken returns a random token (256 bits, URL-safe) and the hash that is stored.
func newToken() (string, []byte) {
	b := make([]byte, 32)
	rand.Read(b)
	t := base64.RawURLEncoding.EncodeToString(b)
	return t, hashToken(t)
}

func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

// newPublicID returns a session's public name: random, unrelated to its token.
func newPublicID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// cleanText returns s as valid UTF-8 without NUL, cut to at most n bytes on a character
// boundary.
func cleanText(s string, n int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
