package delivery

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
// database, sets the pace: a claimer keeps up to maxInflight batches claimed, workers
// send them (the LINE client's limiters hold the rate), and a recorder writes outcomes
// in groups, one transaction for whatever finished while the previous one committed.
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
	maxInflight := s.maxInflight()
	work := make(chan *batch)
	done := make(chan sendOutcome, maxInflight)
	inflight := map[int64]bool{}
	var mu sync.Mutex // guards inflight

	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Go(func() {
			for b := range work {
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
			for len(group) < maxInflight {
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
		n := len(inflight)
		mine := make([]int64, 0, n)
		for id := range inflight {
			mine = append(mine, id)
		}
		mu.Unlock()
		claimed := 0
		if room := maxInflight - n; room >= maxInflight/2 || n == 0 {
			batches, err := s.claim(ctx, room, mine)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				s.logger.Error("delivery: dispatch round failed", "err", err)
			}
			mu.Lock()
			for _, b := range batches {
				inflight[b.id] = true
			}
			mu.Unlock()
			for _, b := range batches {
				select {
				case work <- b:
				case <-ctx.Done():
					return nil
				}
			}
			claimed = len(batches)
			if claimed == room && err == nil {
				continue
			}
		}
		// Nothing more is due, or enough is in flight: wait for new work, for room, or
		// for the poll (leases running out, due times coming).
		if _, err := clock.Wait(ctx, s.clock, s.cfg.PollInterval, s.wake); err != nil {
			return nil
		}
	}
}

// maxInflight bounds the batches claimed and not yet recorded: enough to keep every
// worker busy and a claim ahead, few enough that they go out well within their lease.
func (s *Service) maxInflight() int {
	return max(8*s.cfg.Workers, 2)
}

// DispatchOnce claims what is due (new deliveries, queued batches and batches whose
// lease ran out), sends it and records the outcomes. It returns how many batches it
// handled.
func (s *Service) DispatchOnce(ctx context.Context) (int, error) {
	if err := s.ensureInstallID(ctx); err != nil {
		return 0, err
	}
	batches, err := s.claim(ctx, s.cfg.ClaimSize, nil)
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

// claim takes, in one transaction, up to limit batches: those whose lease ran out
// (their sender died or is retrying later; except mine, still in this process's hands),
// batches queued whole by EnqueueMany, and due pending deliveries, which it groups into
// new batches.
func (s *Service) claim(ctx context.Context, limit int, mine []int64) ([]*batch, error) {
	now := s.clock.Now()
	lease := store.Millis(now.Add(s.cfg.Lease))
	var out []*batch
	err := s.db.WriteTx(ctx, func(tx *store.Tx) error {
		out = out[:0]
		lock := ""
		if tx.Dialect() == store.Postgres {
			lock = " FOR UPDATE SKIP LOCKED"
		}
		old, err := s.takeOver(ctx, tx, now, lease, lock, min(limit, max(s.cfg.ClaimSize/100, 50)), mine)
		if err != nil {
			return err
		}
		out = append(out, old...)
		if room := limit - len(out); room > 0 {
			queued, err := s.claimQueued(ctx, tx, lease, lock, room)
			if err != nil {
				return err
			}
			out = append(out, queued...)
		}
		if room := min(limit, s.cfg.ClaimSize) - len(out); room > 0 {
			fresh, err := s.formBatches(ctx, tx, now, lease, lock, room)
			if err != nil {
				return err
			}
			out = append(out, fresh...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delivery: claim: %w", err)
	}
	return out, nil
}

// claimQueued claims batches that EnqueueMany formed: their members are read now, so
// that those taken out meanwhile (a block, a cancelled broadcast, a deleted friend)
// are left out, and fixed in the batch row before the call like any batch's.
func (s *Service) claimQueued(ctx context.Context, tx *store.Tx, lease int64, lock string, limit int) ([]*batch, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, channel_id, method, messages, attempts FROM batches
		WHERE state = 'queued' ORDER BY id LIMIT ?`+lock, limit)
	if err != nil {
		return nil, err
	}
	var out []*batch
	byID := map[int64]*batch{}
	msgCache := map[string][]json.RawMessage{}
	for rows.Next() {
		b := &batch{}
		var msgs string
		if err := rows.Scan(&b.id, &b.channelID, &b.method, &msgs, &b.attempts); err != nil {
			rows.Close()
			return nil, err
		}
		if m, ok := msgCache[msgs]; ok {
			b.messages = m
		} else if err := json.Unmarshal([]byte(msgs), &b.messages); err != nil {
			rows.Close()
			return nil, fmt.Errorf("batch %d: messages: %w", b.id, err)
		} else {
			msgCache[msgs] = b.messages
		}
		out = append(out, b)
		byID[b.id] = b
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(out) == 0 {
		return nil, err
	}
	for start := 0; start < len(out); start += 20 {
		chunk := out[start:min(start+20, len(out))]
		args := make([]any, len(chunk))
		for i, b := range chunk {
			args[i] = b.id
		}
		rows, err := tx.QueryContext(ctx, `SELECT batch_id, line_user_id FROM deliveries WHERE batch_id IN (`+
			strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+`) AND state = 'sending' ORDER BY batch_id, id`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id int64
			var u string
			if err := rows.Scan(&id, &u); err != nil {
				rows.Close()
				return nil, err
			}
			b := byID[id]
			b.recipients.To = append(b.recipients.To, u)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	live := out[:0]
	for _, b := range out {
		if len(b.recipients.To) == 0 {
			// Everyone was taken out: nothing to send.
			if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'cancelled', size = 0 WHERE id = ?`, b.id); err != nil {
				return nil, err
			}
			continue
		}
		rj, _ := json.Marshal(b.recipients)
		if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'sending', lease_until = ?, recipients = ?, size = ? WHERE id = ?`,
			lease, string(rj), len(b.recipients.To), b.id); err != nil {
			return nil, err
		}
		live = append(live, b)
	}
	return live, nil
}

func (s *Service) takeOver(ctx context.Context, tx *store.Tx, now time.Time, lease int64, lock string, limit int, mine []int64) ([]*batch, error) {
	args := []any{store.Millis(now)}
	notMine := ""
	if len(mine) > 0 {
		notMine = " AND id NOT IN (" + strings.TrimSuffix(strings.Repeat("?,", len(mine)), ",") + ")"
		for _, id := range mine {
			args = append(args, id)
		}
	}
	args = append(args, limit)
	rows, err := tx.QueryContext(ctx, `SELECT id, channel_id, method, messages, recipients, attempts FROM batches
		WHERE state = 'sending' AND lease_until <= ?`+notMine+` ORDER BY lease_until, id LIMIT ?`+lock, args...)
	if err != nil {
		return nil, err
	}
	var out []*batch
	for rows.Next() {
		b := &batch{}
		var msgs, rcpt string
		if err := rows.Scan(&b.id, &b.channelID, &b.method, &msgs, &rcpt, &b.attempts); err != nil {
			rows.Close()
			return nil, err
		}
		if err := json.Unmarshal([]byte(msgs), &b.messages); err != nil {
			rows.Close()
			return nil, fmt.Errorf("batch %d: messages: %w", b.id, err)
		}
		if err := json.Unmarshal([]byte(rcpt), &b.recipients); err != nil {
			rows.Close()
			return nil, fmt.Errorf("batch %d: recipients: %w", b.id, err)
		}
		out = append(out, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, b := range out {
		if _, err := tx.ExecContext(ctx, `UPDATE batches SET lease_until = ? WHERE id = ?`, lease, b.id); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type pendingRow struct {
	id         int64
	channelID  string
	userID     string
	messages   string
	hash       string
	replyToken string
	replyUntil sql.NullInt64
}

// formBatches groups due deliveries: a fresh reply token makes a reply of its own;
// identical content for several friends of a channel becomes multicasts of up to 500
// distinct users; the rest are pushes.
func (s *Service) formBatches(ctx context.Context, tx *store.Tx, now time.Time, lease int64, lock string, limit int) ([]*batch, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, channel_id, line_user_id, messages, content_hash, reply_token, reply_expires_at
		FROM deliveries WHERE state = 'pending' AND due_at <= ? ORDER BY due_at, id LIMIT ?`+lock,
		store.Millis(now), limit)
	if err != nil {
		return nil, err
	}
	var pending []pendingRow
	for rows.Next() {
		var p pendingRow
		if err := rows.Scan(&p.id, &p.channelID, &p.userID, &p.messages, &p.hash, &p.replyToken, &p.replyUntil); err != nil {
			rows.Close()
			return nil, err
		}
		pending = append(pending, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(pending) == 0 {
		return nil, err
	}

	type group struct {
		channelID, messages string
		rows                []pendingRow
	}
	var order []string
	groups := map[string]*group{}
	var out []*batch
	replyBy := store.Millis(now.Add(s.cfg.ReplyMargin))
	for _, p := range pending {
		if p.replyToken != "" && p.replyUntil.Valid && p.replyUntil.Int64 > replyBy {
			b, err := s.insertBatch(ctx, tx, p.channelID, MethodReply, p.messages,
				recipients{To: []string{p.userID}, ReplyToken: p.replyToken}, []int64{p.id}, now, lease)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
			continue
		}
		key := p.channelID + "\x00" + p.hash
		g, ok := groups[key]
		if !ok {
			g = &group{channelID: p.channelID, messages: p.messages}
			groups[key] = g
			order = append(order, key)
		}
		g.rows = append(g.rows, p)
	}
	for _, key := range order {
		g := groups[key]
		for _, chunk := range chunks(g.rows) {
			method := MethodMulticast
			if len(chunk) == 1 {
				method = MethodPush
			}
			to := make([]string, len(chunk))
			ids := make([]int64, len(chunk))
			for i, p := range chunk {
				to[i], ids[i] = p.userID, p.id
			}
			b, err := s.insertBatch(ctx, tx, g.channelID, method, g.messages, recipients{To: to}, ids, now, lease)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
	}
	return out, nil
}

// chunks splits rows into groups of at most line.MaxMulticast distinct users: a user
// with two identical deliveries gets them in two calls, as intended.
func chunks(rows []pendingRow) [][]pendingRow {
	var out [][]pendingRow
	for len(rows) > 0 {
		seen := map[string]bool{}
		var chunk, rest []pendingRow
		for _, p := range rows {
			if len(chunk) < line.MaxMulticast && !seen[p.userID] {
				seen[p.userID] = true
				chunk = append(chunk, p)
			} else {
				rest = append(rest, p)
			}
		}
		out = append(out, chunk)
		rows = rest
	}
	return out
}

func (s *Service) insertBatch(ctx context.Context, tx *store.Tx, channelID, method, messages string, r recipients,
	deliveryIDs []int64, now time.Time, lease int64) (*batch, error) {
	rj, _ := json.Marshal(r)
	b := &batch{channelID: channelID, method: method, recipients: r}
	if err := json.Unmarshal([]byte(messages), &b.messages); err != nil {
		return nil, fmt.Errorf("delivery %d: stored messages: %w", deliveryIDs[0], err)
	}
	err := tx.QueryRowContext(ctx, `INSERT INTO batches (channel_id, method, messages, recipients, size, state, lease_until, created_at)
		VALUES (?, ?, ?, ?, ?, 'sending', ?, ?) RETURNING id`,
		channelID, method, messages, string(rj), len(deliveryIDs), lease, store.Millis(now)).Scan(&b.id)
	if err != nil {
		return nil, err
	}
	for start := 0; start < len(deliveryIDs); start += 500 {
		ids := deliveryIDs[start:min(start+500, len(deliveryIDs))]
		args := make([]any, 0, len(ids)+1)
		args = append(args, b.id)
		for _, id := range ids {
			args = append(args, id)
		}
		q := `UPDATE deliveries SET state = 'sending', batch_id = ? WHERE id IN (` +
			strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",") + `)`
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return nil, err
		}
	}
	return b, nil
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
		sent := map[string][]int64{} // method -> batches whose deliveries are now sent
		for _, o := range group {
			if errors.Is(o.err, context.Canceled) {
				continue
			}
			ok, err := s.record(ctx, tx, o.b, o.res, o.err, now)
			if err != nil {
				return fmt.Errorf("batch %d: %w", o.b.id, err)
			}
			if ok {
				sent[o.b.method] = append(sent[o.b.method], o.b.id)
			}
		}
		nowMs := store.Millis(now)
		for method, ids := range sent {
			for start := 0; start < len(ids); start += 500 {
				chunk := ids[start:min(start+500, len(ids))]
				args := []any{method, nowMs}
				for _, id := range chunk {
					args = append(args, id)
				}
				if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'sent', method = ?, sent_at = ?
					WHERE batch_id IN (`+strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+`) AND state = 'sending'`, args...); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// record writes a call's outcome to its batch and, but for success, to its deliveries.
// It reports whether the batch was sent: the caller marks the deliveries of all sent
// batches together.
func (s *Service) record(ctx context.Context, tx *store.Tx, b *batch, res line.SendResult, sendErr error, now time.Time) (bool, error) {
	nowMs := store.Millis(now)
	attempts := b.attempts + 1
	switch {
	case sendErr == nil, b.method == MethodReply && errors.Is(sendErr, line.ErrReplyOutcomeUnknown):
		// A reply has no retry key: when its outcome is unknown, sending it again
		// could deliver it twice, so it is counted as sent and the doubt recorded.
		note := ""
		if sendErr != nil {
			note = "reply outcome unknown; not resent, to avoid a duplicate"
		}
		res, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'sent', attempts = ?, request_id = ?, accepted_earlier = ?,
			last_error = ?, sent_at = ? WHERE id = ? AND state = 'sending'`,
			attempts, res.RequestID, boolInt(res.AlreadyAccepted), note, nowMs, b.id)
		if err != nil {
			return false, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return false, nil // recorded already, by whoever else sent it after our lease ran out
		}
		if note != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET last_error = ? WHERE batch_id = ?`, note, b.id); err != nil {
				return false, err
			}
		}
		return true, nil
	case b.method == MethodReply:
		// The token was refused or expired: LINE did not send. Push instead, now.
		method := MethodPush
		if len(b.recipients.To) != 1 {
			return false, fmt.Errorf("%w: reply batch %d with %d recipients", ErrInvalidItem, b.id, len(b.recipients.To))
		}
		_, err := tx.ExecContext(ctx, `UPDATE batches SET method = ?, attempts = ?, lease_until = ?, last_error = ? WHERE id = ? AND state = 'sending'`,
			method, attempts, nowMs, "reply failed, sent by push: "+sendErr.Error(), b.id)
		if err != nil {
			return false, err
		}
		tx.AfterCommit(s.Notify)
		_, err = tx.ExecContext(ctx, `UPDATE deliveries SET last_error = ? WHERE batch_id = ?`,
			"reply token refused or expired; sent by push", b.id)
		return false, err
	case line.IsPermanent(sendErr) || errors.Is(sendErr, ErrInvalidItem) || errors.Is(sendErr, line.ErrInvalidRetryKey) || attempts >= s.cfg.MaxAttempts:
		reason := sendErr.Error()
		if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'failed', attempts = ?, last_error = ? WHERE id = ? AND state = 'sending'`,
			attempts, reason, b.id); err != nil {
			return false, err
		}
		s.logger.Warn("delivery: batch failed", "batch", b.id, "channel", b.channelID, "method", b.method, "size", len(b.recipients.To), "err", sendErr)
		_, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'failed', method = ?, last_error = ? WHERE batch_id = ? AND state = 'sending'`,
			b.method, reason, b.id)
		return false, err
	default:
		// 5xx, 429 after the client's own backoff, or no answer: try again later with
		// the same key. Whoever claims it then, LINE recognises the call.
		retryAt := now.Add(backoff(attempts))
		_, err := tx.ExecContext(ctx, `UPDATE batches SET attempts = ?, lease_until = ?, last_error = ? WHERE id = ? AND state = 'sending'`,
			attempts, store.Millis(retryAt), sendErr.Error(), b.id)
		return false, err
	}
}

// backoff grows from 1 s to 5 min.
func backoff(attempt int) time.Duration {
	return min(time.Second<<min(attempt-1, 9), 5*time.Minute)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
