package richmenu

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/store"
)

// Run makes due links until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	for {
		n, err := s.RunOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.logger.Warn("richmenu: round failed; retrying", "err", err)
		}
		if n == s.cfg.BatchSize && err == nil {
			continue // more is due
		}
		if _, err := clock.Wait(ctx, s.clock, s.cfg.PollInterval, s.wake); err != nil {
			return nil
		}
	}
}

// claimed is one row in this worker's hands.
type claimed struct {
	id                      int64
	version                 int64
	attempts                int
	channelID, userID, menu string
	err                     error // the call's outcome
}

// RunOnce claims what is due, calls LINE for each and records the outcomes. It returns
// how many rows it claimed.
func (s *Service) RunOnce(ctx context.Context) (int, error) {
	if s.linker == nil {
		return 0, errors.New("richmenu: no LINE client to call")
	}
	rows, err := s.claim(ctx)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	work := make(chan *claimed)
	var wg sync.WaitGroup
	for range min(s.cfg.Workers, len(rows)) {
		wg.Go(func() {
			for c := range work {
				c.err = s.call(ctx, c)
			}
		})
	}
	for _, c := range rows {
		work <- c
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		// Interrupted calls are not recorded: their lease runs out and they are made
		// again, which linking allows.
		return len(rows), nil
	}
	return len(rows), s.recordAll(context.WithoutCancel(ctx), rows)
}

// claim takes due rows that no worker holds, and leases them. PostgreSQL: SKIP LOCKED,
// so instances sharing the database take different rows.
func (s *Service) claim(ctx context.Context) ([]*claimed, error) {
	now := s.clock.Now()
	var out []*claimed
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		out = out[:0]
		lock := ""
		if tx.Dialect() == store.Postgres {
			lock = " FOR UPDATE SKIP LOCKED"
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, version, attempts, channel_id, line_user_id, rich_menu_id FROM richmenu_links
			WHERE state = 'pending' AND due_at <= ? AND lease_until <= ? ORDER BY due_at, id LIMIT ?`+lock,
			store.Millis(now), store.Millis(now), s.cfg.BatchSize)
		if err != nil {
			return err
		}
		for rows.Next() {
			c := &claimed{}
			if err := rows.Scan(&c.id, &c.version, &c.attempts, &c.channelID, &c.userID, &c.menu); err != nil {
				rows.Close()
				return err
			}
			out = append(out, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(out) == 0 {
			return err
		}
		args := []any{store.Millis(now.Add(s.cfg.Lease))}
		for _, c := range out {
			args = append(args, c.id)
		}
		_, err = tx.ExecContext(ctx, `UPDATE richmenu_links SET lease_until = ? WHERE id IN `+store.Placeholders(1, len(out)), args...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("richmenu: claim: %w", err)
	}
	return out, nil
}

// call makes one link or unlink, within the lease.
func (s *Service) call(ctx context.Context, c *claimed) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Lease*2/3)
	defer cancel()
	if c.menu == "" {
		return s.linker.UnlinkRichMenu(ctx, c.channelID, c.userID)
	}
	return s.linker.LinkRichMenu(ctx, c.channelID, c.userID, c.menu)
}

// recordAll writes the outcomes in one transaction.
func (s *Service) recordAll(ctx context.Context, rows []*claimed) error {
	now := s.clock.Now()
	return s.db.WriteTx(ctx, func(tx *store.Tx) error {
		for _, c := range rows {
			if err := s.record(ctx, tx, c, now); err != nil {
				return fmt.Errorf("richmenu: record %d: %w", c.id, err)
			}
		}
		return nil
	})
}

// record writes one outcome. It applies only to the request that was made: if the row
// was rewritten meanwhile (a newer menu, same version no longer) or dropped, the worker
// just lets go of it, and the newer request is made next.
func (s *Service) record(ctx context.Context, tx *store.Tx, c *claimed, now time.Time) error {
	nowMs := store.Millis(now)
	attempts := c.attempts + 1
	var res sql.Result
	var err error
	switch {
	case c.err == nil:
		res, err = tx.ExecContext(ctx, `UPDATE richmenu_links SET state = ?, attempts = ?, lease_until = 0, last_error = '',
			done_at = ?, updated_at = ? WHERE id = ? AND version = ? AND state = ?`, Done, attempts, nowMs, nowMs, c.id, c.version, Pending)
	case line.IsPermanent(c.err) || attempts >= s.cfg.MaxAttempts:
		// LINE's error text names the endpoint and LINE's own message, never the user.
		reason := c.err.Error()
		if !line.IsPermanent(c.err) {
			reason = fmt.Sprintf("gave up after %d attempts: %s", attempts, reason)
		}
		s.logger.Warn("richmenu: link failed", "link", c.id, "channel", c.channelID, "attempts", attempts, "err", c.err)
		res, err = tx.ExecContext(ctx, `UPDATE richmenu_links SET state = ?, attempts = ?, lease_until = 0, last_error = ?,
			updated_at = ? WHERE id = ? AND version = ? AND state = ?`, Failed, attempts, reason, nowMs, c.id, c.version, Pending)
	default:
		// 5xx, 429 after the client's own waiting, or no answer: again later.
		res, err = tx.ExecContext(ctx, `UPDATE richmenu_links SET attempts = ?, due_at = ?, lease_until = 0, last_error = ?,
			updated_at = ? WHERE id = ? AND version = ? AND state = ?`,
			attempts, store.Millis(now.Add(clock.Backoff(attempts, time.Second, 5*time.Minute))), c.err.Error(), nowMs, c.id, c.version, Pending)
	}
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	_, err = tx.ExecContext(ctx, `UPDATE richmenu_links SET lease_until = 0 WHERE id = ?`, c.id)
	if err == nil {
		tx.AfterCommit(s.Notify) // the newer request, if any, is due
	}
	return err
}
