package friend

import (
	"context"
	"database/sql"
	"errors"
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

// Erase deletes a friend of the channel and everything that names them (see above). It
// returns the friend as they were, for the caller's audit record (which names them by ID
// only).
func (s *Service) Erase(ctx context.Context, tx *store.Tx, channelID string, id int64) (Friend, error) {
	lock := ""
	if tx.Dialect() == store.Postgres {
		lock = " FOR UPDATE" // an event for the friend being processed waits, or is waited for
	}
	f, err := scanFriend(tx.QueryRowContext(ctx, "SELECT "+friendColumns+" FROM friends WHERE channel_id = ? AND id = ?"+lock, channelID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Friend{}, fmt.Errorf("friend %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return Friend{}, fmt.Errorf("friend: erase: %w", err)
	}
	for _, fn := range s.erased {
		if err := fn(ctx, tx, f); err != nil {
			return Friend{}, err
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM friends WHERE id = ?", f.ID); err != nil {
		return Friend{}, fmt.Errorf("friend: erase: %w", err)
	}
	return f, nil
}
