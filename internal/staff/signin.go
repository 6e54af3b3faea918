package staff

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// Status is where a sign-in stands.
type Status string

const (
	// SignedIn: a full session is open.
	SignedIn Status = "signed_in"
	// NeedSecondFactor: the first factor passed; call CompleteSecondFactor with the
	// pending token and a code.
	NeedSecondFactor Status = "second_factor"
	// MustChangePassword: a session limited to changing (or setting) the password is open.
	MustChangePassword Status = "change_password"
	// MustEnrolTOTP: a session limited to setting up two-factor sign-in is open.
	MustEnrolTOTP Status = "enrol_totp"
)

// Second-factor step limits.
const (
	// PendingTTL is how long a pending token waits for its code.
	PendingTTL = 5 * time.Minute
	// PendingAttempts is how many codes one pending token may try.
	PendingAttempts = 5
)

// Result is a sign-in step that went through.
type Result struct {
	Status Status
	Member Member
	// SessionToken is set for every status but NeedSecondFactor: put it in the session
	// cookie. For MustChangePassword and MustEnrolTOTP the session is restricted (see
	// Current.Restriction).
	SessionToken string
	// PendingToken is set for NeedSecondFactor: keep it (a short-lived cookie or a hidden
	// field) for CompleteSecondFactor. It expires at PendingExpiresAt.
	PendingToken     string
	PendingExpiresAt time.Time
}

func statusOf(r Restriction) Status {
	switch r {
	case RestrictChangePassword:
		return MustChangePassword
	case RestrictEnrolTOTP:
		return MustEnrolTOTP
	}
	return SignedIn
}

// SignIn checks a login and password. It answers ErrBadCredentials, the same error after
// about the same time, for an unknown login, a wrong password, a disabled account, a
// locked login or a throttled address. Otherwise the Result says what comes next. Every
// attempt is recorded; failures count towards locking the login and throttling the
// address.
func (s *Service) SignIn(ctx context.Context, login, password string, c Client) (Result, error) {
	now := s.clock.Now()
	c = c.clean()
	a := newAttempt(now, ActionSignIn, login, c, FactorPassword)
	locked, throttled, err := s.gate(ctx, s.db, a.LoginKey, a.AddrKey, now)
	if err != nil {
		return Result{}, err
	}
	if throttled {
		// Every login from this address gets this answer: no need to spend a hash on
		// keeping the timing alike, and a flood from it should cost us little.
		a.Outcome = OutcomeThrottled
		return Result{}, s.refuse(ctx, a)
	}
	m, hash, err := s.memberForSignIn(ctx, login)
	if err != nil {
		return Result{}, err
	}
	pw := normalizePassword(password)
	ok, stale, err := s.checkPassword(ctx, hash, pw)
	if err != nil {
		return Result{}, err
	}
	if m.ID != 0 {
		a = a.forMember(m)
	}
	switch {
	case locked:
		a.Outcome = OutcomeLocked
	case !ok:
		a.Outcome = OutcomeBadCredentials
	case m.Disabled():
		a.Outcome = OutcomeDisabled
	}
	if a.Outcome != "" {
		return Result{}, s.refuse(ctx, a)
	}
	rehash := ""
	if stale {
		if rehash, err = s.hashPassword(ctx, pw); err != nil {
			return Result{}, err
		}
	}
	var res Result
	err = s.db.WriteTx(ctx, func(tx *store.Tx) error {
		if rehash != "" {
			// Only if unchanged meanwhile: a password change wins over a rehash.
			if _, err := tx.ExecContext(ctx, "UPDATE staff SET password_hash = ? WHERE id = ? AND password_hash = ?", rehash, m.ID, hash); err != nil {
				return fmt.Errorf("staff: rehash password: %w", err)
			}
		}
		m := m
		forced, err := s.afterGoodPassword(ctx, tx, m, a)
		if err != nil {
			return err
		}
		m.MustChangePassword = m.MustChangePassword || forced
		res, err = s.firstFactorDone(ctx, tx, m, a)
		return err
	})
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

// refuse records a refused attempt and returns ErrBadCredentials.
func (s *Service) refuse(ctx context.Context, a attempt) error {
	if err := s.recordFailure(ctx, a); err != nil {
		return err
	}
	return ErrBadCredentials
}

// memberForSignIn finds the member a typed login names (ID 0 if none) and their
// password hash. Logins are stored normalized; one stored as given before that (the
// first owner's) is found when typed exactly.
func (s *Service) memberForSignIn(ctx context.Context, login string) (Member, string, error) {
	m, hash, err := s.memberAndHash(ctx, "st.login = ?", NormalizeLogin(login))
	if err == nil && m.ID == 0 && NormalizeLogin(login) != login {
		return s.memberAndHash(ctx, "st.login = ?", login)
	}
	return m, hash, err
}

// memberAndHash returns the member matching where (ID 0 if none) and their password hash.
func (s *Service) memberAndHash(ctx context.Context, where string, arg any) (Member, string, error) {
	var hash string
	m, err := scanMember(s.db.QueryRowContext(ctx, "SELECT "+memberColumns+", st.password_hash FROM staff st WHERE "+where, arg), &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, "", nil
	}
	if err != nil {
		return Member{}, "", fmt.Errorf("staff: sign in: %w", err)
	}
	return m, hash, nil
}

// firstFactorDone continues a sign-in whose first factor (password or link) passed:
// to the second factor if the member has one, else to a session, restricted if the
// member must first change the password or set up two-factor.
func (s *Service) firstFactorDone(ctx context.Context, tx *store.Tx, m Member, a attempt) (Result, error) {
	c := Client{Addr: a.ClientAddr, UserAgent: a.UserAgent}
	if m.TOTPEnabled {
		token, hash := newToken()
		expires := a.At.Add(PendingTTL)
		_, err := tx.ExecContext(ctx, `INSERT INTO staff_pending_signins (token_hash, staff_id, first_factor, created_at, expires_at, client_addr, user_agent)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, hash, m.ID, a.Factor, store.Millis(a.At), store.Millis(expires), c.Addr, c.UserAgent)
		if err != nil {
			return Result{}, fmt.Errorf("staff: start second factor: %w", err)
		}
		a.Outcome = OutcomeSecondFactor
		if err := s.record(ctx, tx, a.forMember(m)); err != nil {
			return Result{}, err
		}
		return Result{Status: NeedSecondFactor, Member: m, PendingToken: token, PendingExpiresAt: expires}, nil
	}
	r := s.restrictionFor(m)
	token, err := s.openSession(ctx, tx, m, c, a.Factor, false, r, a.At)
	if err != nil {
		return Result{}, err
	}
	a.Outcome = OutcomeSuccess
	if err := s.recordSuccess(ctx, tx, m, a); err != nil {
		return Result{}, err
	}
	return Result{Status: statusOf(r), Member: m, SessionToken: token}, nil
}

// CompleteSecondFactor finishes a sign-in that returned NeedSecondFactor, with a TOTP
// code or a recovery code. A wrong code gives ErrBadCode and counts as a failure
// towards the login's lock; the pending token then stays usable for a few more codes
// until it expires. A used, expired or exhausted token, or a locked login, gives
// ErrInvalidToken: sign in again.
func (s *Service) CompleteSecondFactor(ctx context.Context, pendingToken, code string, c Client) (Result, error) {
	now := s.clock.Now()
	c = c.clean()
	hash := hashToken(pendingToken)
	var staffID int64
	var first Factor
	// Counting the try in the statement that finds the token bounds the codes tried with
	// one token, however many requests race.
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		return tx.QueryRowContext(ctx, `UPDATE staff_pending_signins SET attempts = attempts + 1
			WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? AND attempts < ? RETURNING staff_id, first_factor`,
			hash, store.Millis(now), PendingAttempts).Scan(&staffID, &first)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return Result{}, ErrInvalidToken
	}
	if err != nil {
		return Result{}, fmt.Errorf("staff: second factor: %w", err)
	}
	m, err := s.byID(ctx, s.db, staffID)
	if err != nil {
		return Result{}, err
	}
	if m.Disabled() || !m.TOTPEnabled {
		return Result{}, ErrInvalidToken
	}
	a := newAttempt(now, ActionSecondFactor, m.Login, c, "").forMember(m)
	locked, throttled, err := s.gate(ctx, s.db, a.LoginKey, a.AddrKey, now)
	if err != nil {
		return Result{}, err
	}
	if locked || throttled {
		a.Outcome = OutcomeLocked
		if throttled {
			a.Outcome = OutcomeThrottled
		}
		err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, "UPDATE staff_pending_signins SET used_at = ? WHERE token_hash = ?", store.Millis(now), hash); err != nil {
				return fmt.Errorf("staff: drop pending sign-in: %w", err)
			}
			return s.record(ctx, tx, a)
		})
		if err != nil {
			return Result{}, err
		}
		return Result{}, ErrInvalidToken
	}
	v, err := s.codeVerifier(ctx, m, code, now)
	if err != nil {
		return Result{}, err
	}
	a.Factor = v.factor
	var res Result
	var bad bool
	err = s.db.WriteTx(ctx, func(tx *store.Tx) error {
		bad = false
		ok, err := v.use(ctx, tx)
		if err != nil {
			return err
		}
		if !ok {
			bad = true
			a.Outcome = OutcomeBadCode
			if err := s.record(ctx, tx, a); err != nil {
				return err
			}
			return s.afterFailure(ctx, tx, a)
		}
		r, err := tx.ExecContext(ctx, "UPDATE staff_pending_signins SET used_at = ? WHERE token_hash = ? AND used_at IS NULL", store.Millis(now), hash)
		if err != nil {
			return fmt.Errorf("staff: use pending sign-in: %w", err)
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return ErrInvalidToken // another request finished this sign-in first
		}
		rs := s.restrictionFor(m)
		if rs == RestrictEnrolTOTP {
			rs = Unrestricted // it is set up: this very code proves it
		}
		token, err := s.openSession(ctx, tx, m, c, v.factor, true, rs, now)
		if err != nil {
			return err
		}
		a.Outcome = OutcomeSuccess
		if v.factor == FactorRecovery {
			a.Outcome = OutcomeRecoveryUsed
		}
		if err := s.recordSuccess(ctx, tx, m, a); err != nil {
			return err
		}
		res = Result{Status: statusOf(rs), Member: m, SessionToken: token}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	if bad {
		return Result{}, ErrBadCode
	}
	return res, nil
}

// Reauthenticate asks the holder of a full session to prove again who they are, before a
// sensitive act: the password, and a TOTP code if the member has two-factor sign-in (an
// empty code then gives ErrSecondFactorRequired). On success the session is stamped (see
// RecentlyAuthenticated). Failures count towards the login's lock like sign-in failures,
// so a stolen session cannot be used to guess the password.
func (s *Service) Reauthenticate(ctx context.Context, sessionToken, password, code string, c Client) error {
	cur, err := s.Current(ctx, sessionToken)
	if err != nil {
		return err
	}
	if cur.Restriction != Unrestricted {
		return ErrRestricted
	}
	now := s.clock.Now()
	c = c.clean()
	a := newAttempt(now, ActionReauth, cur.Login, c, FactorPassword).forMember(cur.Member)
	locked, throttled, err := s.gate(ctx, s.db, a.LoginKey, a.AddrKey, now)
	if err != nil {
		return err
	}
	if locked || throttled {
		a.Outcome = OutcomeLocked
		if throttled {
			a.Outcome = OutcomeThrottled
		}
		return s.refuse(ctx, a)
	}
	_, hash, err := s.memberAndHash(ctx, "st.id = ?", cur.ID)
	if err != nil {
		return err
	}
	ok, _, err := s.checkPassword(ctx, hash, normalizePassword(password))
	if err != nil {
		return err
	}
	if !ok {
		a.Outcome = OutcomeBadCredentials
		return s.refuse(ctx, a)
	}
	var v verifier
	if cur.TOTPEnabled {
		if code == "" {
			return ErrSecondFactorRequired
		}
		if v, err = s.codeVerifier(ctx, cur.Member, code, now); err != nil {
			return err
		}
		a.Factor = v.factor
	}
	var bad bool
	err = s.db.WriteTx(ctx, func(tx *store.Tx) error {
		bad = false
		if cur.TOTPEnabled {
			ok, err := v.use(ctx, tx)
			if err != nil {
				return err
			}
			if !ok {
				bad = true
				a.Outcome = OutcomeBadCode
				if err := s.record(ctx, tx, a); err != nil {
					return err
				}
				return s.afterFailure(ctx, tx, a)
			}
		}
		_, err := tx.ExecContext(ctx, "UPDATE staff_sessions SET authenticated_at = ? WHERE token_hash = ?", store.Millis(now), hashToken(sessionToken))
		if err != nil {
			return fmt.Errorf("staff: stamp session: %w", err)
		}
		a.Outcome = OutcomeSuccess
		return s.record(ctx, tx, a)
	})
	if err != nil {
		return err
	}
	if bad {
		return ErrBadCode
	}
	return nil
}
