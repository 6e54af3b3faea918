package staff

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// Outcome is how a sign-in attempt ended.
type Outcome string

const (
	OutcomeSuccess        Outcome = "success"
	OutcomeBadCredentials Outcome = "bad_credentials"
	// OutcomeLocked: refused because the login was locked (whatever the password).
	OutcomeLocked Outcome = "locked"
	// OutcomeThrottled: refused because the address was throttled.
	OutcomeThrottled Outcome = "throttled"
	// OutcomeDisabled: the password was right but the account is disabled.
	OutcomeDisabled Outcome = "disabled"
	OutcomeBadCode  Outcome = "bad_code"
	// OutcomeRecoveryUsed: signed in with a recovery code (a success that used one up).
	OutcomeRecoveryUsed Outcome = "recovery_used"
	// OutcomeSecondFactor: the password was right; a code is awaited.
	OutcomeSecondFactor Outcome = "second_factor_required"
)

// Factor is what a person proved themselves with.
type Factor string

const (
	FactorPassword Factor = "password"
	FactorTOTP     Factor = "totp"
	FactorRecovery Factor = "recovery"
	FactorLink     Factor = "link"
)

// Action is what an attempt was for.
type Action string

const (
	ActionSignIn         Action = "sign_in"
	ActionSecondFactor   Action = "second_factor"
	ActionReauth         Action = "reauth"
	ActionChangePassword Action = "change_password"
)

// Attempt is one recorded sign-in attempt.
type Attempt struct {
	ID     int64
	At     time.Time
	Action Action
	// Login is empty when what was typed names no member (it may be a password typed in
	// the wrong box, so it is not kept).
	Login      string
	StaffID    int64 // 0 when unknown
	ClientAddr string
	UserAgent  string
	Outcome    Outcome
	Factor     Factor
}

// attempt is an Attempt about to be recorded, with the keys it is counted by.
type attempt struct {
	Attempt
	LoginKey string
	AddrKey  string
}

func newAttempt(now time.Time, action Action, login string, c Client, factor Factor) attempt {
	return attempt{
		Attempt:  Attempt{At: now, Action: action, ClientAddr: c.Addr, UserAgent: c.UserAgent, Factor: factor},
		LoginKey: loginKey(login), AddrKey: addrKey(c.Addr),
	}
}

// forMember fills in who the attempt was about.
func (a attempt) forMember(m Member) attempt {
	a.StaffID, a.Login = m.ID, m.Login
	return a
}

// record writes an attempt to the sign-in history, and through the Audit hook to the
// audit log, in tx.
func (s *Service) record(ctx context.Context, tx *store.Tx, a attempt) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO staff_login_attempts
		(at, action, login, login_key, staff_id, client_addr, addr_key, user_agent, outcome, factor)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		store.Millis(a.At), a.Action, a.Login, a.LoginKey, nullID(a.StaffID), a.ClientAddr, a.AddrKey, a.UserAgent, a.Outcome, a.Factor)
	if err != nil {
		return fmt.Errorf("staff: record sign-in attempt: %w", err)
	}
	return s.auditAttempt(ctx, tx, a)
}

// recordFailure records a failed attempt and its consequences (lock, flags) in one
// transaction that commits, so that the failure counts even though the caller is refused.
func (s *Service) recordFailure(ctx context.Context, a attempt) error {
	return s.db.WriteTx(ctx, func(tx *store.Tx) error {
		if err := s.record(ctx, tx, a); err != nil {
			return err
		}
		if a.Outcome == OutcomeBadCredentials || a.Outcome == OutcomeBadCode {
			return s.afterFailure(ctx, tx, a)
		}
		return nil
	})
}

func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

// Page selects a page of a newest-first list: at most Limit items (default 50, at most
// 500) with ID below BeforeID (0: from the newest).
type Page struct {
	Limit    int
	BeforeID int64
}

func (p Page) limit() int {
	if p.Limit <= 0 {
		return 50
	}
	return min(p.Limit, 500)
}

// History returns one member's own sign-in attempts, newest first.
func (s *Service) History(ctx context.Context, staffID int64, page Page) ([]Attempt, error) {
	return s.AllHistory(ctx, HistoryFilter{StaffID: staffID, Page: page})
}

// HistoryFilter selects attempts for AllHistory; zero fields select everything.
type HistoryFilter struct {
	StaffID    int64
	ClientAddr string
	Outcome    Outcome
	Since      time.Time
	Page
}

// AllHistory returns sign-in attempts of everyone (for owners), newest first.
func (s *Service) AllHistory(ctx context.Context, f HistoryFilter) ([]Attempt, error) {
	var where []string
	var args []any
	if f.StaffID != 0 {
		where, args = append(where, "staff_id = ?"), append(args, f.StaffID)
	}
	if f.ClientAddr != "" {
		where, args = append(where, "client_addr = ?"), append(args, f.ClientAddr)
	}
	if f.Outcome != "" {
		where, args = append(where, "outcome = ?"), append(args, f.Outcome)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, store.Millis(f.Since))
	}
	if f.BeforeID != 0 {
		where, args = append(where, "id < ?"), append(args, f.BeforeID)
	}
	q := "SELECT id, at, action, login, staff_id, client_addr, user_agent, outcome, factor FROM staff_login_attempts"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT %d", f.limit())
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("staff: sign-in history: %w", err)
	}
	defer rows.Close()
	var out []Attempt
	for rows.Next() {
		var a Attempt
		var at int64
		var staffID sql.NullInt64
		if err := rows.Scan(&a.ID, &at, &a.Action, &a.Login, &staffID, &a.ClientAddr, &a.UserAgent, &a.Outcome, &a.Factor); err != nil {
			return nil, fmt.Errorf("staff: sign-in history: %w", err)
		}
		a.At, a.StaffID = store.Time(at), staffID.Int64
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("staff: sign-in history: %w", err)
	}
	return out, nil
}

// PruneHistory deletes sign-in attempts older than before (a retention job calls it;
// lockout and flags look back a day at most).
func (s *Service) PruneHistory(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, "DELETE FROM staff_login_attempts WHERE at < ?", store.Millis(before))
	if err != nil {
		return 0, fmt.Errorf("staff: prune sign-in history: %w", err)
	}
	return res.RowsAffected()
}

// isNewDevice reports whether a member's successful sign-in comes from a (user agent,
// address) never seen in their earlier successes. Their very first sign-in is not new:
// there is nothing to compare with.
func isNewDevice(ctx context.Context, tx *store.Tx, staffID int64, c Client) (bool, error) {
	var total, same int64
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN user_agent = ? AND client_addr = ? THEN 1 ELSE 0 END), 0)
		FROM staff_login_attempts WHERE staff_id = ? AND outcome IN ('success', 'recovery_used')`,
		c.UserAgent, c.Addr, staffID).Scan(&total, &same)
	if err != nil {
		return false, fmt.Errorf("staff: compare devices: %w", err)
	}
	return total > 0 && same == 0, nil
}

// recordSuccess records a successful sign-in and flags it if it comes from a new device.
func (s *Service) recordSuccess(ctx context.Context, tx *store.Tx, m Member, a attempt) error {
	newDevice, err := isNewDevice(ctx, tx, m.ID, Client{Addr: a.ClientAddr, UserAgent: a.UserAgent})
	if err != nil {
		return err
	}
	if err := s.record(ctx, tx, a.forMember(m)); err != nil {
		return err
	}
	if !newDevice {
		return nil
	}
	return s.raise(ctx, tx, Flag{Kind: FlagNewDevice, At: a.At, StaffID: m.ID, Login: m.Login,
		ClientAddr: a.ClientAddr, UserAgent: a.UserAgent, Detail: "signed in from a browser and address not seen before"})
}
