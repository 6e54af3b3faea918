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
	Last    int64 // the highest friend id looked at: where the next call starts
	Looked  int   // friends looked at; fewer than asked means the audience is exhausted
	Queued  int   // deliveries written
	Skipped int   // not a LINE user ID (imported by hand): LINE would refuse the whole call
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
	for page.Looked < limit {
		n := min(line.MaxMulticast, limit-page.Looked)
		var p AudiencePage
		if tx.Dialect() == store.Postgres {
			p, err = s.audiencePagePostgres(ctx, tx, a, page.Last, n, content, nowMs)
		} else {
			p, err = s.audiencePageSQLite(ctx, tx, a, page.Last, n, content, nowMs)
		}
		if err != nil {
			return AudiencePage{}, fmt.Errorf("delivery: enqueue audience: %w", err)
		}
		page.Looked += p.Looked
		page.Queued += p.Queued
		page.Skipped += p.Skipped
		if p.Looked > 0 {
			page.Last = p.Last
		}
		if p.Looked < n {
			break
		}
	}
	if page.Queued > 0 {
		tx.AfterCommit(s.Notify)
	}
	return page, nil
}

// validUserID is line.ValidUserID in SQL, the same on both databases (and cheaper on
// PostgreSQL than a regular expression).
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

// audiencePageSQLite takes a page in two statements: the first finds its id range and
// counts it, the second inserts the members of that range. Nothing else writes between
// them: SQLite has one writer, and this transaction is it.
func (s *Service) audiencePageSQLite(ctx context.Context, tx *store.Tx, a Audience, after int64, n int,
	c audienceContent, nowMs int64) (AudiencePage, error) {
	where, wargs := a.Where(after)
	args := append([]any{a.ChannelID, after}, wargs...)
	var p AudiencePage
	var ok int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(SUM(ok), 0) FROM
		(SELECT f.id, (`+validUserID("f")+`) AS ok FROM friends f WHERE f.channel_id = ? AND f.id > ? AND `+where+` ORDER BY f.id LIMIT ?)`,
		append(args, n)...).Scan(&p.Looked, &p.Last, &ok)
	if err != nil || p.Looked == 0 {
		return p, err
	}
	p.Skipped = p.Looked - ok
	if ok == 0 {
		return p, nil
	}
	batchID, err := insertAudienceBatch(ctx, tx, a.ChannelID, c, nowMs)
	if err != nil {
		return p, err
	}
	ins := append([]any{a.ChannelID, c.source, c.sourceID, c.hash, batchID, nowMs, nowMs, a.ChannelID, after, p.Last}, wargs...)
	res, err := tx.ExecContext(ctx, `INSERT INTO deliveries (channel_id, friend_id, line_user_id, source, source_id, source_ref,
			messages, content_hash, state, batch_id, due_at, created_at)
		SELECT ?, f.id, f.line_user_id, ?, ?, '', '', ?, 'sending', ?, ?, ?
		FROM friends f WHERE f.channel_id = ? AND f.id > ? AND f.id <= ? AND `+where+` AND `+validUserID("f"), ins...)
	if err != nil {
		return p, err
	}
	queued, _ := res.RowsAffected()
	p.Queued = int(queued)
	return p, nil
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
	var p AudiencePage
	err = tx.QueryRowContext(ctx, `WITH page AS MATERIALIZED (
			SELECT f.id, f.line_user_id FROM friends f WHERE f.channel_id = ? AND f.id > ? AND `+where+` ORDER BY f.id LIMIT ?),
		ins AS (INSERT INTO deliveries (channel_id, friend_id, line_user_id, source, source_id, source_ref,
				messages, content_hash, state, batch_id, due_at, created_at)
			SELECT ?, p.id, p.line_user_id, ?, ?, '', '', ?, 'sending', ?, ?, ? FROM page p
			WHERE `+validUserID("p")+` RETURNING 1)
		SELECT (SELECT COUNT(*) FROM page), (SELECT COALESCE(MAX(id), 0) FROM page), (SELECT COUNT(*) FROM ins)`,
		args...).Scan(&p.Looked, &p.Last, &p.Queued)
	if err != nil {
		return p, err
	}
	p.Skipped = p.Looked - p.Queued
	if p.Queued == 0 {
		_, err = tx.ExecContext(ctx, `DELETE FROM batches WHERE id = ?`, batchID)
	}
	return p, err
}
