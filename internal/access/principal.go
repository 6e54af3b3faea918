package access

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/linestep/linestep/internal/store"
)

// Principal is who is acting: a signed-in staff member or an API token, with the
// permissions of its role and the accounts it may work on.
type Principal struct {
	StaffID int64  // 0 for an API token
	TokenID int64  // 0 for a staff member
	Name    string // staff login or token name, for the audit trail
	Role    string

	perms       []Permission
	allChannels bool
	channels    []string
}

// Can reports whether the principal holds p.
func (p Principal) Can(perm Permission) bool { return slices.Contains(p.perms, perm) }

// OnChannel reports whether the principal works on a channel (LINE account).
func (p Principal) OnChannel(channelID string) bool {
	return p.allChannels || slices.Contains(p.channels, channelID)
}

// CanOn is Can and OnChannel together: the question every channel page asks.
func (p Principal) CanOn(channelID string, perm Permission) bool {
	return p.OnChannel(channelID) && p.Can(perm)
}

// Show returns a value as the principal may see it: as it is when the principal may read
// personal data or the value is not personal, masked otherwise.
func (p Principal) Show(v string, personal bool) string {
	if !personal || p.Can(FriendsReadPII) {
		return v
	}
	return Mask(v)
}

// Permissions lists what the principal holds.
func (p Principal) Permissions() []Permission { return slices.Clone(p.perms) }

// AllChannels reports whether the principal works on every channel (owners, and API
// tokens not bound to one).
func (p Principal) AllChannels() bool { return p.allChannels }

// Channels lists the channels of a principal bound to some; nil with AllChannels.
func (p Principal) Channels() []string { return slices.Clone(p.channels) }

// covers checks that p holds every permission in want.
func (p Principal) covers(want []Permission) error {
	for _, w := range want {
		if !p.Can(w) {
			return fmt.Errorf("%w: %s", ErrNotHeld, w)
		}
	}
	return nil
}

// StaffPrincipal loads a staff member's role and channels. An unknown role (a custom
// role deleted under someone) grants nothing.
func (s *Service) StaffPrincipal(ctx context.Context, staffID int64, login, role string) (Principal, error) {
	p := Principal{StaffID: staffID, Name: login, Role: role}
	_, perms, err := permissionsOf(ctx, s.db, role)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Principal{}, err
	}
	p.perms = perms
	if role == Owner {
		p.allChannels = true
		return p, nil
	}
	p.channels, err = s.Channels(ctx, s.db, staffID)
	return p, err
}

// TokenPrincipal is an API token's principal: its role, on its channel or on all.
func (s *Service) TokenPrincipal(ctx context.Context, tokenID int64, name, role, channelID string) (Principal, error) {
	p := Principal{TokenID: tokenID, Name: name, Role: role}
	_, perms, err := permissionsOf(ctx, s.db, role)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Principal{}, err
	}
	p.perms = perms
	if channelID == "" {
		p.allChannels = true
	} else {
		p.channels = []string{channelID}
	}
	return p, nil
}

// Channels lists the channels a staff member works on (owners work on all, whatever
// this says).
func (s *Service) Channels(ctx context.Context, q store.Querier, staffID int64) ([]string, error) {
	rows, err := q.QueryContext(ctx, "SELECT channel_id FROM staff_channels WHERE staff_id = ? ORDER BY channel_id", staffID)
	if err != nil {
		return nil, fmt.Errorf("access: channels: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// SetChannels replaces the channels a staff member works on. by must work on every
// channel it adds or removes.
func (s *Service) SetChannels(ctx context.Context, tx *store.Tx, by Principal, staffID int64, channels []string) error {
	if !by.Can(StaffManage) {
		return ErrNotHeld
	}
	old, err := s.Channels(ctx, tx, staffID)
	if err != nil {
		return err
	}
	for _, c := range slices.Concat(old, channels) {
		if slices.Contains(old, c) == slices.Contains(channels, c) {
			continue // unchanged
		}
		if !by.OnChannel(c) {
			return fmt.Errorf("%w: channel %s", ErrNotHeld, c)
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM staff_channels WHERE staff_id = ?", staffID); err != nil {
		return fmt.Errorf("access: set channels: %w", err)
	}
	for _, c := range channels {
		_, err := tx.ExecContext(ctx, "INSERT INTO staff_channels (staff_id, channel_id) VALUES (?, ?) ON CONFLICT DO NOTHING", staffID, c)
		if err != nil {
			return fmt.Errorf("access: set channels: %w", err)
		}
	}
	return nil
}
