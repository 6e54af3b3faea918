package friend

import (
	"context"
	"fmt"

	"github.com/linestep/linestep/internal/store"
)

// Erasure: a friend asks the account to stop using and delete what it holds about them
// (APPI's 利用停止・消去), or the business no longer needs it. Erase deletes the friend's
// row, and with it, through the foreign keys, their field values, tags, conversation,
// runs of scenarios, coupons issued and rich menu links; the packages that keep more
// beyond the keys' reach (what was sent to them, the webhook events they caused) delete
// it in hooks registered with OnErase. All of it happens in the caller's transaction.
//
// A LINE user who still follows the account and writes again after being erased becomes
// a new friend, with nothing of before.

// EraseFunc deletes, inside the erasing transaction and before the friend's row goes,
// what a package keeps about the friend. An error undoes the whole erasure.
type EraseFunc func(ctx context.Context, tx *store.Tx, f Friend) error

// OnErase registers f; register before serving.
func (s *Service) OnErase(f EraseFunc) { s.erased = append(s.erased, f) }

// Erase deletes a friend of the channel and everything that names them (see above).
func (s *Service) Erase(ctx context.Context, tx *store.Tx, channelID string, id int64) error {
	// An event for the friend being processed waits, or is waited for (PostgreSQL).
	if err := tx.Hold(ctx, "SELECT id FROM friends WHERE channel_id = ? AND id = ? FOR UPDATE", channelID, id); err != nil {
		return fmt.Errorf("friend: erase: %w", err)
	}
	f, err := s.Lookup(ctx, tx, channelID, id)
	if err != nil {
		return err
	}
	for _, fn := range s.erased {
		if err := fn(ctx, tx, f); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM friends WHERE id = ?", f.ID); err != nil {
		return fmt.Errorf("friend: erase: %w", err)
	}
	return nil
}
