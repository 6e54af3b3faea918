package staff

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
)

// Limits on account fields.
const (
	MaxLoginRunes = 64
	MaxNameRunes  = 100
	MaxRoleRunes  = 64
)

// checkMember returns the problems with a new member's fields.
func checkMember(login, name string, role Role) message.Problems {
	var ps message.Problems
	switch n := utf8.RuneCountInString(login); {
	case n == 0:
		ps = append(ps, message.Problem{Path: "login", JA: "ログインIDを入力してください。", EN: "Enter a login."})
	case n > MaxLoginRunes:
		ps = append(ps, message.Problem{Path: "login", JA: fmt.Sprintf("ログインIDは%d文字以内にしてください。", MaxLoginRunes),
			EN: fmt.Sprintf("Use at most %d characters for the login.", MaxLoginRunes)})
	case strings.IndexFunc(login, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		ps = append(ps, message.Problem{Path: "login", JA: "ログインIDに空白は使えません。", EN: "The login must not contain spaces."})
	}
	if n := utf8.RuneCountInString(strings.TrimSpace(name)); n == 0 || n > MaxNameRunes {
		ps = append(ps, message.Problem{Path: "name", JA: fmt.Sprintf("名前は1〜%d文字で入力してください。", MaxNameRunes),
			EN: fmt.Sprintf("Enter a name of 1 to %d characters.", MaxNameRunes)})
	}
	ps = append(ps, checkRole(role)...)
	return ps
}

func checkRole(role Role) message.Problems {
	if n := utf8.RuneCountInString(string(role)); n == 0 || n > MaxRoleRunes {
		return message.Problems{{Path: "role", JA: "役割を選んでください。", EN: "Choose a role."}}
	}
	return nil
}

// CreateMember adds a staff member. The login is stored normalized (NormalizeLogin).
// With a password, it must pass CheckPassword; without one (""), the member is invited:
// send them IssueLoginLink, and SignInWithLink lets them set a password first. Problems
// with the fields come back as message.Problems; a login in use as ErrLoginTaken. Who may
// grant which role is for the caller to check.
func (s *Service) CreateMember(ctx context.Context, login, name string, role Role, password string, also ...Also) (Member, error) {
	login, name = NormalizeLogin(login), strings.TrimSpace(name)
	ps := checkMember(login, name, role)
	if password != "" {
		if err := CheckPassword(password, login, name); err != nil {
			ps = append(ps, err.(message.Problems)...)
		}
	}
	if len(ps) > 0 {
		return Member{}, ps
	}
	hash := ""
	now := s.clock.Now()
	var changed any
	if password != "" {
		var err error
		if hash, err = s.hashPassword(ctx, normalizePassword(password)); err != nil {
			return Member{}, err
		}
		changed = store.Millis(now)
	}
	var id int64
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO staff (login, name, role, password_hash, password_changed_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, login, name, role, hash, changed, store.Millis(now)).Scan(&id)
		if err != nil || len(also) == 0 {
			return err
		}
		m, err := s.byID(ctx, tx, id)
		if err != nil {
			return err
		}
		return runAlso(tx, m, also)
	})
	if err != nil {
		if store.IsUniqueViolation(err) {
			return Member{}, ErrLoginTaken
		}
		if len(also) > 0 {
			return Member{}, err // the caller's own error, as it gave it
		}
		return Member{}, fmt.Errorf("staff: create member: %w", err)
	}
	return s.Get(ctx, id)
}

// Get returns a member, disabled or not; store.ErrNotFound if there is none.
func (s *Service) Get(ctx context.Context, id int64) (Member, error) { return s.byID(ctx, s.db, id) }

// GetByLogin returns the member with a login (normalized first).
func (s *Service) GetByLogin(ctx context.Context, login string) (Member, error) {
	m, err := s.byLogin(ctx, s.db, NormalizeLogin(login))
	if errors.Is(err, store.ErrNotFound) && NormalizeLogin(login) != login {
		return s.byLogin(ctx, s.db, login) // created before logins were normalized
	}
	return m, err
}

// List returns every member, disabled ones included, in the order they were created.
func (s *Service) List(ctx context.Context) ([]Member, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+memberColumns+" FROM staff st ORDER BY st.id")
	if err != nil {
		return nil, fmt.Errorf("staff: list: %w", err)
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return nil, fmt.Errorf("staff: list: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("staff: list: %w", err)
	}
	return out, nil
}

// SetRole changes a member's role; it takes effect at their next request.
func (s *Service) SetRole(ctx context.Context, id int64, role Role, also ...Also) error {
	if ps := checkRole(role); ps != nil {
		return ps
	}
	return s.updateOne(ctx, id, also, "set role", "UPDATE staff SET role = ? WHERE id = ?", role, id)
}

// updateOne changes member id by query, then runs also, in one transaction.
func (s *Service) updateOne(ctx context.Context, id int64, also []Also, what, query string, args ...any) error {
	return s.db.WriteTx(ctx, func(tx *store.Tx) error {
		m, err := s.byID(ctx, tx, id)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("staff: %s: %w", what, err)
		}
		return runAlso(tx, m, also)
	})
}

// Disable stops a member from signing in and ends their sessions. Their history stays.
func (s *Service) Disable(ctx context.Context, id int64, also ...Also) error {
	now := s.clock.Now()
	return s.db.WriteTx(ctx, func(tx *store.Tx) error {
		m, err := s.byID(ctx, tx, id)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE staff SET disabled_at = ? WHERE id = ? AND disabled_at IS NULL", store.Millis(now), id); err != nil {
			return fmt.Errorf("staff: disable: %w", err)
		}
		if _, err := endSessions(ctx, tx, id, nil, now); err != nil {
			return err
		}
		return runAlso(tx, m, also)
	})
}

// Enable lets a disabled member sign in again.
func (s *Service) Enable(ctx context.Context, id int64, also ...Also) error {
	return s.updateOne(ctx, id, also, "enable", "UPDATE staff SET disabled_at = NULL WHERE id = ?", id)
}

// ChangePassword changes the password of a session's member (a restricted session may:
// it is what RestrictChangePassword is for). current must be the present password, unless
// the member has none yet (invited by link). A wrong current password gives
// ErrBadCredentials and counts towards the login's lock. The new one must pass
// CheckPassword (message.Problems) and differ from the current one. The member's other
// sessions end; this one goes on, restricted only to two-factor set-up if their role
// requires it and they have none. It returns the session as it now is.
func (s *Service) ChangePassword(ctx context.Context, sessionToken, current, next string, c Client, also ...Also) (Current, error) {
	cur, err := s.Current(ctx, sessionToken)
	if err != nil {
		return Current{}, err
	}
	if err := CheckPassword(next, cur.Login, cur.Name); err != nil {
		return Current{}, err
	}
	now := s.clock.Now()
	c = c.clean()
	_, oldHash, err := s.memberAndHash(ctx, "st.id = ?", cur.ID)
	if err != nil {
		return Current{}, err
	}
	if cur.HasPassword {
		a := newAttempt(now, ActionChangePassword, cur.Login, c, FactorPassword).forMember(cur.Member)
		locked, throttled, err := s.gate(ctx, s.db, a.LoginKey, a.AddrKey, now)
		if err != nil {
			return Current{}, err
		}
		if locked || throttled {
			a.Outcome = OutcomeLocked
			if throttled {
				a.Outcome = OutcomeThrottled
			}
			return Current{}, s.refuse(ctx, a)
		}
		ok, _, err := s.checkPassword(ctx, oldHash, normalizePassword(current))
		if err != nil {
			return Current{}, err
		}
		if !ok {
			a.Outcome = OutcomeBadCredentials
			return Current{}, s.refuse(ctx, a)
		}
		if normalizePassword(current) == normalizePassword(next) {
			return Current{}, message.Problems{{Path: "password", JA: "今と違うパスワードにしてください。",
				EN: "Choose a password different from the current one."}}
		}
	}
	hash, err := s.hashPassword(ctx, normalizePassword(next))
	if err != nil {
		return Current{}, err
	}
	m := cur.Member
	m.HasPassword, m.MustChangePassword = true, false
	err = s.db.WriteTx(ctx, func(tx *store.Tx) error {
		// Only over the hash that was checked: two changes racing cannot both pass.
		res, err := tx.ExecContext(ctx, `UPDATE staff SET password_hash = ?, must_change_password = FALSE, password_changed_at = ?
			WHERE id = ? AND password_hash = ?`, hash, store.Millis(now), cur.ID, oldHash)
		if err != nil {
			return fmt.Errorf("staff: change password: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrBadCredentials
		}
		if _, err := endSessions(ctx, tx, cur.ID, hashToken(sessionToken), now); err != nil {
			return err
		}
		r := Unrestricted
		if s.requireTOTP(m.Role) && !m.TOTPEnabled {
			r = RestrictEnrolTOTP
		}
		_, err = tx.ExecContext(ctx, "UPDATE staff_sessions SET restriction = ?, authenticated_at = ? WHERE token_hash = ?",
			r, store.Millis(now), hashToken(sessionToken))
		if err != nil {
			return fmt.Errorf("staff: update session: %w", err)
		}
		return runAlso(tx, cur.Member, also)
	})
	if err != nil {
		return Current{}, err
	}
	return s.Current(ctx, sessionToken)
}

// SetPasswordByAdmin sets a member's password for them (the caller checks who may). It
// must pass CheckPassword. Their sessions end. With mustChange, the member must choose
// their own at their next sign-in, which is what a password told by someone else calls for.
func (s *Service) SetPasswordByAdmin(ctx context.Context, staffID int64, password string, mustChange bool, also ...Also) error {
	m, err := s.Get(ctx, staffID)
	if err != nil {
		return err
	}
	if err := CheckPassword(password, m.Login, m.Name); err != nil {
		return err
	}
	hash, err := s.hashPassword(ctx, normalizePassword(password))
	if err != nil {
		return err
	}
	now := s.clock.Now()
	return s.db.WriteTx(ctx, func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE staff SET password_hash = ?, must_change_password = ?, password_changed_at = ? WHERE id = ?",
			hash, mustChange, store.Millis(now), staffID)
		if err != nil {
			return fmt.Errorf("staff: set password: %w", err)
		}
		if _, err = endSessions(ctx, tx, staffID, nil, now); err != nil {
			return err
		}
		return runAlso(tx, m, also)
	})
}

// ForcePasswordChange is for evidence that a member's password is known to someone else:
// their sessions end and their next sign-in must change the password first.
func (s *Service) ForcePasswordChange(ctx context.Context, staffID int64, also ...Also) error {
	now := s.clock.Now()
	return s.db.WriteTx(ctx, func(tx *store.Tx) error {
		m, err := s.byID(ctx, tx, staffID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE staff SET must_change_password = TRUE WHERE id = ?", staffID); err != nil {
			return fmt.Errorf("staff: force password change: %w", err)
		}
		if _, err = endSessions(ctx, tx, staffID, nil, now); err != nil {
			return err
		}
		return runAlso(tx, m, also)
	})
}
