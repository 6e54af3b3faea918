package delivery

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/store"
)

// claim takes, in one transaction, batches of at most limit in weight (see weight):
// those whose lease ran out (their sender died or is retrying later; except mine, still
// in this process's hands), batches queued whole by EnqueueMany, and due pending
// deliveries, which it groups into new batches. Old and queued batches are counted as
// multicasts, the heaviest, before they are read.
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
		used := 0
		if n := min(limit/multicastWeight, max(s.cfg.ClaimSize/100, 50)); n > 0 {
			old, err := s.takeOver(ctx, tx, now, lease, lock, n, mine)
			if err != nil {
				return err
			}
			out = append(out, old...)
			used += weightOf(old)
		}
		if n := (limit - used) / multicastWeight; n > 0 {
			queued, err := s.claimQueued(ctx, tx, lease, lock, n)
			if err != nil {
				return err
			}
			out = append(out, queued...)
			used += weightOf(queued)
		}
		if room := min(limit-used, s.cfg.ClaimSize); room > 0 {
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

func weightOf(bs []*batch) int {
	w := 0
	for _, b := range bs {
		w += weight(b.method)
	}
	return w
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
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(out) == 0 {
		return nil, err
	}
	if err := readMembers(ctx, tx, out); err != nil {
		return nil, err
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
		// The members are fixed from here on (only queued batches give any up), so
		// they are not copied into the batch row: whoever takes the batch over reads
		// them again (readMembers).
		if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'sending', lease_until = ?, size = ? WHERE id = ?`,
			lease, len(b.recipients.To), b.id); err != nil {
			return nil, err
		}
		live = append(live, b)
	}
	return live, nil
}

// readMembers reads the recipients of batches formed by EnqueueMany from their
// deliveries, in delivery order.
func readMembers(ctx context.Context, tx *store.Tx, batches []*batch) error {
	byID := make(map[int64]*batch, len(batches))
	for _, b := range batches {
		byID[b.id] = b
	}
	for start := 0; start < len(batches); start += 20 {
		chunk := batches[start:min(start+20, len(batches))]
		args := make([]any, len(chunk))
		for i, b := range chunk {
			args[i] = b.id
		}
		rows, err := tx.QueryContext(ctx, `SELECT batch_id, line_user_id FROM deliveries WHERE batch_id IN `+
			store.Placeholders(1, len(chunk))+` AND state = 'sending' ORDER BY batch_id, id`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			var u string
			if err := rows.Scan(&id, &u); err != nil {
				rows.Close()
				return err
			}
			b := byID[id]
			b.recipients.To = append(b.recipients.To, u)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) takeOver(ctx context.Context, tx *store.Tx, now time.Time, lease int64, lock string, limit int, mine []int64) ([]*batch, error) {
	args := []any{store.Millis(now)}
	notMine := ""
	if len(mine) > 0 {
		notMine = " AND id NOT IN " + store.Placeholders(1, len(mine))
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
	var out, fromMembers []*batch
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
		if rcpt != "" {
			if err := json.Unmarshal([]byte(rcpt), &b.recipients); err != nil {
				rows.Close()
				return nil, fmt.Errorf("batch %d: recipients: %w", b.id, err)
			}
		} else {
			fromMembers = append(fromMembers, b)
		}
		out = append(out, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := readMembers(ctx, tx, fromMembers); err != nil {
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

// formBatches groups up to limit due deliveries, into batches of at most limit in
// weight: a fresh reply token makes a reply of its own; identical content for several
// friends of a channel becomes multicasts of up to 500 distinct users; the rest are
// pushes.
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
	var fresh []newBatch
	replyBy := store.Millis(now.Add(s.cfg.ReplyMargin))
	for _, p := range pending {
		if p.replyToken != "" && p.replyUntil.Valid && p.replyUntil.Int64 > replyBy {
			fresh = append(fresh, newBatch{channelID: p.channelID, method: MethodReply, messages: p.messages,
				recipients: recipients{To: []string{p.userID}, ReplyToken: p.replyToken}, deliveryIDs: []int64{p.id}})
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
			nb := newBatch{channelID: g.channelID, method: method, messages: g.messages,
				recipients: recipients{To: make([]string, len(chunk))}, deliveryIDs: make([]int64, len(chunk))}
			for i, p := range chunk {
				nb.recipients.To[i], nb.deliveryIDs[i] = p.userID, p.id
			}
			fresh = append(fresh, nb)
		}
	}
	// A multicast of a few weighs more than the rows it was read as (see weight): the
	// rows past the limit stay pending for the next claim.
	w := 0
	for i, nb := range fresh {
		if w += weight(nb.method); w > limit && i > 0 {
			fresh = fresh[:i]
			break
		}
	}
	return s.insertBatches(ctx, tx, fresh, now, lease)
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

// newBatch is a batch formed from pending deliveries, not yet written.
type newBatch struct {
	channelID, method, messages string
	recipients                  recipients
	deliveryIDs                 []int64
}

// insertBatches writes batches and moves their deliveries into them, in a few
// statements whatever their number: personalised content makes a push, so a batch, per
// delivery, and a statement or two per push would make the claim, not LINE, the pace.
// The batches' IDs are taken first (the sequence on PostgreSQL; on SQLite the
// transaction is the only writer, so the next IDs are free), so that the rows can be
// written together and their deliveries pointed at them.
func (s *Service) insertBatches(ctx context.Context, tx *store.Tx, nbs []newBatch, now time.Time, lease int64) ([]*batch, error) {
	if len(nbs) == 0 {
		return nil, nil
	}
	ids, err := nextBatchIDs(ctx, tx, len(nbs))
	if err != nil {
		return nil, err
	}
	out := make([]*batch, len(nbs))
	msgCache := map[string][]json.RawMessage{}
	nowMs := store.Millis(now)
	const cols = 9
	const perStatement = 200
	args := make([]any, 0, perStatement*cols)
	for start := 0; start < len(nbs); start += perStatement {
		end := min(start+perStatement, len(nbs))
		args = args[:0]
		for i := start; i < end; i++ {
			nb := nbs[i]
			b := &batch{id: ids[i], channelID: nb.channelID, method: nb.method, recipients: nb.recipients}
			if m, ok := msgCache[nb.messages]; ok {
				b.messages = m
			} else if err := json.Unmarshal([]byte(nb.messages), &b.messages); err != nil {
				return nil, fmt.Errorf("delivery %d: stored messages: %w", nb.deliveryIDs[0], err)
			} else {
				msgCache[nb.messages] = b.messages
			}
			out[i] = b
			rj, _ := json.Marshal(nb.recipients)
			args = append(args, b.id, nb.channelID, nb.method, nb.messages, string(rj), len(nb.deliveryIDs), "sending", lease, nowMs)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO batches (id, channel_id, method, messages, recipients, size, state, lease_until, created_at)
			VALUES `+store.Placeholders(end-start, cols), args...); err != nil {
			return nil, err
		}
	}
	var dids, bids []int64
	for i, nb := range nbs {
		for _, d := range nb.deliveryIDs {
			dids, bids = append(dids, d), append(bids, ids[i])
		}
	}
	if tx.Dialect() == store.Postgres {
		_, err := tx.ExecContext(ctx, `UPDATE deliveries d SET state = 'sending', batch_id = u.bid
			FROM unnest(?::bigint[], ?::bigint[]) AS u(did, bid) WHERE d.id = u.did`, dids, bids)
		return out, err
	}
	for start := 0; start < len(dids); start += 500 {
		end := min(start+500, len(dids))
		args = args[:0]
		for i := start; i < end; i++ {
			args = append(args, dids[i], bids[i])
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'sending', batch_id = v.column2
			FROM (VALUES `+store.Placeholders(end-start, 2)+`) AS v WHERE deliveries.id = v.column1`, args...); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// nextBatchIDs reserves n batch IDs.
func nextBatchIDs(ctx context.Context, tx *store.Tx, n int) ([]int64, error) {
	if tx.Dialect() == store.Postgres {
		return queryIDs(ctx, tx, `SELECT nextval(pg_get_serial_sequence('batches', 'id')) FROM generate_series(1, ?)`, n)
	}
	ids := make([]int64, 0, n)
	var last int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM batches`).Scan(&last); err != nil {
		return nil, err
	}
	for i := range n {
		ids = append(ids, last+1+int64(i))
	}
	return ids, nil
}
