package audit

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// Filter selects records; its zero value selects all. Every set field must match.
type Filter struct {
	ActorKind ActorKind
	ActorID   string
	// Action matches that action and, as a prefix, every action under it: "friend"
	// matches "friend" and "friend.view", not "friends.export". A trailing ".*" or "."
	// is allowed ("friend.*").
	Action    Action
	ChannelID string
	Subject   string
	// Scoped keeps only records of the channels in Within (none when it is empty): a
	// reader who works on some LINE accounts sees neither the others' records nor the
	// installation's own (sign-ins, staff, roles), which concern people on all of them.
	Scoped bool
	Within []string
	// Since (inclusive) and Until (exclusive) bound the time.
	Since, Until time.Time
	// Before selects records numbered below it: the next page of a newest-first list
	// passes the last Seq it showed.
	Before int64
	// Limit caps how many records come back: Query defaults to DefaultLimit and allows at
	// most MaxLimit; ExportCSV writes all when 0.
	Limit int
}

// Page sizes for Query.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// where renders the filter as SQL conditions and their arguments, with after selecting
// records numbered above it (0: no bound).
func (f Filter) where(after int64) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, a ...any) {
		conds = append(conds, cond)
		args = append(args, a...)
	}
	if f.ActorKind != "" {
		add("actor_kind = ?", string(f.ActorKind))
	}
	if f.ActorID != "" {
		add("actor_id = ?", f.ActorID)
	}
	if a := strings.TrimSuffix(strings.TrimSuffix(string(f.Action), "*"), "."); a != "" {
		// substr rather than LIKE: '_' is common in action names and a LIKE wildcard,
		// and SQLite's LIKE ignores case.
		add("(action = ? OR substr(action, 1, ?) = ?)", a, len(a)+1, a+".")
	}
	if f.ChannelID != "" {
		add("channel_id = ?", f.ChannelID)
	}
	if f.Subject != "" {
		add("subject = ?", f.Subject)
	}
	if f.Scoped {
		if len(f.Within) == 0 {
			add("1 = 0")
		} else {
			in := make([]any, len(f.Within))
			for i, c := range f.Within {
				in[i] = c
			}
			add("channel_id IN "+store.Placeholders(1, len(in)), in...)
		}
	}
	if !f.Since.IsZero() {
		add("created_at >= ?", store.Millis(f.Since))
	}
	if !f.Until.IsZero() {
		add("created_at < ?", store.Millis(f.Until))
	}
	if f.Before > 0 {
		add("seq < ?", f.Before)
	}
	if after > 0 {
		add("seq > ?", after)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Query returns the records that match f, newest first, for the console's audit page.
func (l *Log) Query(ctx context.Context, f Filter) ([]Record, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	where, args := f.where(0)
	rows, err := l.db.QueryContext(ctx, "SELECT "+columns+" FROM audit_log"+where+" ORDER BY seq DESC LIMIT ?",
		append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("audit: query: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var r row
		if err := r.scan(rows); err != nil {
			return nil, fmt.Errorf("audit: query: %w", err)
		}
		out = append(out, r.record())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: query: %w", err)
	}
	return out, nil
}

// CSVHeader is the first line ExportCSV writes.
var CSVHeader = []string{"seq", "time", "actor_kind", "actor_id", "actor_name", "action", "channel_id",
	"subject", "fields", "client_addr", "user_agent", "detail", "prev_hash", "hash"}

// ExportCSV writes the records that match f to w as CSV, oldest first, with a header
// line, and returns how many it wrote. It reads and writes page by page, so a log of any
// length streams in flat memory. Cells are as stored (fields and detail as their JSON,
// the time with milliseconds and its offset), passed through SafeCell; the export thus
// holds everything needed to recompute the chain outside linestep. Exporting the log is
// itself an act to record: callers append AuditExport.
func (l *Log) ExportCSV(ctx context.Context, w io.Writer, f Filter) (int64, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return 0, fmt.Errorf("audit: export: %w", err)
	}
	var n, after int64
	for {
		page := l.page
		if f.Limit > 0 {
			page = min(page, f.Limit-int(n))
			if page <= 0 {
				break
			}
		}
		where, args := f.where(after)
		got, err := l.exportPage(ctx, cw, where, append(args, page))
		n += int64(got.count)
		if err != nil {
			return n, err
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return n, fmt.Errorf("audit: export: %w", err)
		}
		if got.count < page {
			break
		}
		after = got.last
	}
	return n, nil
}

type pageResult struct {
	count int
	last  int64
}

func (l *Log) exportPage(ctx context.Context, cw *csv.Writer, where string, args []any) (pageResult, error) {
	var res pageResult
	rows, err := l.db.QueryContext(ctx, "SELECT "+columns+" FROM audit_log"+where+" ORDER BY seq LIMIT ?", args...)
	if err != nil {
		return res, fmt.Errorf("audit: export: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r row
		if err := r.scan(rows); err != nil {
			return res, fmt.Errorf("audit: export: %w", err)
		}
		cells := []string{strconv.FormatInt(r.seq, 10), store.Time(r.createdAt).Format(csvTime),
			r.actorKind, r.actorID, r.actorName, r.action, r.channelID, r.subject,
			r.fields, r.clientAddr, r.userAgent, r.detail, r.prevHash, r.hash}
		for i, c := range cells {
			cells[i] = SafeCell(c)
		}
		if err := cw.Write(cells); err != nil {
			return res, fmt.Errorf("audit: export: %w", err)
		}
		res.count++
		res.last = r.seq
	}
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("audit: export: %w", err)
	}
	return res, nil
}

// csvTime keeps the milliseconds (the hash covers them) and the offset (unambiguous in
// any time zone), in the machine's local time, which is what a shop reads.
const csvTime = "2006-01-02T15:04:05.000Z07:00"
