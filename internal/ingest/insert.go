package ingest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"sync"

	"github.com/linestep/linestep/internal/store"
)

// maxChunk bounds the rows of one INSERT statement on SQLite: 10 columns x 256 rows stays
// under its limit on bound parameters.
const maxChunk = 256

// chunkRows is how many of n remaining rows the next INSERT takes. With prepared
// statements (SQLite) it is a power of two, so that nine statements serve every batch in
// at most log2(n)+1 executions; otherwise as many as one statement may hold.
func chunkRows(n int, prepared bool) int {
	if n >= maxChunk {
		return maxChunk
	}
	if !prepared {
		return n
	}
	return 1 << (bits.Len(uint(n)) - 1)
}

// errDuplicates makes the fast attempt at a batch roll back: some of its events were
// already stored (redeliveries), and only the slower INSERT ... RETURNING tells which.
var errDuplicates = errors.New("ingest: batch holds events already stored")

// prepared returns the prepared plain INSERTs, indexed by log2 of their rows, preparing
// them on first use; nil for PostgreSQL. It must not be called inside a WriteTx.
func (c *Committer) prepared(ctx context.Context) ([]*sql.Stmt, error) {
	if c.db.Dialect() != store.SQLite {
		return nil, nil
	}
	c.insertsMu.Lock()
	defer c.insertsMu.Unlock()
	if c.inserts != nil {
		return c.inserts, nil
	}
	stmts := make([]*sql.Stmt, 0, bits.Len(maxChunk))
	for rows := 1; rows <= maxChunk; rows *= 2 {
		s, err := c.db.PrepareWrite(ctx, insertQuery(rows, false))
		if err != nil {
			for _, s := range stmts {
				s.Close()
			}
			return nil, fmt.Errorf("ingest: prepare insert: %w", err)
		}
		stmts = append(stmts, s)
	}
	c.inserts = stmts
	return stmts, nil
}

// insert writes the batch's events in chunks of at most maxChunk rows. With stored nil
// it uses plain INSERTs (the prepared ones in stmts, if any) and fails with errDuplicates
// as soon as a chunk stores fewer rows than it holds; otherwise it uses INSERT ...
// RETURNING and counts the new events of each request in stored and of each type in
// byType.
func (c *Committer) insert(ctx context.Context, tx *store.Tx, stmts []*sql.Stmt, batch []*storeRequest, stored []int, byType map[string]int) error {
	returning := stored != nil
	if returning {
		stmts = nil
	}
	n := 0
	for _, req := range batch {
		n += len(req.events)
	}
	if n == 0 {
		return nil
	}
	// The chunks' sizes add up to n, so every row is flushed by the loop below.
	size := chunkRows(n, stmts != nil)
	left := n
	args := make([]any, 0, size*10)
	var owners []int // the request of each row of the chunk
	rows := 0
	flush := func() error {
		defer func() { args, owners, left, rows = args[:0], owners[:0], left-rows, 0 }()
		if !returning {
			var res sql.Result
			var err error
			if stmts != nil {
				res, err = tx.Stmt(ctx, stmts[bits.Len(uint(rows))-1]).ExecContext(ctx, args...)
			} else {
				res, err = tx.ExecContext(ctx, insertQuery(rows, false), args...)
			}
			if err != nil {
				return fmt.Errorf("ingest: insert events: %w", err)
			}
			if k, err := res.RowsAffected(); err != nil || k != int64(rows) {
				return errDuplicates
			}
			return nil
		}
		res, err := tx.QueryContext(ctx, insertQuery(rows, true), args...)
		if err != nil {
			return fmt.Errorf("ingest: insert events: %w", err)
		}
		// Which request each new row came from, to tell each its own count.
		owner := make(map[string]int, rows)
		for r, i := range owners {
			owner[args[r*10].(string)+"\x00"+args[r*10+1].(string)] = i
		}
		return countStored(res, owner, stored, byType)
	}
	for i, req := range batch {
		received := store.Millis(req.receivedAt)
		for j := range req.events {
			ev := &req.events[j]
			args = append(args, req.channelID, ev.WebhookEventID, ev.Type, ev.Mode, ev.UserID,
				ev.Timestamp, ev.IsRedelivery, []byte(ev.Raw), received, received)
			if returning {
				owners = append(owners, i)
			}
			if rows++; rows == size {
				if err := flush(); err != nil {
					return err
				}
				if left > 0 {
					size = chunkRows(left, stmts != nil)
				}
			}
		}
	}
	return nil
}

// insertQueries caches the INSERT statement text by row count and RETURNING.
var insertQueries sync.Map // insertKey -> string

type insertKey struct {
	rows      int
	returning bool
}

func insertQuery(rows int, returning bool) string {
	key := insertKey{rows, returning}
	if q, ok := insertQueries.Load(key); ok {
		return q.(string)
	}
	q := `INSERT INTO webhook_events (channel_id, event_id, type, mode, line_user_id, occurred_at, redelivery, payload, received_at, next_attempt_at)
		VALUES ` + store.Placeholders(rows, 10) + `
		ON CONFLICT (channel_id, event_id) DO NOTHING`
	if returning {
		q += `
		RETURNING channel_id, event_id, type`
	}
	insertQueries.Store(key, q)
	return q
}

// insertPostgres writes the whole batch with one statement outside any transaction (it
// commits on its own) that takes each column as an array: one statement text whatever
// the batch's size, prepared once by pgx, with ten parameters instead of ten a row.
// Against a VALUES list (planned afresh for each row count) it cost the PostgreSQL
// server 28-30 µs of CPU per event instead of 34 at BenchmarkIngestPaired's 256 senders
// (batches of about 55). It counts the new events of each request in stored and of each
// type in byType.
func insertPostgres(ctx context.Context, db *store.DB, batch []*storeRequest, stored []int, byType map[string]int) error {
	n := 0
	for _, req := range batch {
		n += len(req.events)
	}
	channels, ids, types, modes, users := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	occurred, received := make([]int64, 0, n), make([]int64, 0, n)
	redelivered := make([]bool, 0, n)
	payloads := make([][]byte, 0, n)
	owner := make(map[string]int, n) // channel and event ID -> request
	for i, req := range batch {
		at := store.Millis(req.receivedAt)
		for j := range req.events {
			ev := &req.events[j]
			channels, ids, types, modes, users = append(channels, req.channelID), append(ids, ev.WebhookEventID),
				append(types, ev.Type), append(modes, ev.Mode), append(users, ev.UserID)
			occurred, received = append(occurred, ev.Timestamp), append(received, at)
			redelivered, payloads = append(redelivered, ev.IsRedelivery), append(payloads, []byte(ev.Raw))
			owner[req.channelID+"\x00"+ev.WebhookEventID] = i
		}
	}
	rows, err := db.WriteQueryContext(ctx, `INSERT INTO webhook_events (channel_id, event_id, type, mode, line_user_id, occurred_at, redelivery,
		payload, received_at, next_attempt_at)
		SELECT u.ch, u.id, u.typ, u.mode, u.uid, u.occurred, u.redelivery, u.payload, u.received, u.received
		FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::boolean[], ?::bytea[], ?::bigint[])
			AS u(ch, id, typ, mode, uid, occurred, redelivery, payload, received)
		ON CONFLICT (channel_id, event_id) DO NOTHING
		RETURNING channel_id, event_id, type`,
		channels, ids, types, modes, users, occurred, redelivered, payloads, received)
	if err != nil {
		return fmt.Errorf("ingest: insert events: %w", err)
	}
	return countStored(rows, owner, stored, byType)
}

// countStored reads the RETURNING rows (channel, event ID, type) of an INSERT of events,
// and counts the new events of each request (owner: channel and event ID -> request) in
// stored and of each type in byType. It closes rows.
func countStored(rows *sql.Rows, owner map[string]int, stored []int, byType map[string]int) error {
	defer rows.Close()
	for rows.Next() {
		var ch, id, typ string
		if err := rows.Scan(&ch, &id, &typ); err != nil {
			return fmt.Errorf("ingest: insert events: %w", err)
		}
		stored[owner[ch+"\x00"+id]]++
		byType[typ]++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ingest: insert events: %w", err)
	}
	return nil
}
