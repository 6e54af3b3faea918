package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/linestep/linestep/internal/store"
)

// ErrInFlight refuses to erase a friend while a call carrying them is out (or waiting
// to be retried): its recipients are fixed for the call's retry key until it ends.
var ErrInFlight = errors.New("delivery: a message to the friend is being sent right now; erase them once it is done")

// EraseFriend deletes what the outbox holds about a friend being erased (friend.Erase):
// their deliveries (with the texts rendered for them), and their LINE user ID from the
// recipients of the calls that carried them, which stay as the record of what was sent
// to the others; a call to them alone keeps no content either. A broadcast keeps its
// totals, as after retention.
func (s *Service) EraseFriend(ctx context.Context, tx *store.Tx, friendID int64, lineUserID string) error {
	// The calls that carried them are found through their deliveries, every one of which
	// is locked first, pending ones too (0: in no call yet): a dispatcher claiming one into
	// a call right now holds it until the call is written, and the call is then seen.
	lock := ""
	if tx.Dialect() == store.Postgres {
		lock = " FOR UPDATE"
	}
	batchIDs, err := queryIDs(ctx, tx, "SELECT COALESCE(batch_id, 0) FROM deliveries WHERE friend_id = ?"+lock, friendID)
	if err != nil {
		return fmt.Errorf("delivery: erase: %w", err)
	}
	batchIDs = slices.DeleteFunc(batchIDs, func(id int64) bool { return id == 0 })
	slices.Sort(batchIDs)
	for chunk := range slices.Chunk(slices.Compact(batchIDs), 500) {
		if err := s.eraseFromCalls(ctx, tx, chunk, lineUserID); err != nil {
			return err
		}
	}
	if s.beforeExpire != nil {
		if err := s.beforeExpire(ctx, tx, "friend_id = ?", friendID); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM deliveries WHERE friend_id = ?", friendID); err != nil {
		return fmt.Errorf("delivery: erase: %w", err)
	}
	return nil
}

// eraseFromCalls takes a LINE user out of the recipients fixed in the rows of some
// calls. (A call that EnqueueMany formed names its recipients through their deliveries
// alone.) One still out refuses it.
func (s *Service) eraseFromCalls(ctx context.Context, tx *store.Tx, batchIDs []int64, lineUserID string) error {
	in, args := inList(batchIDs)
	rows, err := tx.QueryContext(ctx, "SELECT id, state, recipients FROM batches WHERE recipients <> '' AND id IN "+in, args...)
	if err != nil {
		return fmt.Errorf("delivery: erase: %w", err)
	}
	type carrying struct {
		id                int64
		state, recipients string
	}
	var calls []carrying
	for rows.Next() {
		var c carrying
		if err := rows.Scan(&c.id, &c.state, &c.recipients); err != nil {
			rows.Close()
			return fmt.Errorf("delivery: erase: %w", err)
		}
		calls = append(calls, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("delivery: erase: %w", err)
	}
	for _, c := range calls {
		if c.state == Sending || c.state == "queued" {
			return ErrInFlight
		}
		var r recipients
		if err := json.Unmarshal([]byte(c.recipients), &r); err != nil {
			return fmt.Errorf("delivery: erase: batch %d: %w", c.id, err)
		}
		r.To = slices.DeleteFunc(r.To, func(u string) bool { return u == lineUserID })
		if len(r.To) > 0 {
			b, _ := json.Marshal(r)
			_, err = tx.ExecContext(ctx, "UPDATE batches SET recipients = ? WHERE id = ?", string(b), c.id)
		} else {
			// Theirs alone: a reply or a push, whose content may name them. The row
			// stays (its ID is its retry key's), empty.
			_, err = tx.ExecContext(ctx, `UPDATE batches SET recipients = '{"to":[]}', messages = '[]' WHERE id = ?`, c.id)
		}
		if err != nil {
			return fmt.Errorf("delivery: erase: %w", err)
		}
	}
	return nil
}
