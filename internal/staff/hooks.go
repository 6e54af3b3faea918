package staff

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base32"
	"fmt"
	"image/png"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/store"
)

// Also is work a caller adds to a change, run inside the change's own transaction once
// the change is written: its audit record, a check that must see the same state (who
// may act on whom). If it fails the change rolls back with it, and its error is the
// change's. m is the member acted on as they were before the change (the new member,
// for CreateMember).
type Also func(tx *store.Tx, m Member) error

func runAlso(tx *store.Tx, m Member, also []Also) error {
	for _, f := range also {
		if err := f(tx, m); err != nil {
			return err
		}
	}
	return nil
}

// Audit actions of this package's acts that package audit has no constant for.
const (
	AuditReauthSuccess audit.Action = "reauth.success"
	AuditReauthFailure audit.Action = "reauth.failure"
	AuditEnable        audit.Action = "staff.enable"
	AuditSignInLink    audit.Action = "staff.signin_link" // a one-time link issued for a member
	AuditForcePassword audit.Action = "password.force_change"
	AuditRecoveryCodes audit.Action = "twofactor.recovery_codes" // new codes replacing the old
)

// auditAttempt writes a recorded attempt to the audit log too, in the same transaction,
// through the Audit hook. An attempt that only waits for its second factor is not an
// outcome yet: its end is recorded. For an unknown login no login text is kept, as in
// the history (it may be a password typed in the wrong box).
func (s *Service) auditAttempt(ctx context.Context, tx *store.Tx, a attempt) error {
	if s.Audit == nil || a.Outcome == OutcomeSecondFactor {
		return nil
	}
	ok := a.Outcome == OutcomeSuccess || a.Outcome == OutcomeRecoveryUsed
	action := audit.SignInFailure
	switch {
	case a.Action == ActionReauth && ok:
		action = AuditReauthSuccess
	case a.Action == ActionReauth:
		action = AuditReauthFailure
	case ok:
		action = audit.SignInSuccess
	}
	rec := audit.Record{
		Action: action, Actor: audit.Actor{Kind: audit.ActorStaff},
		ClientAddr: a.ClientAddr, UserAgent: a.UserAgent,
		Detail: map[string]string{"step": string(a.Action), "outcome": string(a.Outcome), "factor": string(a.Factor)},
	}
	if a.StaffID != 0 {
		rec.Actor, rec.Subject = audit.Staff(a.StaffID, a.Login), audit.Subject("staff", a.StaffID)
	}
	return s.Audit(ctx, tx, rec)
}

// PendingTOTP returns the two-factor set-up begun by BeginTOTP for a session's member
// and not yet confirmed, so that a page can show it again (its QR code is fetched apart
// from the page) without changing the secret the member may already have scanned.
// ErrNoPendingTOTP if none is under way.
func (s *Service) PendingTOTP(ctx context.Context, sessionToken string) (Enrolment, error) {
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
	var sealed []byte
	var at sql.NullInt64
	err = s.db.QueryRowContext(ctx, "SELECT totp_pending_secret, totp_pending_at FROM staff WHERE id = ?", cur.ID).Scan(&sealed, &at)
	if err != nil {
		return Enrolment{}, fmt.Errorf("staff: read TOTP set-up: %w", err)
	}
	if sealed == nil || !at.Valid || s.clock.Now().Sub(store.Time(at.Int64)) > TOTPEnrolTTL-time.Minute {
		// A set-up about to expire is not worth showing: the member would not finish in time.
		return Enrolment{}, ErrNoPendingTOTP
	}
	secret, err := s.Keys.Open(sealed, totpPendingIdentity(cur.ID))
	if err != nil {
		return Enrolment{}, fmt.Errorf("staff: open TOTP set-up: %w", err)
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(string(secret))
	if err != nil {
		return Enrolment{}, fmt.Errorf("staff: TOTP set-up: %w", err)
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.Issuer, AccountName: cur.Login, Secret: raw})
	if err != nil {
		return Enrolment{}, fmt.Errorf("staff: TOTP set-up: %w", err)
	}
	qr, err := qrPNG(key)
	if err != nil {
		return Enrolment{}, err
	}
	return Enrolment{URL: key.URL(), Secret: key.Secret(), QRCodePNG: qr}, nil
}

// qrPNG draws a key's otpauth URL as a 256×256 QR code.
func qrPNG(key *otp.Key) ([]byte, error) {
	img, err := key.Image(256, 256)
	if err != nil {
		return nil, fmt.Errorf("staff: TOTP QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("staff: TOTP QR code: %w", err)
	}
	return buf.Bytes(), nil
}

// LastSignIns returns when each member last signed in successfully (members who never
// did are absent).
func (s *Service) LastSignIns(ctx context.Context) (map[int64]time.Time, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT staff_id, MAX(at) FROM staff_login_attempts
		WHERE staff_id IS NOT NULL AND action IN ('sign_in', 'second_factor') AND outcome IN ('success', 'recovery_used')
		GROUP BY staff_id`)
	if err != nil {
		return nil, fmt.Errorf("staff: last sign-ins: %w", err)
	}
	defer rows.Close()
	out := map[int64]time.Time{}
	for rows.Next() {
		var id, at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, fmt.Errorf("staff: last sign-ins: %w", err)
		}
		out[id] = store.Time(at)
	}
	return out, rows.Err()
}

// MarkMustChangePassword makes a member change the password at the next sign-in, in tx:
// for a caller's Also, when a member is created with a password someone else chose.
func (s *Service) MarkMustChangePassword(ctx context.Context, tx *store.Tx, staffID int64) error {
	if _, err := tx.ExecContext(ctx, "UPDATE staff SET must_change_password = TRUE WHERE id = ?", staffID); err != nil {
		return fmt.Errorf("staff: require a password change: %w", err)
	}
	return nil
}

// RenewSession gives a live session a new token and returns it; the old token stops
// working. For when a session gains rights (a restricted one finishing its sign-in):
// whoever learnt the token of the lesser session does not hold the greater one.
func (s *Service) RenewSession(ctx context.Context, token string) (string, error) {
	next, hash := newToken()
	res, err := s.db.ExecContext(ctx, "UPDATE staff_sessions SET token_hash = ? WHERE token_hash = ? AND ended_at IS NULL",
		hash, hashToken(token))
	if err != nil {
		return "", fmt.Errorf("staff: renew session: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return "", ErrInvalidToken
	}
	return next, nil
}
