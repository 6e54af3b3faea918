// Package staff owns the people who use the console: their accounts, one-time sign-in
// links and sessions. Tokens are random and only their SHA-256 is stored, so a copy of the
// database cannot be used to sign in.
package staff

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/store"
)

// Role is what a staff member may do.
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
)

// Member is a staff account.
type Member struct {
	ID        int64
	Login     string
	Name      string
	Role      Role
	CreatedAt time.Time
}

// Session lifetimes: an idle session ends after IdleTimeout, any session after
// AbsoluteTimeout, whatever its activity.
const (
	IdleTimeout     = 30 * time.Minute
	AbsoluteTimeout = 12 * time.Hour
	// touchEvery limits writes: a busy session updates last_seen at most this often.
	touchEvery = time.Minute
)

// Service manages staff accounts and sessions.
type Service struct {
	db    *store.DB
	clock clock.Clock
}

// NewService returns a staff service.
func NewService(db *store.DB, clk clock.Clock) *Service { return &Service{db: db, clock: clk} }

// EnsureOwner returns the owner account with this login, creating it if there is none.
func (s *Service) EnsureOwner(ctx context.Context, login, name string) (Member, bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO staff (login, name, role, created_at) VALUES (?, ?, 'owner', ?)
		ON CONFLICT (login) DO NOTHING`, login, name, store.Millis(s.clock.Now()))
	if err != nil {
		return Member{}, false, fmt.Errorf("staff: create owner: %w", err)
	}
	n, _ := res.RowsAffected()
	m, err := s.byLogin(ctx, login)
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

func (s *Service) byLogin(ctx context.Context, login string) (Member, error) {
	var m Member
	var role string
	var created int64
	err := s.db.QueryRowContext(ctx, "SELECT id, login, name, role, created_at FROM staff WHERE login = ?", login).
		Scan(&m.ID, &m.Login, &m.Name, &role, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, fmt.Errorf("staff %q: %w", login, store.ErrNotFound)
	}
	if err != nil {
		return Member{}, fmt.Errorf("staff: get: %w", err)
	}
	m.Role, m.CreatedAt = Role(role), store.Time(created)
	return m, nil
}

// IssueLoginLink creates a one-time sign-in token for a staff member, valid for ttl.
func (s *Service) IssueLoginLink(ctx context.Context, staffID int64, ttl time.Duration) (string, error) {
	token, hash := newToken()
	now := s.clock.Now()
	_, err := s.db.ExecContext(ctx, `INSERT INTO staff_login_links (token_hash, staff_id, created_at, expires_at) VALUES (?, ?, ?, ?)`,
		hash, staffID, store.Millis(now), store.Millis(now.Add(ttl)))
	if err != nil {
		return "", fmt.Errorf("staff: issue login link: %w", err)
	}
	return token, nil
}

// RedeemLoginLink uses a one-time token (once) and opens a session, returning its token.
func (s *Service) RedeemLoginLink(ctx context.Context, token, clientAddr, userAgent string) (string, Member, error) {
	now := s.clock.Now()
	nowMs := store.Millis(now)
	var sessionToken string
	var member Member
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		var staffID int64
		// Marking it used in the same statement that finds it: two redemptions racing
		// cannot both succeed.
		err := tx.QueryRowContext(ctx, `UPDATE staff_login_links SET used_at = ?
			WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING staff_id`,
			nowMs, hashToken(token), nowMs).Scan(&staffID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrInvalidToken
		}
		if err != nil {
			return fmt.Errorf("staff: redeem link: %w", err)
		}
		var role string
		var created int64
		err = tx.QueryRowContext(ctx, "SELECT id, login, name, role, created_at FROM staff WHERE id = ? AND disabled_at IS NULL", staffID).
			Scan(&member.ID, &member.Login, &member.Name, &role, &created)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrInvalidToken
		}
		if err != nil {
			return fmt.Errorf("staff: redeem link: %w", err)
		}
		member.Role, member.CreatedAt = Role(role), store.Time(created)
		var hash []byte
		sessionToken, hash = newToken()
		_, err = tx.ExecContext(ctx, `INSERT INTO staff_sessions (token_hash, staff_id, created_at, last_seen_at, expires_at, client_addr, user_agent)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, hash, staffID, nowMs, nowMs, store.Millis(now.Add(AbsoluteTimeout)),
			truncate(clientAddr, 100), truncate(userAgent, 300))
		if err != nil {
			return fmt.Errorf("staff: open session: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", Member{}, err
	}
	return sessionToken, member, nil
}

// Session returns the member signed in with a session token, enforcing the idle and
// absolute timeouts, and records the activity.
func (s *Service) Session(ctx context.Context, token string) (Member, error) {
	if token == "" {
		return Member{}, ErrInvalidToken
	}
	now := s.clock.Now()
	hash := hashToken(token)
	var m Member
	var role string
	var created, lastSeen int64
	err := s.db.QueryRowContext(ctx, `SELECT st.id, st.login, st.name, st.role, st.created_at, ss.last_seen_at
		FROM staff_sessions ss JOIN staff st ON st.id = ss.staff_id
		WHERE ss.token_hash = ? AND ss.ended_at IS NULL AND ss.expires_at > ? AND st.disabled_at IS NULL`,
		hash, store.Millis(now)).Scan(&m.ID, &m.Login, &m.Name, &role, &created, &lastSeen)
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, ErrInvalidToken
	}
	if err != nil {
		return Member{}, fmt.Errorf("staff: session: %w", err)
	}
	if now.Sub(store.Time(lastSeen)) > IdleTimeout {
		return Member{}, ErrInvalidToken
	}
	if now.Sub(store.Time(lastSeen)) > touchEvery {
		if _, err := s.db.ExecContext(ctx, "UPDATE staff_sessions SET last_seen_at = ? WHERE token_hash = ?", store.Millis(now), hash); err != nil {
			return Member{}, fmt.Errorf("staff: touch session: %w", err)
		}
	}
	m.Role, m.CreatedAt = Role(role), store.Time(created)
	return m, nil
}

// EndSession signs a session out.
func (s *Service) EndSession(ctx context.Context, token string) error {
	_, err := s.db.ExecContext(ctx, "UPDATE staff_sessions SET ended_at = ? WHERE token_hash = ? AND ended_at IS NULL",
		store.Millis(s.clock.Now()), hashToken(token))
	if err != nil {
		return fmt.Errorf("staff: end session: %w", err)
	}
	return nil
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
