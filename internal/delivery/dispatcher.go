package delivery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/store"
)

// batch is one API call as claimed from the database.
type batch struct {
	id         int64
	channelID  string
	method     string
	messages   []json.RawMessage
	recipients recipients
	attempts   int
}

// recipients is the batches.recipients column.
type recipients struct {
	To         []string `json:"to"`
	ReplyToken string   `json:"replyToken,omitempty"`
}

// Run dispatches until ctx is done. It is a pipeline, so that LINE's rate, not the
// database, sets the pace: a claimer keeps a budget of calls claimed ahead (see
// maxInflight) in a queue, workers send them (the LINE client's limiters hold the rate),
// and a recorder writes outcomes in groups, one transaction for whatever finished while
// the previous one committed.
func (s *Service) Run(ctx context.Context) error {
	for {
		if err := s.ensureInstallID(ctx); err == nil {
			break
		} else if ctx.Err() != nil {
			return nil
		} else {
			s.logger.Error("delivery: dispatcher cannot start", "err", err)
		}
		if _, err := clock.Wait(ctx, s.clock, s.cfg.PollInterval, s.wake); err != nil {
			return nil
		}
	}
	budget := s.maxInflight()
	// Buffered to the whole budget: the claimer queues a claim at once and is back for
	// the next while the workers still have half a budget to send. Handed over one by
	// one, the next claim started when only the workers' own calls were left, and every
	// slow claim left the limiter idle.
	work := make(chan *batch, budget)
	done := make(chan sendOutcome, budget)
	inflight := map[int64]int{} // batch ID -> weight
	load := 0                   // sum of inflight
	var mu sync.Mutex           // guards inflight and load

	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Go(func() {
			for b := range work {
				if ctx.Err() != nil {
					continue // shutting down: its lease runs out and it is sent then
				}
				done <- s.send(ctx, b)
			}
		})
	}
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		for o := range done {
			group := []sendOutcome{o}
		more:
			for len(group) < budget {
				select {
				case o, ok := <-done:
					if !ok {
						break more
					}
					group = append(group, o)
				default:
					break more
				}
			}
			if ctx.Err() == nil {
				if err := s.recordAll(context.WithoutCancel(ctx), group); err != nil {
					// The batches stay 'sending' under their lease: sent again, same key.
					s.logger.Error("delivery: recording outcomes failed", "batches", len(group), "err", err)
				}
			}
			mu.Lock()
			for _, o := range group {
				load -= inflight[o.b.id]
				delete(inflight, o.b.id)
			}
			mu.Unlock()
			s.Notify() // room for more
		}
	}()
	defer func() {
		close(work)
		wg.Wait()
		close(done)
		<-recorded
	}()

	for {
		mu.Lock()
		room := budget - load
		mine := make([]int64, 0, len(inflight))
		for id := range inflight {
			mine = append(mine, id)
		}
		mu.Unlock()
		if room >= budget/2 || len(mine) == 0 {
			batches, err := s.claim(ctx, room, mine)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				s.logger.Error("delivery: dispatch round failed", "err", err)
			}
			claimed := 0
			mu.Lock()
			for _, b := range batches {
				w := weight(b.method)
				inflight[b.id] = w
				load += w
				claimed += w
			}
			mu.Unlock()
			for _, b := range batches {
				select {
				case work <- b:
				case <-ctx.Done():
					return nil
				}
			}
			if room-claimed < multicastWeight && err == nil {
				continue // full: there may be more
			}
		}
		// Nothing more is due, or enough is in flight: wait for new work, for room, or
		// for the poll (leases running out, due times coming).
		if _, err := clock.Wait(ctx, s.clock, s.cfg.PollInterval, s.wake); err != nil {
			return nil
		}
	}
}

// multicastWeight is a multicast's share of the in-flight budget, in pushes: LINE takes
// ten pushes (or replies) in the time it takes one multicast (2,000 and 200 calls a
// second).
const multicastWeight = 10

func weight(method string) int {
	if method == MethodMulticast {
		return multicastWeight
	}
	return 1
}

// maxInflight is the budget of calls claimed and not yet recorded, in pushes (weight):
// enough to keep every worker busy and a claim ahead (about 1.3 s of LINE's rate, for
// pushes and multicasts alike), few enough that they go out well within their lease. It
// is 8 multicasts per worker, as it was when every call counted as one, while pushes
// get the ten times as many that LINE takes in that time.
func (s *Service) maxInflight() int {
	return max(8*s.cfg.Workers, 2) * multicastWeight
}

// DispatchOnce claims what is due (new deliveries, queued batches and batches whose
// lease ran out), sends it and records the outcomes. It returns how many batches it
// handled.
func (s *Service) DispatchOnce(ctx context.Context) (int, error) {
	if err := s.ensureInstallID(ctx); err != nil {
		return 0, err
	}
	batches, err := s.claim(ctx, s.cfg.ClaimSize*multicastWeight, nil)
	if err != nil || len(batches) == 0 {
		return 0, err
	}
	work := make(chan *batch)
	outcomes := make([]sendOutcome, 0, len(batches))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(s.cfg.Workers, len(batches)) {
		wg.Go(func() {
			for b := range work {
				o := s.send(ctx, b)
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
			}
		})
	}
	for _, b := range batches {
		work <- b
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return len(batches), nil
	}
	return len(batches), s.recordAll(context.WithoutCancel(ctx), outcomes)
}

// ensureInstallID reads (or creates) this database's random installation ID.
func (s *Service) ensureInstallID(ctx context.Context) error {
	if s.installID != "" {
		return nil
	}
	b := make([]byte, 16)
	rand.Read(b)
	if _, err := s.db.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('install_id', ?) ON CONFLICT (key) DO NOTHING`,
		hex.EncodeToString(b)); err != nil {
		return fmt.Errorf("delivery: install id: %w", err)
	}
	var id string
	if err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'install_id'`).Scan(&id); err != nil {
		return fmt.Errorf("delivery: install id: %w", err)
	}
	s.installID = id
	return nil
}

// retryKey names one API call for good: the same batch and method always give the same
// key, in this process or any other sharing the database.
func (s *Service) retryKey(b *batch) string {
	return line.RetryKey(s.installID, "batch", strconv.FormatInt(b.id, 10), b.method)
}

// sendOutcome is what came of one call.
type sendOutcome struct {
	b   *batch
	res line.SendResult
	err error
}

// send makes the API call.
func (s *Service) send(ctx context.Context, b *batch) sendOutcome {
	callCtx, cancel := context.WithTimeout(ctx, s.cfg.Lease*2/3)
	defer cancel()
	var res line.SendResult
	var err error
	switch b.method {
	case MethodReply:
		res, err = s.sender.Reply(callCtx, b.channelID, b.recipients.ReplyToken, b.messages)
	case MethodPush:
		res, err = s.sender.Push(callCtx, b.channelID, b.recipients.To[0], b.messages, s.retryKey(b))
	case MethodMulticast:
		res, err = s.sender.Multicast(callCtx, b.channelID, b.recipients.To, b.messages, s.retryKey(b))
	default:
		err = fmt.Errorf("%w: unknown method %q", ErrInvalidItem, b.method)
	}
	return sendOutcome{b: b, res: res, err: err}
}

// recordAll writes the outcomes of several calls in one transaction (one commit, one
// fsync for all). A call interrupted by shutdown is not recorded: its lease runs out and
// it is sent again, same key.
func (s *Service) recordAll(ctx context.Context, group []sendOutcome) error {
	now := s.clock.Now()
	return s.db.WriteTx(ctx, func(tx *store.Tx) error {
		var sent []sendOutcome
		for _, o := range group {
			switch {
			case errors.Is(o.err, context.Canceled):
			case o.err == nil:
				sent = append(sent, o)
			default:
				if err := s.record(ctx, tx, o.b, o.res, o.err, now); err != nil {
					return fmt.Errorf("batch %d: %w", o.b.id, err)
				}
			}
		}
		return s.recordSent(ctx, tx, sent, now)
	})
}

// recordSent marks batches sent, in a statement or two whatever their number (a push
// per personalised message makes thousands a second). A batch recorded already, by
// whoever sent it again after our lease ran out, is left as it is.
func (s *Service) recordSent(ctx context.Context, tx *store.Tx, sent []sendOutcome, now time.Time) error {
	if len(sent) == 0 {
		return nil
	}
	nowMs := store.Millis(now)
	if tx.Dialect() == store.Postgres {
		n := len(sent)
		ids, attempts, accepted := make([]int64, n), make([]int64, n), make([]int64, n)
		requests := make([]string, n)
		for i, o := range sent {
			ids[i], attempts[i], requests[i], accepted[i] = o.b.id, int64(o.b.attempts+1), o.res.RequestID, int64(boolInt(o.res.AlreadyAccepted))
		}
		_, err := tx.ExecContext(ctx, `UPDATE batches b SET state = 'sent', attempts = u.attempts, request_id = u.request_id,
			accepted_earlier = u.accepted, last_error = '', sent_at = ?
			FROM unnest(?::bigint[], ?::bigint[], ?::text[], ?::bigint[]) AS u(id, attempts, request_id, accepted)
			WHERE b.id = u.id AND b.state = 'sending'`, nowMs, ids, attempts, requests, accepted)
		return err
	}
	const cols = 4
	args := make([]any, 0, 1+500*cols)
	for start := 0; start < len(sent); start += 500 {
		chunk := sent[start:min(start+500, len(sent))]
		args = append(args[:0], nowMs)
		for _, o := range chunk {
			args = append(args, o.b.id, o.b.attempts+1, o.res.RequestID, boolInt(o.res.AlreadyAccepted))
		}
		if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'sent', attempts = v.column2, request_id = v.column3,
			accepted_earlier = v.column4, last_error = '', sent_at = ?
			FROM (VALUES `+store.Placeholders(len(chunk), cols)+`) AS v WHERE batches.id = v.column1 AND batches.state = 'sending'`,
			args...); err != nil {
			return err
		}
	}
	return nil
}

// record writes a failed call's outcome (successes go to recordSent) to its batch and
// its deliveries. A sent batch's deliveries, by contrast, are never rewritten: they stay
// 'sending' in their own rows and read as sent through it (see StateSQL), so a
// multicast to 500 costs one row write, not 501.
func (s *Service) record(ctx context.Context, tx *store.Tx, b *batch, res line.SendResult, sendErr error, now time.Time) error {
	nowMs := store.Millis(now)
	attempts := b.attempts + 1
	switch {
	case b.method == MethodReply && errors.Is(sendErr, line.ErrReplyOutcomeUnknown):
		// A reply has no retry key: when its outcome is unknown, sending it again
		// could deliver it twice, so it is counted as sent and the doubt recorded.
		const note = "reply outcome unknown; not resent, to avoid a duplicate"
		res, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'sent', attempts = ?, request_id = ?, accepted_earlier = ?,
			last_error = ?, sent_at = ? WHERE id = ? AND state = 'sending'`,
			attempts, res.RequestID, boolInt(res.AlreadyAccepted), note, nowMs, b.id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // recorded already, by whoever else sent it after our lease ran out
		}
		_, err = tx.ExecContext(ctx, `UPDATE deliveries SET last_error = ? WHERE batch_id = ?`, note, b.id)
		return err
	case b.method == MethodReply:
		// The token was refused or expired: LINE did not send. Push instead, now.
		method := MethodPush
		if len(b.recipients.To) != 1 {
			return fmt.Errorf("%w: reply batch %d with %d recipients", ErrInvalidItem, b.id, len(b.recipients.To))
		}
		_, err := tx.ExecContext(ctx, `UPDATE batches SET method = ?, attempts = ?, lease_until = ?, last_error = ? WHERE id = ? AND state = 'sending'`,
			method, attempts, nowMs, "reply failed, sent by push: "+sendErr.Error(), b.id)
		if err != nil {
			return err
		}
		tx.AfterCommit(s.Notify)
		_, err = tx.ExecContext(ctx, `UPDATE deliveries SET last_error = ? WHERE batch_id = ?`,
			"reply token refused or expired; sent by push", b.id)
		return err
	case line.IsPermanent(sendErr) || errors.Is(sendErr, ErrInvalidItem) || errors.Is(sendErr, line.ErrInvalidRetryKey) || attempts >= s.cfg.MaxAttempts:
		reason := sendErr.Error()
		if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'failed', attempts = ?, last_error = ? WHERE id = ? AND state = 'sending'`,
			attempts, reason, b.id); err != nil {
			return err
		}
		s.logger.Warn("delivery: batch failed", "batch", b.id, "channel", b.channelID, "method", b.method, "size", len(b.recipients.To), "err", sendErr)
		_, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'failed', method = ?, last_error = ? WHERE batch_id = ? AND state = 'sending'`,
			b.method, reason, b.id)
		return err
	default:
		// 5xx, 429 after the client's own backoff, or no answer: try again later with
		// the same key. Whoever claims it then, LINE recognises the call.
		retryAt := now.Add(clock.Backoff(attempts, time.Second, 5*time.Minute))
		_, err := tx.ExecContext(ctx, `UPDATE batches SET attempts = ?, lease_until = ?, last_error = ? WHERE id = ? AND state = 'sending'`,
			attempts, store.Millis(retryAt), sendErr.Error(), b.id)
		return err
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
