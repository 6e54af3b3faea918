package segment

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/linestep/linestep/internal/store"
)

// Compiled is a filter checked against one channel: names are resolved to ids, so its
// SQL binds integers and never joins tags, fields or scenarios by name. It does not
// change after Resolve and is safe for concurrent use. A tag or field renamed or deleted
// later is not noticed: resolve again before each use that matters (a broadcast).
type Compiled struct {
	channelID string
	filter    Filter
	root      *node          // nil: no condition
	explicit  bool           // the filter names a status: no implicit "following"
	loc       *time.Location // the channel's zone, for "today" and "-30d"
}

// ChannelID is the channel the filter was resolved for.
func (c *Compiled) ChannelID() string { return c.channelID }

// Filter returns the filter as written.
func (c *Compiled) Filter() Filter { return c.filter }

// FollowersOnly reports whether the implicit status rule applies: the filter names no
// status, so only following friends match.
func (c *Compiled) FollowersOnly() bool { return !c.explicit }

type nodeKind int

const (
	kAll nodeKind = iota
	kAny
	kNot
	kTag
	kField
	kStatus
	kFollowedWithin
	kFollowedBefore
	kScenario
)

// node is a resolved Filter node.
type node struct {
	kind     nodeKind
	children []*node
	id       int64         // tag, field or scenario id
	str      string        // status, scenario state
	dur      time.Duration // followedWithin / followedBefore
	// field conditions
	ftype string // text | number | date | choice
	op    string
	text  string    // text/choice operand, normalised number
	num   float64   // number operand
	date  dateValue // date operand
}

// Resolve validates f and checks it against the channel: tags, fields and scenarios must
// exist, and each field op must fit the field's type (with a value of that type).
func Resolve(ctx context.Context, q store.Querier, channelID string, f Filter) (*Compiled, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	c := &Compiled{channelID: channelID, filter: f}
	var tz string
	if err := q.QueryRowContext(ctx, "SELECT time_zone FROM channels WHERE id = ?", channelID).Scan(&tz); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("segment: channel %q: %w", channelID, store.ErrNotFound)
		}
		return nil, fmt.Errorf("segment: channel: %w", err)
	}
	// The channel package checks zones when they are set, and the binary embeds tzdata.
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "" {
		return nil, fmt.Errorf("segment: channel %q has time zone %q: %v", channelID, tz, err)
	}
	c.loc = loc
	if f.IsEmpty() {
		return c, nil
	}
	r := resolver{ctx: ctx, q: q, channelID: channelID}
	root, err := r.resolve(&f, "")
	if err != nil {
		return nil, err
	}
	c.root, c.explicit = root, r.explicit
	return c, nil
}

type resolver struct {
	ctx       context.Context
	q         store.Querier
	channelID string
	explicit  bool
}

func (r *resolver) resolve(f *Filter, path string) (*node, error) {
	switch {
	case f.All != nil || f.Any != nil:
		n := &node{kind: kAll}
		list, name := f.All, "all"
		if f.Any != nil {
			n.kind, list, name = kAny, f.Any, "any"
		}
		for i := range list {
			child, err := r.resolve(&list[i], fmt.Sprintf("%s[%d]", join(path, name), i))
			if err != nil {
				return nil, err
			}
			n.children = append(n.children, child)
		}
		return n, nil
	case f.Not != nil:
		child, err := r.resolve(f.Not, join(path, "not"))
		if err != nil {
			return nil, err
		}
		return &node{kind: kNot, children: []*node{child}}, nil
	case f.Tag != "":
		id, err := r.lookup("SELECT id FROM tags WHERE channel_id = ? AND name = ?", f.Tag)
		if err != nil {
			return nil, err
		}
		if id == 0 {
			return nil, errAt(join(path, "tag"), "unknown tag %q", f.Tag)
		}
		return &node{kind: kTag, id: id}, nil
	case f.Field != nil:
		return r.field(f.Field, join(path, "field"))
	case f.Status != "":
		r.explicit = true
		return &node{kind: kStatus, str: f.Status}, nil
	case f.FollowedWithin != 0:
		return &node{kind: kFollowedWithin, dur: time.Duration(f.FollowedWithin)}, nil
	case f.FollowedBefore != 0:
		return &node{kind: kFollowedBefore, dur: time.Duration(f.FollowedBefore)}, nil
	case f.Scenario != nil:
		id, err := r.lookup("SELECT id FROM scenarios WHERE channel_id = ? AND key = ?", f.Scenario.Key)
		if err != nil {
			return nil, err
		}
		if id == 0 {
			return nil, errAt(join(path, "scenario.key"), "unknown scenario %q", f.Scenario.Key)
		}
		return &node{kind: kScenario, id: id, str: f.Scenario.State}, nil
	}
	return nil, errAt(path, "empty condition") // Validate has ruled this out
}

// lookup returns the id named, or 0 when there is none.
func (r *resolver) lookup(query, name string) (int64, error) {
	var id int64
	err := r.q.QueryRowContext(r.ctx, query, r.channelID, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("segment: resolve: %w", err)
	}
	return id, nil
}

// opsByType lists the ops each field type allows.
var opsByType = map[string][]string{
	"text":   {"eq", "ne", "contains", "prefix", "set", "unset"},
	"choice": {"eq", "ne", "set", "unset"},
	"number": {"eq", "ne", "gt", "gte", "lt", "lte", "set", "unset"},
	"date":   {"eq", "ne", "gt", "gte", "lt", "lte", "before", "after", "set", "unset"},
}

func (r *resolver) field(fc *FieldCond, path string) (*node, error) {
	var (
		id            int64
		typ, choices  string
		choiceOptions []string
	)
	err := r.q.QueryRowContext(r.ctx, "SELECT id, type, choices FROM fields WHERE channel_id = ? AND key = ?",
		r.channelID, fc.Key).Scan(&id, &typ, &choices)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errAt(join(path, "key"), "unknown field %q", fc.Key)
	}
	if err != nil {
		return nil, fmt.Errorf("segment: resolve: %w", err)
	}
	ops, ok := opsByType[typ]
	if !ok {
		return nil, fmt.Errorf("segment: field %q has unknown type %q", fc.Key, typ)
	}
	if !oneOf(fc.Op, ops) {
		return nil, errAt(join(path, "op"), "%s does not apply to %s field %q (use one of %s)", fc.Op, typ, fc.Key, strings.Join(ops, ", "))
	}
	n := &node{kind: kField, id: id, ftype: typ, op: fc.Op}
	// Normalise "before"/"after" to the comparisons they are.
	switch n.op {
	case "before":
		n.op = "lt"
	case "after":
		n.op = "gt"
	}
	if n.op == "set" || n.op == "unset" {
		return n, nil
	}
	vpath := join(path, "value")
	switch typ {
	case "text":
		n.text = fc.Value
		if n.op == "eq" || n.op == "ne" {
			n.text = strings.TrimSpace(fc.Value) // stored values are trimmed
		}
	case "choice":
		n.text = strings.TrimSpace(fc.Value)
		if choices != "" {
			if err := json.Unmarshal([]byte(choices), &choiceOptions); err == nil && !oneOf(n.text, choiceOptions) {
				return nil, errAt(vpath, "%q is not a choice of field %q (%s)", n.text, fc.Key, strings.Join(choiceOptions, ", "))
			}
		}
	case "number":
		v, err := strconv.ParseFloat(strings.TrimSpace(fc.Value), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, errAt(vpath, "%q is not a number", fc.Value)
		}
		// Stored numbers are written by strconv.FormatFloat(v, 'f', -1, 64): eq and ne
		// compare the same text, which the (field_id, value) index can serve.
		n.num, n.text = v, strconv.FormatFloat(v, 'f', -1, 64)
	case "date":
		d, err := parseDateValue(fc.Value)
		if err != nil {
			return nil, errAt(vpath, "%v", err)
		}
		n.date = d
	}
	return n, nil
}

// Where renders the filter as a boolean SQL expression over `friends f`, with `?`
// placeholders and their args (values are always bound, never spliced in). It includes
// the implicit status rule but not the channel: the caller adds `f.channel_id = ?`, e.g.
//
//	INSERT INTO deliveries (...) SELECT ... FROM friends f WHERE f.channel_id = ? AND <where>
//
// now anchors followedWithin, followedBefore and relative dates.
func (c *Compiled) Where(d store.Dialect, now time.Time) (string, []any) {
	return c.where(d, now, -1)
}

// WhereAfter is Where for the friends with an id above after (a page of a keyset walk,
// which the caller bounds with f.id > after too).
func (c *Compiled) WhereAfter(d store.Dialect, now time.Time, after int64) (string, []any) {
	return c.where(d, now, max(after, 0))
}

// where is Where for friends with an id above after (-1: no bound). The bound is
// repeated inside each subquery: PostgreSQL does not carry f.id > x over to
// ft.friend_id, and without it a merge join would read a tag's rows from the start on
// every page of a keyset walk.
func (c *Compiled) where(d store.Dialect, now time.Time, after int64) (string, []any) {
	w := writer{d: d, now: now, c: c, after: after}
	if !c.explicit {
		w.b.WriteString("f.status = ?")
		w.args = append(w.args, "following")
		if c.root == nil {
			return w.b.String(), w.args
		}
		w.b.WriteString(" AND ")
	}
	if c.root == nil {
		return "1 = 1", nil
	}
	w.node(c.root)
	return w.b.String(), w.args
}

type writer struct {
	d     store.Dialect
	now   time.Time
	c     *Compiled
	after int64
	b     strings.Builder
	args  []any
}

func (w *writer) arg(s string, a ...any) {
	w.b.WriteString(s)
	w.args = append(w.args, a...)
}

// exists writes [NOT] EXISTS over one of the friend's rows in table (friend_tags,
// friend_fields, enrollments) whose idCol is id, and which meets cond (if any).
func (w *writer) exists(not bool, table, alias, idCol string, id int64, cond string, condArgs ...any) {
	if not {
		w.b.WriteString("NOT ")
	}
	w.arg("EXISTS (SELECT 1 FROM "+table+" "+alias+" WHERE "+alias+".friend_id = f.id AND "+alias+"."+idCol+" = ?", id)
	if w.after >= 0 {
		w.arg(" AND "+alias+".friend_id > ?", w.after)
	}
	if cond != "" {
		w.arg(" AND "+cond, condArgs...)
	}
	w.b.WriteString(")")
}

// node writes one node. Every piece is parenthesised and never NULL (EXISTS, or IS NOT
// NULL guards), so NOT always negates: SQL's three-valued logic would otherwise drop
// friends from both `x` and `not: x`.
func (w *writer) node(n *node) {
	switch n.kind {
	case kAll, kAny:
		sep := " AND "
		if n.kind == kAny {
			sep = " OR "
		}
		w.b.WriteString("(")
		for i, child := range n.children {
			if i > 0 {
				w.b.WriteString(sep)
			}
			w.node(child)
		}
		w.b.WriteString(")")
	case kNot:
		w.b.WriteString("NOT (")
		w.node(n.children[0])
		w.b.WriteString(")")
	case kTag:
		// The (friend_id, tag_id) primary key answers this with one probe per friend.
		w.exists(false, "friend_tags", "ft", "tag_id", n.id, "")
	case kStatus:
		if n.str == "any" {
			w.b.WriteString("1 = 1")
			return
		}
		w.arg("f.status = ?", n.str)
	case kFollowedWithin:
		w.arg("(f.followed_at IS NOT NULL AND f.followed_at >= ?)", store.Millis(w.now.Add(-n.dur)))
	case kFollowedBefore:
		w.arg("(f.followed_at IS NOT NULL AND f.followed_at <= ?)", store.Millis(w.now.Add(-n.dur)))
	case kScenario:
		// The (scenario_id, friend_id) unique key answers these.
		switch n.str {
		case "ever":
			w.exists(false, "enrollments", "e", "scenario_id", n.id, "")
		case "never":
			w.exists(true, "enrollments", "e", "scenario_id", n.id, "")
		default:
			w.exists(false, "enrollments", "e", "scenario_id", n.id, "e.state = ?", n.str)
		}
	case kField:
		w.field(n)
	}
}

var sqlOps = map[string]string{"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}

func (w *writer) field(n *node) {
	pg := w.d == store.Postgres
	operand := n.text
	if n.ftype == "date" && n.op != "set" && n.op != "unset" {
		operand = n.date.on(w.now, w.c.loc)
	}
	// The (friend_id, field_id) primary key finds the friend's value.
	ff := func(not bool, cond string, args ...any) {
		w.exists(not, "friend_fields", "ff", "field_id", n.id, cond, args...)
	}
	switch n.op {
	case "set":
		ff(false, "")
	case "unset":
		ff(true, "")
	case "eq":
		ff(false, "ff.value = ?", operand)
	case "ne":
		ff(true, "ff.value = ?", operand)
	case "contains":
		// An exact, case-sensitive substring test: no LIKE pattern, so '%' and '_' in
		// the value are plain characters, and both engines agree (SQLite's LIKE would
		// ignore ASCII case, PostgreSQL's would not).
		if pg {
			ff(false, "strpos(ff.value, ?) > 0", operand)
		} else {
			ff(false, "instr(ff.value, ?) > 0", operand)
		}
	case "prefix":
		ff(false, "substr(ff.value, 1, ?) = ?", utf8.RuneCountInString(operand), operand)
	case "gt", "gte", "lt", "lte":
		op := sqlOps[n.op]
		if n.ftype == "number" {
			ff(false, numeric(w.d, "ff.value")+" "+op+" ?", n.num)
			return
		}
		// Dates are YYYY-MM-DD, so text order is date order; the pattern keeps a stray
		// non-date value out, and COLLATE "C" keeps PostgreSQL's locale out of the order.
		if pg {
			ff(false, `ff.value ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' AND ff.value COLLATE "C" `+op+" ?", operand)
		} else {
			ff(false, "ff.value GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' AND ff.value "+op+" ?", operand)
		}
	}
}

// numeric is col as a number, or NULL when col's text is not a plain decimal number. On
// PostgreSQL a CAST of bad text fails the whole query, and AND does not promise to test
// the pattern first; CASE does. SQLite's CAST never fails but reads "abc" as 0, so the
// same shape (-?[0-9]+(.[0-9]+)?) is checked there with GLOB, which has no '?' to clash
// with placeholders.
func numeric(d store.Dialect, col string) string {
	if d == store.Postgres {
		return "(CASE WHEN " + col + ` ~ '^-{0,1}[0-9]+(\.[0-9]+){0,1}$' THEN CAST(` + col + " AS DOUBLE PRECISION) END)"
	}
	return "(CASE WHEN " + col + " NOT GLOB '*[^0-9.-]*'" +
		" AND (" + col + " GLOB '[0-9]*' OR " + col + " GLOB '-[0-9]*')" +
		" AND " + col + " GLOB '*[0-9]'" +
		" AND instr(substr(" + col + ", 2), '-') = 0" +
		" AND " + col + " NOT GLOB '*.*.*'" +
		" THEN CAST(" + col + " AS REAL) END)"
}
