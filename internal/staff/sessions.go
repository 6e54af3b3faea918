package staff

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// Restriction limits a session to finishing sign-in: the console shows it only the page
// named, until that is done.
type Restriction string

const (
	Unrestricted Restriction = ""
	// RestrictChangePassword: the password must be changed (or, for a member invited by
	// link, set) first.
	RestrictChangePassword Restriction = "change_password"
	// RestrictEnrolTOTP: the role requires two-factor sign-in and none is set up.
	RestrictEnrolTOTP Restriction = "enrol_totp"
)

// ReauthWindow is how recent a sign-in or re-authentication must be for sensitive acts
// (changing roles, disabling two-factor, exporting): pass it to RecentlyAuthenticated.
const ReauthWindow = 5 * time.Minute

// Current is a live session and its member.
type Current struct {
	Member
	// SessionID is the session's public name (for lists, and to end it); it cannot be
	// used to sign in.
	SessionID   string
	Restriction Restriction
	// MFA says a second factor was proven in this session, and Factor the last factor.
	MFA    bool
	Factor Factor
	// AuthenticatedAt is when the person last proved who they are in this session: at
	// sign-in, then at each Reauthenticate.
	AuthenticatedAt time.Time
	SignedInAt      time.Time
	LastSeenAt      time.Time
}

// SessionInfo describes one of a member's live sessions.
type SessionInfo struct {
	ID         string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ClientAddr string
	UserAgent  string
	Factor     Factor
	MFA        bool
	// Current is the session the list was asked from.
	Current bool
}

// openSession starts a session for m and returns its token. A new token every time: a
// token known before sign-in (session fixation) is never promoted.
func (s *Service) openSession(ctx context.Context, tx *store.Tx, m Member, c Client, factor Factor, mfa bool, r Restriction, now time.Time) (string, error) {
	token, hash := newToken()
	nowMs := store.Millis(now)
	_, err := tx.ExecContext(ctx, `INSERT INTO staff_sessions (token_hash, public_id, staff_id, created_at, last_seen_at, expires_at,
		client_addr, user_agent, factor, mfa, restriction, authenticated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, hash, newPublicID(), m.ID, nowMs, nowMs, store.Millis(now.Add(AbsoluteTimeout)),
		c.Addr, c.UserAgent, factor, mfa, r, nowMs)
	if err != nil {
		return "", fmt.Errorf("staff: open session: %w", err)
	}
	return token, nil
}

// restrictionFor says what a new session of m must do first.
func (s *Service) restrictionFor(m Member) Restriction {
	switch {
	case !m.HasPassword || m.MustChangePassword:
		return RestrictChangePassword
	case s.requireTOTP(m.Role) && !m.TOTPEnabled:
		return RestrictEnrolTOTP
	}
	return Unrestricted
}

// Current returns the live session of a token, restricted or not, enforcing the idle and
// absolute timeouts, and records the activity. The web layer uses it to decide what a
// restricted session may see; pages for fully signed-in members use Session.
func (s *Service) Current(ctx context.Context, token string) (Current, error) {
	if token == "" {
		return Current{}, ErrInvalidToken
	}
	now := s.clock.Now()
	hash := hashToken(token)
	var c Current
	var created, lastSeen int64
	var authAt sql.NullInt64
	m, err := scanMember(s.db.QueryRowContext(ctx, `SELECT `+memberColumns+`, ss.public_id, ss.restriction, ss.mfa, ss.factor,
		ss.authenticated_at, ss.created_at, ss.last_seen_at
		FROM staff_sessions ss JOIN staff st ON st.id = ss.staff_id
		WHERE ss.token_hash = ? AND ss.ended_at IS NULL AND ss.expires_at > ? AND st.disabled_at IS NULL`,
		hash, store.Millis(now)), &c.SessionID, &c.Restriction, &c.MFA, &c.Factor, &authAt, &created, &lastSeen)
	if errors.Is(err, sql.ErrNoRows) {
		return Current{}, ErrInvalidToken
	}
	if err != nil {
		return Current{}, fmt.Errorf("staff: session: %w", err)
	}
	if now.Sub(store.Time(lastSeen)) > IdleTimeout {
		return Current{}, ErrInvalidToken
	}
	if now.Sub(store.Time(lastSeen)) > touchEvery {
		if _, err := s.db.ExecContext(ctx, "UPDATE staff_sessions SET last_seen_at = ? WHERE token_hash = ?", store.Millis(now), hash); err != nil {
			return Current{}, fmt.Errorf("staff: touch session: %w", err)
		}
		lastSeen = store.Millis(now)
	}
	c.Member, c.AuthenticatedAt = m, store.NullTime(authAt)
	c.SignedInAt, c.LastSeenAt = store.Time(created), store.Time(lastSeen)
	return c, nil
}

// Session returns the member signed in with a session token, enforcing the idle and
// absolute timeouts, and records the activity. A session limited to finishing sign-in
// gives ErrRestricted (which also matches ErrInvalidToken).
func (s *Service) Session(ctx context.Context, token string) (Member, error) {
	c, err := s.Current(ctx, token)
	if err != nil {
		return Member{}, err
	}
	if c.Restriction != Unrestricted {
		return Member{}, ErrRestricted
	}
	return c.Member, nil
}

// RecentlyAuthenticated reports whether the session's holder proved who they are within
// the last within (see ReauthWindow); if not, ask for Reauthenticate first.
func (s *Service) RecentlyAuthenticated(c Current, within time.Duration) bool {
	return !c.AuthenticatedAt.IsZero() && s.clock.Now().Sub(c.AuthenticatedAt) <= within
}

// EndSession signs a session out.
// also runs only if a live session was ended.
func (s *Service) EndSession(ctx context.Context, token string, also ...Also) error {
	return s.db.WriteTx(ctx, func(tx *store.Tx) error {
		var staffID int64
		err := tx.QueryRowContext(ctx, "UPDATE staff_sessions SET ended_at = ? WHERE token_hash = ? AND ended_at IS NULL RETURNING staff_id",
			store.Millis(s.clock.Now()), hashToken(token)).Scan(&staffID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("staff: end session: %w", err)
		}
		if len(also) == 0 {
			return nil
		}
		m, err := s.byID(ctx, tx, staffID)
		if err != nil {
			return err
		}
		return runAlso(tx, m, also)
	})
}

// ListSessions returns a member's live sessions, most recently active first; current is
// the token of the session asking (may be empty), marked Current in the list.
func (s *Service) ListSessions(ctx context.Context, staffID int64, current string) ([]SessionInfo, error) {
	now := s.clock.Now()
	rows, err := s.db.QueryContext(ctx, `SELECT token_hash, public_id, created_at, last_seen_at, client_addr, user_agent, factor, mfa
		FROM staff_sessions WHERE staff_id = ? AND ended_at IS NULL AND expires_at > ? AND last_seen_at >= ?
		ORDER BY last_seen_at DESC, created_at DESC`, staffID, store.Millis(now), store.Millis(now.Add(-IdleTimeout)))
	if err != nil {
		return nil, fmt.Errorf("staff: list sessions: %w", err)
	}
	defer rows.Close()
	currentHash := hashToken(current)
	var out []SessionInfo
	for rows.Next() {
		var si SessionInfo
		var hash []byte
		var created, lastSeen int64
		if err := rows.Scan(&hash, &si.ID, &created, &lastSeen, &si.ClientAddr, &si.UserAgent, &si.Factor, &si.MFA); err != nil {
			return nil, fmt.Errorf("staff: list sessions: %w", err)
		}
		si.CreatedAt, si.LastSeenAt = store.Time(created), store.Time(lastSeen)
		si.Current = current != "" && string(hash) == string(currentHash)
		out = append(out, si)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("staff: list sessions: %w", err)
	}
	return out, nil
}

// EndSessionByID ends one of a member's sessions by its public id (from ListSessions).
// The member is part of the key: nobody ends another's session by guessing an id. It
// returns store.ErrNotFound if there is no such live session.
func (s *Service) EndSessionByID(ctx context.Context, staffID int64, sessionID string, also ...Also) error {
	return s.db.WriteTx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE staff_sessions SET ended_at = ? WHERE staff_id = ? AND public_id = ? AND ended_at IS NULL",
			store.Millis(s.clock.Now()), staffID, sessionID)
		if err != nil {
			return fmt.Errorf("staff: end session: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("staff: session: %w", store.ErrNotFound)
		}
		if len(also) == 0 {
			return nil
		}
		m, err := s.byID(ctx, tx, staffID)
		if err != nil {
			return err
		}
		return runAlso(tx, m, also)
	})
}

// EndAllSessions signs a member out everywhere, the current session included ("sign out
// everywhere", or an admin ending another member's sessions), and drops their pending
// second-factor sign-ins. It returns how many sessions it ended.
func (s *Service) EndAllSessions(ctx context.Context, staffID int64, also ...Also) (int64, error) {
	var n int64
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		m, err := s.byID(ctx, tx, staffID)
		if err != nil {
			return err
		}
		if n, err = endSessions(ctx, tx, staffID, nil, s.clock.Now()); err != nil {
			return err
		}
		return runAlso(tx, m, also)
	})
	return n, err
}

// EndOtherSessions ends every session of the token's member but that one.
func (s *Service) EndOtherSessions(ctx context.Context, token string) (int64, error) {
	c, err := s.Current(ctx, token)
	if err != nil {
		return 0, err
	}
	var n int64
	err = s.db.WriteTx(ctx, func(tx *store.Tx) error {
		n, err = endSessions(ctx, tx, c.ID, hashToken(token), s.clock.Now())
		return err
	})
	return n, err
}

// endSessions ends a member's sessions except the one with hash keep (nil: all), and
// their pending sign-ins.
func endSessions(ctx context.Context, tx *store.Tx, staffID int64, keep []byte, now time.Time) (int64, error) {
	nowMs := store.Millis(now)
	q, args := "UPDATE staff_sessions SET ended_at = ? WHERE staff_id = ? AND ended_at IS NULL", []any{nowMs, staffID}
	if keep != nil {
		q, args = q+" AND token_hash <> ?", append(args, keep)
	}
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("staff: end sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, "UPDATE staff_pending_signins SET used_at = ? WHERE staff_id = ? AND used_at IS NULL", nowMs, staffID); err != nil {
		return 0, fmt.Errorf("staff: end pending sign-ins: %w", err)
	}
	return n, nil
}
