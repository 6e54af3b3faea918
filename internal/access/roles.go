package access

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/store"
)

var (
	// ErrNotHeld is returned when someone tries to grant, or to act on a person holding,
	// a permission they do not hold themselves.
	ErrNotHeld = errors.New("access: permission not held by the granter")
	// ErrInvalid wraps a malformed role.
	ErrInvalid = errors.New("access: invalid")
	// ErrInUse is returned when deleting a role someone still has.
	ErrInUse = errors.New("access: role in use")
)

// Role is a named set of permissions.
type Role struct {
	Name        string
	Label       string // shown in the console; built-in roles are translated there
	Permissions []Permission
	BuiltIn     bool
	// RequireTOTP: members must sign in with a second factor. Always true for owners and
	// admins; a choice for other roles.
	RequireTOTP bool
}

// Has reports whether the role grants p.
func (r Role) Has(p Permission) bool { return slices.Contains(r.Permissions, p) }

var roleName = regexp.MustCompile(`^[a-z][a-z0-9_-]{1,31}$`)

// Service stores custom roles, 2FA policies and channel memberships.
type Service struct {
	db    *store.DB
	clock clock.Clock
}

// New returns an access service.
func New(db *store.DB, clk clock.Clock) *Service { return &Service{db: db, clock: clk} }

// Role returns a built-in or custom role.
func (s *Service) Role(ctx context.Context, q store.Querier, name string) (Role, error) {
	r := Role{Name: name, BuiltIn: IsBuiltIn(name)}
	var err error
	if r.Label, r.Permissions, err = permissionsOf(ctx, q, name); err != nil {
		return Role{}, err
	}
	if name == Owner || name == Admin {
		r.RequireTOTP = true
		return r, nil
	}
	var req int64
	err = q.QueryRowContext(ctx, "SELECT require_totp FROM role_policies WHERE role = ?", name).Scan(&req)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Role{}, fmt.Errorf("access: role policy: %w", err)
	}
	r.RequireTOTP = req == 1
	return r, nil
}

// permissionsOf is what a role grants, and its label: from code for a built-in role,
// from the roles table for a custom one. Every request asks it; the 2FA policy, which
// only sign-in needs, is left to Role.
func permissionsOf(ctx context.Context, q store.Querier, name string) (string, []Permission, error) {
	if IsBuiltIn(name) {
		return name, builtinPermissions(name), nil
	}
	var label, perms string
	err := q.QueryRowContext(ctx, "SELECT label, permissions FROM roles WHERE name = ?", name).Scan(&label, &perms)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, fmt.Errorf("role %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return "", nil, fmt.Errorf("access: role: %w", err)
	}
	return label, parsePermissions(perms), nil
}

// Roles lists the built-in roles, then the custom ones by name.
func (s *Service) Roles(ctx context.Context) ([]Role, error) {
	names := slices.Clone(BuiltIn)
	rows, err := s.db.QueryContext(ctx, "SELECT name FROM roles ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("access: roles: %w", err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]Role, 0, len(names))
	for _, n := range names {
		r, err := s.Role(ctx, s.db, n)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// SaveRole creates or changes a custom role. by must hold every permission the role
// grants, and, when changing a role, every permission it granted before: nobody widens
// or narrows what others may do beyond their own rights.
func (s *Service) SaveRole(ctx context.Context, tx *store.Tx, by Principal, r Role) error {
	if IsBuiltIn(r.Name) {
		return fmt.Errorf("%w: %q is a built-in role and cannot be changed", ErrInvalid, r.Name)
	}
	if !roleName.MatchString(r.Name) {
		return fmt.Errorf("%w: a role name is 2 to 32 lower-case letters, digits, - or _, starting with a letter", ErrInvalid)
	}
	r.Label = strings.TrimSpace(r.Label)
	if r.Label == "" || len([]rune(r.Label)) > 50 || strings.ContainsAny(r.Label, "\r\n\x00") {
		return fmt.Errorf("%w: a role label is 1 to 50 characters on one line", ErrInvalid)
	}
	for _, p := range r.Permissions {
		if !Known(p) {
			return fmt.Errorf("%w: unknown permission %q", ErrInvalid, p)
		}
	}
	if !by.Can(RolesManage) {
		return ErrNotHeld
	}
	if err := by.covers(r.Permissions); err != nil {
		return err
	}
	if old, err := s.Role(ctx, tx, r.Name); err == nil {
		if err := by.covers(old.Permissions); err != nil {
			return err
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	now := store.Millis(s.clock.Now())
	_, err := tx.ExecContext(ctx, `INSERT INTO roles (name, label, permissions, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET label = excluded.label, permissions = excluded.permissions, updated_at = excluded.updated_at`,
		r.Name, r.Label, formatPermissions(r.Permissions), now, now)
	if err != nil {
		return fmt.Errorf("access: save role: %w", err)
	}
	return s.setRequireTOTP(ctx, tx, r.Name, r.RequireTOTP, now)
}

// SetRequireTOTP sets whether members of a role (other than owner and admin, who always
// must) sign in with a second factor.
func (s *Service) SetRequireTOTP(ctx context.Context, tx *store.Tx, by Principal, role string, require bool) error {
	if role == Owner || role == Admin {
		return fmt.Errorf("%w: owners and admins always sign in with a second factor", ErrInvalid)
	}
	r, err := s.Role(ctx, tx, role)
	if err != nil {
		return err
	}
	if !by.Can(RolesManage) {
		return ErrNotHeld
	}
	if err := by.covers(r.Permissions); err != nil {
		return err
	}
	return s.setRequireTOTP(ctx, tx, role, require, store.Millis(s.clock.Now()))
}

func (s *Service) setRequireTOTP(ctx context.Context, tx *store.Tx, role string, require bool, now int64) error {
	v := 0
	if require {
		v = 1
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO role_policies (role, require_totp, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (role) DO UPDATE SET require_totp = excluded.require_totp, updated_at = excluded.updated_at`, role, v, now)
	if err != nil {
		return fmt.Errorf("access: role policy: %w", err)
	}
	return nil
}

// DeleteRole removes a custom role nobody (no staff member, no API token) has.
func (s *Service) DeleteRole(ctx context.Context, tx *store.Tx, by Principal, name string) error {
	r, err := s.Role(ctx, tx, name)
	if err != nil {
		return err
	}
	if r.BuiltIn {
		return fmt.Errorf("%w: %q is a built-in role", ErrInvalid, name)
	}
	if !by.Can(RolesManage) {
		return ErrNotHeld
	}
	if err := by.covers(r.Permissions); err != nil {
		return err
	}
	var n int
	err = tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM staff WHERE role = ? AND disabled_at IS NULL)
		+ (SELECT COUNT(*) FROM api_tokens WHERE role = ? AND revoked_at IS NULL)`, name, name).Scan(&n)
	if err != nil {
		return fmt.Errorf("access: role use: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("%w: %d staff members or API tokens still have role %q", ErrInUse, n, name)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM roles WHERE name = ?", name); err != nil {
		return fmt.Errorf("access: delete role: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM role_policies WHERE role = ?", name); err != nil {
		return fmt.Errorf("access: delete role: %w", err)
	}
	return nil
}

// CheckAssign says whether by may give someone role to (and take away role from): by
// must hold every permission of both. An admin cannot make anyone an owner, nor demote
// one.
func (s *Service) CheckAssign(ctx context.Context, q store.Querier, by Principal, from, to string) error {
	if !by.Can(StaffManage) {
		return ErrNotHeld
	}
	for _, name := range []string{from, to} {
		if name == "" {
			continue
		}
		r, err := s.Role(ctx, q, name)
		if err != nil {
			return err
		}
		if err := by.covers(r.Permissions); err != nil {
			return err
		}
	}
	return nil
}

// RequireTOTP reports whether members of role must use a second factor. An unknown role
// requires it: failing closed.
func (s *Service) RequireTOTP(ctx context.Context, role string) bool {
	r, err := s.Role(ctx, s.db, role)
	return err != nil || r.RequireTOTP
}

func parsePermissions(s string) []Permission {
	var out []Permission
	for _, f := range strings.Fields(s) {
		if p := Permission(f); Known(p) {
			out = append(out, p)
		}
	}
	return out
}

func formatPermissions(ps []Permission) string {
	ss := make([]string, 0, len(ps))
	for _, p := range All { // canonical order, no duplicates
		if slices.Contains(ps, p) {
			ss = append(ss, string(p))
		}
	}
	return strings.Join(ss, " ")
}
