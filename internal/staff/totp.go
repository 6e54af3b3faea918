package staff

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"github.com/linestep/linestep/internal/store"
)

// TOTP (RFC 6238) as authenticator apps expect it: SHA-1, 6 digits, 30-second steps.
const (
	totpPeriod = 30
	// totpSkew accepts codes one step either side of now, for clocks a little off.
	totpSkew = 1
	// TOTPEnrolTTL is how long a set-up begun with BeginTOTP waits for its confirmation.
	TOTPEnrolTTL = 15 * time.Minute
	// RecoveryCodeCount codes are made at each confirmation.
	RecoveryCodeCount = 10
)

// Enrolment is a two-factor set-up under way: show the QR code (or the URL as a link on
// a phone, or the secret for typing in), then ask for a code to ConfirmTOTP. It holds the
// secret: show it to the member only, never log it.
type Enrolment struct {
	URL       string // otpauth://totp/...
	Secret    string // base32, for apps that cannot scan
	QRCodePNG []byte // 256×256
}

func totpIdentity(staffID int64) string        { return fmt.Sprintf("staff/%d/totp", staffID) }
func totpPendingIdentity(staffID int64) string { return fmt.Sprintf("staff/%d/totp-pending", staffID) }

// BeginTOTP starts setting up two-factor sign-in for the member of a session (also a
// session restricted to that). It replaces any set-up under way; an existing second
// factor stays in force until ConfirmTOTP replaces it. Replacing one needs a recent
// Reauthenticate (else ErrReauthRequired): a borrowed session must not be able to move
// the second factor to another phone.
func (s *Service) BeginTOTP(ctx context.Context, sessionToken string) (Enrolment, error) {
	if s.Keys == nil {
		return Enrolment{}, ErrNoKeyring
	}
	cur, err := s.Current(ctx, sessionToken)
	if err != nil {
		return Enrolment{}, err
	}
	if cur.Restriction == RestrictChangePassword {
		return Enrolment{}, ErrRestricted
	}
	if cur.TOTPEnabled && !s.RecentlyAuthenticated(cur, ReauthWindow) {
		return Enrolment{}, ErrReauthRequired
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.Issuer, AccountName: cur.Login, SecretSize: 20, Rand: rand.Reader})
	if err != nil {
		return Enrolment{}, fmt.Errorf("staff: make TOTP secret: %w", err)
	}
	qr, err := qrPNG(key)
	if err != nil {
		return Enrolment{}, err
	}
	sealed := s.Keys.Seal([]byte(key.Secret()), totpPendingIdentity(cur.ID))
	_, err = s.db.ExecContext(ctx, "UPDATE staff SET totp_pending_secret = ?, totp_pending_at = ? WHERE id = ?",
		sealed, store.Millis(s.clock.Now()), cur.ID)
	if err != nil {
		return Enrolment{}, fmt.Errorf("staff: store TOTP set-up: %w", err)
	}
	return Enrolment{URL: key.URL(), Secret: key.Secret(), QRCodePNG: qr}, nil
}

// ConfirmTOTP finishes a set-up with a code from the app, proving it works. Two-factor
// sign-in is then on, the session counts as signed in with it (a session restricted to
// set-up becomes a full one), and the RecoveryCodeCount new recovery codes returned
// replace any earlier ones: show them once, they are not kept readable.
func (s *Service) ConfirmTOTP(ctx context.Context, sessionToken, code string, also ...Also) ([]string, error) {
	if s.Keys == nil {
		return nil, ErrNoKeyring
	}
	cur, err := s.Current(ctx, sessionToken)
	if err != nil {
		return nil, err
	}
	if cur.Restriction == RestrictChangePassword {
		return nil, ErrRestricted
	}
	now := s.clock.Now()
	var sealed []byte
	var at sql.NullInt64
	err = s.db.QueryRowContext(ctx, "SELECT totp_pending_secret, totp_pending_at FROM staff WHERE id = ?", cur.ID).Scan(&sealed, &at)
	if err != nil {
		return nil, fmt.Errorf("staff: read TOTP set-up: %w", err)
	}
	if sealed == nil || !at.Valid || now.Sub(store.Time(at.Int64)) > TOTPEnrolTTL {
		return nil, ErrNoPendingTOTP
	}
	secret, err := s.Keys.Open(sealed, totpPendingIdentity(cur.ID))
	if err != nil {
		return nil, fmt.Errorf("staff: open TOTP set-up: %w", err)
	}
	step, ok := matchTOTP(string(secret), code, now)
	if !ok {
		return nil, ErrBadCode
	}
	codes := newRecoveryCodes()
	err = s.db.WriteTx(ctx, func(tx *store.Tx) error {
		// Only the set-up that was checked: a newer BeginTOTP meanwhile wins.
		res, err := tx.ExecContext(ctx, `UPDATE staff SET totp_secret = ?, totp_enabled_at = ?, totp_last_step = ?,
			totp_pending_secret = NULL, totp_pending_at = NULL WHERE id = ? AND totp_pending_secret = ?`,
			s.Keys.Seal(secret, totpIdentity(cur.ID)), store.Millis(now), step, cur.ID, sealed)
		if err != nil {
			return fmt.Errorf("staff: enable TOTP: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNoPendingTOTP
		}
		if err := storeRecoveryCodes(ctx, tx, cur.ID, codes, now); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE staff_sessions SET mfa = TRUE, factor = 'totp', authenticated_at = ?,
			restriction = CASE WHEN restriction = 'enrol_totp' THEN '' ELSE restriction END WHERE token_hash = ?`,
			store.Millis(now), hashToken(sessionToken))
		if err != nil {
			return fmt.Errorf("staff: mark session: %w", err)
		}
		return runAlso(tx, cur.Member, also)
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// DisableTOTP turns two-factor sign-in off for a member (their own choice after
// Reauthenticate, or an admin's reset for a lost phone; the caller decides who may) and
// deletes their recovery codes. If their role requires it, their next sign-in leads to
// setting it up again.
func (s *Service) DisableTOTP(ctx context.Context, staffID int64, also ...Also) error {
	return s.db.WriteTx(ctx, func(tx *store.Tx) error {
		m, err := s.byID(ctx, tx, staffID)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE staff SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = 0,
			totp_pending_secret = NULL, totp_pending_at = NULL WHERE id = ?`, staffID)
		if err != nil {
			return fmt.Errorf("staff: disable TOTP: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM staff_recovery_codes WHERE staff_id = ?", staffID); err != nil {
			return fmt.Errorf("staff: delete recovery codes: %w", err)
		}
		_, err = tx.ExecContext(ctx, "UPDATE staff_pending_signins SET used_at = ? WHERE staff_id = ? AND used_at IS NULL",
			store.Millis(s.clock.Now()), staffID)
		if err != nil {
			return fmt.Errorf("staff: end pending sign-ins: %w", err)
		}
		return runAlso(tx, m, also)
	})
}

// NewRecoveryCodes replaces a member's recovery codes with RecoveryCodeCount new ones
// (after Reauthenticate; the caller checks). Show them once.
func (s *Service) NewRecoveryCodes(ctx context.Context, staffID int64, also ...Also) ([]string, error) {
	codes := newRecoveryCodes()
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		var enabled bool
		if err := tx.QueryRowContext(ctx, "SELECT totp_enabled_at IS NOT NULL FROM staff WHERE id = ?", staffID).Scan(&enabled); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("staff %d: %w", staffID, store.ErrNotFound)
			}
			return fmt.Errorf("staff: recovery codes: %w", err)
		}
		if !enabled {
			return ErrTOTPNotEnabled
		}
		if err := storeRecoveryCodes(ctx, tx, staffID, codes, s.clock.Now()); err != nil {
			return err
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
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// RecoveryCodesLeft reports how many unused recovery codes a member has.
func (s *Service) RecoveryCodesLeft(ctx context.Context, staffID int64) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM staff_recovery_codes WHERE staff_id = ? AND used_at IS NULL", staffID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("staff: count recovery codes: %w", err)
	}
	return n, nil
}

// matchTOTP returns the time step a code belongs to, within the skew around now.
func matchTOTP(secret, code string, now time.Time) (int64, bool) {
	code = strings.Join(strings.Fields(code), "")
	if len(code) != 6 {
		return 0, false
	}
	cur := now.Unix() / totpPeriod
	found, ok := int64(0), false
	// Every candidate is computed and compared, so the time taken says nothing about
	// which step matched.
	for st := cur - totpSkew; st <= cur+totpSkew; st++ {
		want, err := hotp.GenerateCodeCustom(secret, uint64(st), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			found, ok = st, true
		}
	}
	return found, ok
}

// verifier checks one second-factor code: the part that needs no transaction (opening
// the secret, computing codes) is done when it is made, and use consumes the code
// inside the caller's transaction.
type verifier struct {
	factor  Factor
	staffID int64
	now     time.Time
	matched bool   // TOTP: the code belongs to step
	step    int64  // TOTP: the step matched
	hash    []byte // recovery: the code's hash, nil if it cannot be one
}

// codeVerifier prepares the check of a code, TOTP if it is six digits, else a recovery
// code.
func (s *Service) codeVerifier(ctx context.Context, m Member, code string, now time.Time) (verifier, error) {
	v := verifier{staffID: m.ID, now: now}
	compact := strings.Join(strings.Fields(code), "")
	if _, err := strconv.Atoi(compact); err == nil && len(compact) == 6 {
		v.factor = FactorTOTP
		if s.Keys == nil {
			return verifier{}, ErrNoKeyring
		}
		var sealed []byte
		if err := s.db.QueryRowContext(ctx, "SELECT totp_secret FROM staff WHERE id = ?", m.ID).Scan(&sealed); err != nil {
			return verifier{}, fmt.Errorf("staff: read TOTP secret: %w", err)
		}
		if sealed == nil {
			return v, nil
		}
		secret, err := s.Keys.Open(sealed, totpIdentity(m.ID))
		if err != nil {
			return verifier{}, fmt.Errorf("staff: open TOTP secret: %w", err)
		}
		v.step, v.matched = matchTOTP(string(secret), compact, now)
		return v, nil
	}
	v.factor = FactorRecovery
	if n := normalizeRecoveryCode(code); n != "" {
		v.hash = hashRecoveryCode(n)
	}
	return v, nil
}

// use consumes the code in tx and reports whether it was good. A TOTP code passes only
// for a step later than the last one accepted, and recording its step is the same
// conditional UPDATE: of two requests racing with one code, one passes.
func (v verifier) use(ctx context.Context, tx *store.Tx) (bool, error) {
	var res sql.Result
	var err error
	switch {
	case v.factor == FactorTOTP && v.matched:
		res, err = tx.ExecContext(ctx, `UPDATE staff SET totp_last_step = ?
			WHERE id = ? AND totp_last_step < ? AND totp_enabled_at IS NOT NULL`, v.step, v.staffID, v.step)
	case v.factor == FactorRecovery && v.hash != nil:
		res, err = tx.ExecContext(ctx, `UPDATE staff_recovery_codes SET used_at = ?
			WHERE staff_id = ? AND code_hash = ? AND used_at IS NULL`, store.Millis(v.now), v.staffID, v.hash)
	default:
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("staff: use code: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Recovery codes: 80 random bits each, written as four groups of four base32 letters
// (abcd-efgh-jklm-npqr style, lower case). 80 bits make a fast hash safe to store.
var recoveryEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newRecoveryCodes() []string {
	codes := make([]string, RecoveryCodeCount)
	for i := range codes {
		b := make([]byte, 10)
		rand.Read(b)
		c := strings.ToLower(recoveryEncoding.EncodeToString(b)) // 16 characters
		codes[i] = c[0:4] + "-" + c[4:8] + "-" + c[8:12] + "-" + c[12:16]
	}
	return codes
}

// normalizeRecoveryCode accepts a code however it was typed (case, spaces, dashes) and
// returns its 16 characters, or "" if it cannot be one.
func normalizeRecoveryCode(code string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(code) {
		switch {
		case r == '-' || r == ' ' || r == '\t':
		case r >= 'a' && r <= 'z' || r >= '2' && r <= '7':
			b.WriteRune(r)
		default:
			return ""
		}
	}
	if b.Len() != 16 {
		return ""
	}
	return b.String()
}

func hashRecoveryCode(normalized string) []byte {
	h := sha256.Sum256([]byte("linestep recovery\x00" + normalized))
	return h[:]
}

func storeRecoveryCodes(ctx context.Context, tx *store.Tx, staffID int64, codes []string, now time.Time) error {
	if _, err := tx.ExecContext(ctx, "DELETE FROM staff_recovery_codes WHERE staff_id = ?", staffID); err != nil {
		return fmt.Errorf("staff: replace recovery codes: %w", err)
	}
	for _, c := range codes {
		_, err := tx.ExecContext(ctx, "INSERT INTO staff_recovery_codes (staff_id, code_hash, created_at) VALUES (?, ?, ?)",
			staffID, hashRecoveryCode(normalizeRecoveryCode(c)), store.Millis(now))
		if err != nil {
			return fmt.Errorf("staff: store recovery codes: %w", err)
		}
	}
	return nil
}
