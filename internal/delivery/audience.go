package delivery

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/store"
)

// Audience is a selection of a channel's friends, as SQL over `friends f`: a broadcast's
// segment. Where renders the condition for the friends with an id above after (the
// caller may repeat the bound inside its subqueries), with ? placeholders and their args.
type Audience struct {
	ChannelID string
	Where     func(after int64) (string, []any)
}

// AudiencePage is what EnqueueAudience did.
type AudiencePage struct {
	Last    int64 // the highest friend id written or passed: where the next call starts
	Queued  int   // deliveries written
	Skipped int   // not a LINE user ID (imported by hand): LINE would refuse the whole call
	End     bool  // the audience has no friends left after Last
}

// EnqueueAudience writes the same messages for the audience's friends with an id above
// after, in id order, looking at up to limit of them, straight into queued multicast
// batches of up to 500 (like EnqueueMany's, claimed whole by a dispatcher). The rows are
// written by INSERT ... SELECT: no friend passes through Go, and each statement's text
// is the same for every page, so a broadcast to a million friends costs the database
// little more than the rows themselves.
func (s *Service) EnqueueAudience(ctx context.Context, tx *store.Tx, a Audience, after int64, limit int,
	source string, sourceID int64, msgs []json.RawMessage) (AudiencePage, error) {
	if err := checkMessages(msgs); err != nil {
		return AudiencePage{}, err
	}
	body, err := json.Marshal(msgs)
	if err != nil {
		return AudiencePage{}, fmt.Errorf("%w: messages: %v", ErrInvalidItem, err)
	}
	content := audienceContent{json: string(body), hash: ContentHash(body), source: source, sourceID: sourceID}
	nowMs := store.Millis(s.clock.Now())
	page := AudiencePage{Last: after}
	for page.Queued+page.Skipped < limit && !page.End {
		n := min(line.MaxMulticast, limit-page.Queued-page.Skipped)
		var p AudiencePage
		if tx.Dialect() == store.Postgres {
			p, err = s.audiencePagePostgres(ctx, tx, a, page.Last, n, content, nowMs)
		} else {
			p, err = s.audiencePageSQLite(ctx, tx, a, page.Last, n, content, nowMs)
		}
		if err != nil {
			return AudiencePage{}, fmt.Errorf("delivery: enqueue audience: %w", err)
		}
		page.Queued += p.Queued
		page.Skipped += p.Skipped
		page.Last = max(page.Last, p.Last)
		page.End = p.End
	}
	if tx.Dialect() != store.Postgres {
		// SQLite's pages pass over friends that are not LINE users without a word:
		// counted here once for the whole range, through an index that holds only them.
		n, err := skippedSQLite(ctx, tx, a, after, page.Last, page.End)
		if err != nil {
			return AudiencePage{}, fmt.Errorf("delivery: enqueue audience: %w", err)
		}
		page.Skipped += n
	}
	if page.Queued > 0 {
		tx.AfterCommit(s.Notify)
	}
	return page, nil
}

// validUserID is line.ValidUserID in SQL, the same on both databases (and cheaper on
// PostgreSQL than a regular expression). SQLite's index friends_not_line_user repeats
// its negation word for word: change both together.
func validUserID(alias string) string {
	u := alias + ".line_user_id"
	return "(length(" + u + ") = 33 AND substr(" + u + ", 1, 1) = 'U' AND ltrim(substr(" + u + ", 2), '0123456789abcdef') = '')"
}

type audienceContent struct {
	json, hash, source string
	sourceID           int64
}

// insertAudienceBatch writes a queued multicast batch; its size is set when it is
// claimed, from its members.
func insertAudienceBatch(ctx context.Context, tx *store.Tx, channelID string, c audienceContent, nowMs int64) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO batches (channel_id, method, messages, recipients, size, state, lease_until,
		created_at, source, source_id) VALUES (?, ?, ?, '', 0, 'queued', 0, ?, ?, ?) RETURNING id`,
		channelID, MethodMulticast, c.json, nowMs, c.source, c.sourceID).Scan(&id)
	return id, err
}

// audiencePageSQLite takes a page in one statement: INSERT ... SELECT of the next n
// friends with a LINE user ID, returning who was written, for the cursor.
func (s *Service) audiencePageSQLite(ctx context.Context, tx *store.Tx, a Audience, after int64, n int,
	c audienceContent, nowMs int64) (AudiencePage, error) {
	batchID, err := insertAudienceBatch(ctx, tx, a.ChannelID, c, nowMs)
	if err != nil {
		return AudiencePage{}, err
	}
	where, wargs := a.Where(after)
	args := append([]any{a.ChannelID, c.source, c.sourceID, c.hash, batchID, nowMs, nowMs, a.ChannelID, after}, wargs...)
	rows, err := tx.QueryContext(ctx, `INSERT INTO deliveries (channel_id, friend_id, line_user_id, source, source_id, source_ref,
			messages, content_hash, state, batch_id, due_at, created_at)
		SELECT ?, f.id, f.line_user_id, ?, ?, '', '', ?, 'sending', ?, ?, ?
		FROM friends f WHERE f.channel_id = ? AND f.id > ? AND `+where+` AND `+validUserID("f")+` ORDER BY f.id LIMIT ?
		RETURNING friend_id`, append(args, n)...)
	if err != nil {
		return AudiencePage{}, err
	}
	p := AudiencePage{Last: after}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return p, err
		}
		p.Queued++
		p.Last = max(p.Last, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return p, err
	}
	p.End = p.Queued < n
	if p.Queued == 0 {
		_, err = tx.ExecContext(ctx, `DELETE FROM batches WHERE id = ?`, batchID)
	}
	return p, err
}

// skippedSQLite counts the audience's friends in (after, last] (or past after, at the
// end) that are not LINE users, through the index that holds only those
// (friends_not_line_user), so the usual count, none, reads nothing.
func skippedSQLite(ctx context.Context, tx *store.Tx, a Audience, after, last int64, end bool) (int, error) {
	where, wargs := a.Where(after)
	bound, bargs := " AND f.id <= ?", []any{last}
	if end {
		bound, bargs = "", nil
	}
	args := append(append([]any{a.ChannelID, after}, bargs...), wargs...)
	var n int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM friends f WHERE f.channel_id = ? AND f.id > ?`+bound+`
		AND NOT `+validUserID("f")+` AND `+where, args...).Scan(&n)
	return n, err
}

// audiencePagePostgres takes a page in one statement, so that the page and its members
// come from one snapshot (under READ COMMITTED, two statements could each see a
// different set of friends). The batch row comes first; an empty page removes it.
func (s *Service) audiencePagePostgres(ctx context.Context, tx *store.Tx, a Audience, after int64, n int,
	c audienceContent, nowMs int64) (AudiencePage, error) {
	batchID, err := insertAudienceBatch(ctx, tx, a.ChannelID, c, nowMs)
	if err != nil {
		return AudiencePage{}, err
	}
	where, wargs := a.Where(after)
	args := append([]any{a.ChannelID, after}, wargs...)
	args = append(args, n, a.ChannelID, c.source, c.sourceID, c.hash, batchID, nowMs, nowMs)
	p := AudiencePage{Last: after}
	var looked int
	var last int64
	err = tx.QueryRowContext(ctx, `WITH page AS MATERIALIZED (
			SELECT f.id, f.line_user_id FROM friends f WHERE f.channel_id = ? AND f.id > ? AND `+where+` ORDER BY f.id LIMIT ?),
		ins AS (INSERT INTO deliveries (channel_id, friend_id, line_user_id, source, source_id, source_ref,
				messages, content_hash, state, batch_id, due_at, created_at)
			SELECT ?, p.id, p.line_user_id, ?, ?, '', '', ?, 'sending', ?, ?, ? FROM page p
			WHERE `+validUserID("p")+` RETURNING 1)
		SELECT (SELECT COUNT(*) FROM page), (SELECT COALESCE(MAX(id), 0) FROM page), (SELECT COUNT(*) FROM ins)`,
		args...).Scan(&looked, &last, &p.Queued)
	if err != nil {
		return p, err
	}
	p.Last = max(p.Last, last)
	p.Skipped, p.End = looked-p.Queued, looked < n
	if p.Queued == 0 {
		_, err = tx.ExecContext(ctx, `DELETE FROM batches WHERE id = ?`, batchID)
	}
	return p, err
}
