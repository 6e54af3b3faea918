package staff

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// Throttling of guessing (OWASP Authentication Cheat Sheet; NIST SP 800-63B 5.2.2).
// Failures count per login, typed or not, so an unknown login locks exactly like a real
// one and a lock tells nothing about which logins exist; and per client address, so one
// machine cannot try many logins. Wrong second-factor codes count as failures too.
const (
	// LockThreshold failures on one login within LockWindow lock it.
	LockThreshold = 5
	LockWindow    = 15 * time.Minute
	// LockDuration is the first lock's length; each lock that follows another within
	// strikeMemory lasts twice as long, up to MaxLockDuration.
	LockDuration    = 15 * time.Minute
	MaxLockDuration = 4 * time.Hour
	strikeMemory    = 24 * time.Hour
	// AddressThreshold failures from one address within AddressWindow throttle it: every
	// attempt from it is refused until its failures in the window fall below again.
	AddressThreshold = 20
	AddressWindow    = 15 * time.Minute
	// SuspiciousFailures failures on a login since its last good password, within
	// suspiciousWindow, make a success look like a guess that worked: it is flagged and
	// the password must be changed.
	SuspiciousFailures = LockThreshold
	suspiciousWindow   = 24 * time.Hour
)

// failureOutcomes are the outcomes that count as guesses.
const failureOutcomes = "('bad_credentials', 'bad_code')"

// loginKey is what attempts on a login are counted by: a hash of the normalized login,
// so that what someone typed for an unknown login (perhaps their password) is not kept.
func loginKey(login string) string {
	sum := sha256.Sum256([]byte("linestep login\x00" + NormalizeLogin(login)))
	return hex.EncodeToString(sum[:16])
}

// addrKey is what attempts from an address are counted by: the address itself, or for
// IPv6 its /64, since one subscriber usually holds a whole /64. A port, if the caller
// left one on, is dropped: it changes with every connection.
func addrKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return addr
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// gate reports whether a login is locked and whether an address is throttled now.
func (s *Service) gate(ctx context.Context, q store.Querier, lkey, akey string, now time.Time) (locked, throttled bool, err error) {
	var until int64
	err = q.QueryRowContext(ctx, "SELECT locked_until FROM staff_login_locks WHERE login_key = ?", lkey).Scan(&until)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return false, false, fmt.Errorf("staff: read lock: %w", err)
	default:
		locked = until > store.Millis(now)
	}
	if akey == "" {
		return locked, false, nil
	}
	n, err := countFailures(ctx, q, "addr_key", akey, now.Add(-AddressWindow))
	if err != nil {
		return false, false, err
	}
	return locked, n >= AddressThreshold, nil
}

// countFailures counts failed attempts with column = key since since.
func countFailures(ctx context.Context, q store.Querier, column, key string, since time.Time) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM staff_login_attempts WHERE "+column+" = ? AND at > ? AND outcome IN "+failureOutcomes,
		key, store.Millis(since)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("staff: count failures: %w", err)
	}
	return n, nil
}

// afterFailure runs after a failed attempt a has been recorded in tx: it locks the login
// when its failures since the window began (or since its last lock ended) reach the
// threshold, and flags bursts.
func (s *Service) afterFailure(ctx context.Context, tx *store.Tx, a attempt) error {
	now := a.At
	var until int64
	var strikes int
	err := tx.QueryRowContext(ctx, "SELECT locked_until, strikes FROM staff_login_locks WHERE login_key = ?", a.LoginKey).Scan(&until, &strikes)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("staff: read lock: %w", err)
	}
	since := now.Add(-LockWindow)
	if lockEnd := store.Time(until); until > 0 && lockEnd.After(since) {
		since = lockEnd // failures before or during the last lock were paid for by it
	}
	n, err := countFailures(ctx, tx, "login_key", a.LoginKey, since)
	if err != nil {
		return err
	}
	if n >= LockThreshold && store.Time(until).Before(now) {
		if until == 0 || now.Sub(store.Time(until)) > strikeMemory {
			strikes = 0
		}
		strikes++
		d := LockDuration
		for i := 1; i < strikes && d < MaxLockDuration; i++ {
			d *= 2
		}
		d = min(d, MaxLockDuration)
		_, err := tx.ExecContext(ctx, `INSERT INTO staff_login_locks (login_key, locked_until, strikes) VALUES (?, ?, ?)
			ON CONFLICT (login_key) DO UPDATE SET locked_until = excluded.locked_until, strikes = excluded.strikes`,
			a.LoginKey, store.Millis(now.Add(d)), strikes)
		if err != nil {
			return fmt.Errorf("staff: lock login: %w", err)
		}
		err = s.raise(ctx, tx, Flag{Kind: FlagAccountFailures, At: now, StaffID: a.StaffID, Login: a.Login,
			ClientAddr: a.ClientAddr, UserAgent: a.UserAgent,
			Detail: fmt.Sprintf("%d failed attempts within %v; locked for %v", n, LockWindow, d)})
		if err != nil {
			return err
		}
	}
	if a.AddrKey == "" {
		return nil
	}
	m, err := countFailures(ctx, tx, "addr_key", a.AddrKey, now.Add(-AddressWindow))
	if err != nil {
		return err
	}
	// Exactly at the threshold: one flag per burst, not one per further attempt.
	if m == AddressThreshold {
		return s.raise(ctx, tx, Flag{Kind: FlagAddressFailures, At: now, ClientAddr: a.ClientAddr, UserAgent: a.UserAgent,
			Detail: fmt.Sprintf("%d failed attempts from this address within %v", m, AddressWindow)})
	}
	return nil
}

// afterGoodPassword runs when a password proved right at sign-in. If the login had a
// burst of failures since its last good password, the success looks like a guess that
// worked: the member must change the password, and it is flagged. It reports whether
// that happened. The lock's strikes are cleared either way.
func (s *Service) afterGoodPassword(ctx context.Context, tx *store.Tx, m Member, a attempt) (bool, error) {
	if _, err := tx.ExecContext(ctx, "DELETE FROM staff_login_locks WHERE login_key = ?", a.LoginKey); err != nil {
		return false, fmt.Errorf("staff: clear lock: %w", err)
	}
	// Since the last good password: by id, not time, as attempts may share a millisecond.
	var last int64
	err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM staff_login_attempts
		WHERE login_key = ? AND outcome IN ('success', 'recovery_used', 'second_factor_required') AND factor = 'password'`,
		a.LoginKey).Scan(&last)
	if err != nil {
		return false, fmt.Errorf("staff: last good password: %w", err)
	}
	var n int
	err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM staff_login_attempts
		WHERE login_key = ? AND id > ? AND at > ? AND outcome IN ('bad_credentials', 'locked')`,
		a.LoginKey, last, store.Millis(a.At.Add(-suspiciousWindow))).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("staff: count failures: %w", err)
	}
	if n < SuspiciousFailures {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, "UPDATE staff SET must_change_password = TRUE WHERE id = ?", m.ID); err != nil {
		return false, fmt.Errorf("staff: force password change: %w", err)
	}
	err = s.raise(ctx, tx, Flag{Kind: FlagSuccessAfterFailures, At: a.At, StaffID: m.ID, Login: m.Login,
		ClientAddr: a.ClientAddr, UserAgent: a.UserAgent,
		Detail: fmt.Sprintf("signed in after %d failed attempts; password change required", n)})
	return err == nil, err
}
