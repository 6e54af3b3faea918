package staff

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// IssueLoginLink creates a one-time sign-in token for a staff member, valid for ttl: the
// first owner's way in, and an invitation for a member who has no password yet.
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

// redeemLink uses a one-time token in tx and returns its (active) member.
func (s *Service) redeemLink(ctx context.Context, tx *store.Tx, token string, now time.Time) (Member, error) {
	nowMs := store.Millis(now)
	var staffID int64
	// Marking it used in the same statement that finds it: two redemptions racing
	// cannot both succeed.
	err := tx.QueryRowContext(ctx, `UPDATE staff_login_links SET used_at = ?
		WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING staff_id`,
		nowMs, hashToken(token), nowMs).Scan(&staffID)
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, ErrInvalidToken
	}
	if err != nil {
		return Member{}, fmt.Errorf("staff: redeem link: %w", err)
	}
	m, err := s.byID(ctx, tx, staffID)
	if errors.Is(err, store.ErrNotFound) || err == nil && m.Disabled() {
		return Member{}, ErrInvalidToken
	}
	return m, err
}

// SignInWithLink signs in with a one-time link, which stands in for the password: a
// member with two-factor sign-in is asked for a code next (NeedSecondFactor), a member
// without a password gets a session restricted to setting one (MustChangePassword), and
// so on, as for SignIn.
func (s *Service) SignInWithLink(ctx context.Context, token string, c Client) (Result, error) {
	now := s.clock.Now()
	c = c.clean()
	var res Result
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		m, err := s.redeemLink(ctx, tx, token, now)
		if err != nil {
			return err
		}
		res, err = s.firstFactorDone(ctx, tx, m, newAttempt(now, ActionSignIn, m.Login, c, FactorLink).forMember(m))
		return err
	})
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

// RedeemLoginLink uses a one-time token (once) and opens a full session, returning its
// token. It is the sign-in of the console before passwords and two-factor existed, kept
// for its callers: for a member with two-factor sign-in it refuses with
// ErrSecondFactorRequired and leaves the link unused. New code calls SignInWithLink,
// which also applies the password-change and two-factor requirements.
func (s *Service) RedeemLoginLink(ctx context.Context, token, clientAddr, userAgent string) (string, Member, error) {
	now := s.clock.Now()
	c := Client{Addr: clientAddr, UserAgent: userAgent}.clean()
	var sessionToken string
	var member Member
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		m, err := s.redeemLink(ctx, tx, token, now)
		if err != nil {
			return err
		}
		if m.TOTPEnabled {
			return ErrSecondFactorRequired // rolls back: the link stays usable
		}
		if sessionToken, err = s.openSession(ctx, tx, m, c, FactorLink, false, Unrestricted, now); err != nil {
			return err
		}
		member = m
		a := newAttempt(now, ActionSignIn, m.Login, c, FactorLink)
		a.Outcome = OutcomeSuccess
		return s.recordSuccess(ctx, tx, m, a)
	})
	if err != nil {
		return "", Member{}, err
	}
	return sessionToken, member, nil
}
