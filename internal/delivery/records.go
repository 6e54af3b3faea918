package delivery

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// Record is a delivery as the console and the API show it.
type Record struct {
	ID         int64
	ChannelID  string
	FriendID   int64
	Source     string
	SourceID   int64
	SourceRef  string
	State      string
	Method     string
	BatchID    int64
	LastError  string
	Messages   json.RawMessage
	DueAt      time.Time
	CreatedAt  time.Time
	SentAt     time.Time
	RequestID  string
	Duplicated bool // LINE had accepted the batch before (409): sent by an earlier attempt
}

// ForFriend returns a friend's deliveries, newest first.
func (s *Service) ForFriend(ctx context.Context, friendID int64, limit int) ([]Record, error) {
	return s.query(ctx, `WHERE d.friend_id = ? ORDER BY d.id DESC LIMIT ?`, friendID, limit)
}

// Get returns one delivery; store.ErrNotFound if there is none with that ID.
func (s *Service) Get(ctx context.Context, id int64) (Record, error) {
	recs, err := s.query(ctx, `WHERE d.id = ?`, id)
	if err != nil {
		return Record{}, err
	}
	if len(recs) == 0 {
		return Record{}, fmt.Errorf("delivery %d: %w", id, store.ErrNotFound)
	}
	return recs[0], nil
}

func (s *Service) query(ctx context.Context, where string, args ...any) ([]Record, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT d.id, d.channel_id, d.friend_id, d.source, COALESCE(d.source_id, 0), d.source_ref,
		`+StateSQL("d", "b")+`, `+MethodSQL("d", "b")+`, COALESCE(d.batch_id, 0), d.last_error, COALESCE(NULLIF(d.messages, ''), b.messages, ''),
		d.due_at, d.created_at, COALESCE(d.sent_at, b.sent_at),
		COALESCE(b.request_id, ''), COALESCE(b.accepted_earlier, 0)
		FROM deliveries d LEFT JOIN batches b ON b.id = d.batch_id `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("delivery: list: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var r Record
		var msgs string
		var due, created int64
		var sent sql.NullInt64
		var dup int
		if err := rows.Scan(&r.ID, &r.ChannelID, &r.FriendID, &r.Source, &r.SourceID, &r.SourceRef, &r.State, &r.Method,
			&r.BatchID, &r.LastError, &msgs, &due, &created, &sent, &r.RequestID, &dup); err != nil {
			return nil, err
		}
		r.Messages = json.RawMessage(msgs)
		r.DueAt, r.CreatedAt, r.SentAt = store.Time(due), store.Time(created), store.NullTime(sent)
		r.Duplicated = dup != 0
		out = append(out, r)
	}
	return out, rows.Err()
}

// Counts returns how many deliveries of a channel are in each state.
func (s *Service) Counts(ctx context.Context, channelID string) (map[string]int, error) {
	return CountStates(ctx, s.db, "channel_id = ?", channelID)
}

// StateSQL is a delivery's state as it reads, over deliveries d LEFT JOIN batches b ON
// b.id = d.batch_id. A delivery handed to a batch stays 'sending' in its own row; once
// the batch is sent, so is it. (Writing 'sent' into every member's row cost a row write
// per recipient, on PostgreSQL a new row version with all its index entries.)
func StateSQL(d, b string) string {
	return "CASE WHEN " + d + ".state = 'sending' AND " + b + ".state = 'sent' THEN 'sent' ELSE " + d + ".state END"
}

// MethodSQL is how a delivery went out (or is going), read like StateSQL.
func MethodSQL(d, b string) string {
	return "CASE WHEN " + d + ".state = 'sending' THEN COALESCE(" + b + ".method, '') ELSE " + d + ".method END"
}

// CountStates counts the deliveries matching where (over deliveries, unqualified) by
// state as it reads (StateSQL). The rows are grouped by batch first, so the batches are
// looked up once per batch rather than once per delivery.
func CountStates(ctx context.Context, q store.Querier, where string, args ...any) (map[string]int, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+StateSQL("x", "b")+`, SUM(x.n) FROM
		(SELECT state, batch_id, COUNT(*) AS n FROM deliveries WHERE `+where+` GROUP BY state, batch_id) x
		LEFT JOIN batches b ON b.id = x.batch_id GROUP BY 1`, args...)
	if err != nil {
		return nil, fmt.Errorf("delivery: count: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("delivery: count: %w", err)
		}
		out[st] += n
	}
	return out, rows.Err()
}
