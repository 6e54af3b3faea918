package audit

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Problem says why a record breaks the chain.
type Problem string

const (
	// ProblemHash: the record's contents were changed after it was written.
	ProblemHash Problem = "hash does not match its contents"
	// ProblemPrev: the record does not follow the one before it (that one was changed and
	// re-hashed, or this one was put in its place).
	ProblemPrev Problem = "does not chain to the record before it"
	// ProblemMissing: the record was removed; the log jumps past its number.
	ProblemMissing Problem = "record is missing"
	// ProblemAnchor: the record is not the one an anchor kept from an earlier check.
	ProblemAnchor Problem = "does not match the anchor kept from an earlier check"
	// ProblemTruncated: the log ends before a record an anchor says existed: records
	// were removed from the end.
	ProblemTruncated Problem = "record is missing: the log now ends before it"
)

// Anchor is a record's number and hash, kept outside the database (printed by
// `linestep audit verify`, written down or stored elsewhere). The chain alone cannot
// show records cut from the end, nor a log rewritten and re-hashed from some point on,
// by someone with write access to the database: checking against an anchor can.
type Anchor struct {
	Seq  int64
	Hash string
}

// String formats the anchor as ParseAnchor reads it: "SEQ:HASH".
func (a Anchor) String() string { return strconv.FormatInt(a.Seq, 10) + ":" + a.Hash }

// ParseAnchor reads "SEQ:HASH".
func ParseAnchor(s string) (Anchor, error) {
	num, h, ok := strings.Cut(strings.TrimSpace(s), ":")
	seq, err := strconv.ParseInt(num, 10, 64)
	h = strings.ToLower(h)
	if _, herr := hex.DecodeString(h); !ok || err != nil || seq < 1 || len(h) != 64 || herr != nil {
		return Anchor{}, fmt.Errorf("audit: anchor %q is not SEQ:HASH (a record number, a colon, 64 hex digits)", s)
	}
	return Anchor{Seq: seq, Hash: h}, nil
}

// Report is the outcome of Verify.
type Report struct {
	// Count is how many records were found sound, from the first one on.
	Count int64
	// Head is the last sound record (Seq 0 and Genesis for an empty log): an anchor for
	// the next check.
	Head Anchor
	// Broken is the first record that breaks the chain, nil when the log is intact.
	Broken *Break
}

// OK reports whether the whole log is intact.
func (r Report) OK() bool { return r.Broken == nil }

// Break is where, and why, the chain breaks.
type Break struct {
	Seq     int64
	Problem Problem
}

func (b Break) String() string { return fmt.Sprintf("record %d: %s", b.Seq, b.Problem) }

// Verify reads the whole log in order and checks every record: numbered one after the
// other from 1, chained to the record before (the first to Genesis), its hash that of its
// contents, and equal to any anchors given. It stops at the first break. An error means
// the log could not be read, not that it is broken.
func (l *Log) Verify(ctx context.Context, anchors ...Anchor) (Report, error) {
	want := make(map[int64]string, len(anchors))
	for _, a := range anchors {
		want[a.Seq] = strings.ToLower(a.Hash)
	}
	rep := Report{Head: Anchor{Seq: 0, Hash: Genesis}}
	for {
		n, err := l.verifyPage(ctx, &rep, want)
		if err != nil {
			return rep, err
		}
		if rep.Broken != nil {
			return rep, nil
		}
		if n < l.page {
			break
		}
	}
	// An anchor past the end: the end was cut off, from the record after the last one.
	for seq := range want {
		if seq > rep.Head.Seq {
			rep.Broken = &Break{Seq: rep.Head.Seq + 1, Problem: ProblemTruncated}
			break
		}
	}
	return rep, nil
}

// verifyPage checks the records after rep.Head, up to a page of them, and reports
// how many it read.
func (l *Log) verifyPage(ctx context.Context, rep *Report, anchors map[int64]string) (int, error) {
	rows, err := l.db.QueryContext(ctx, "SELECT "+columns+" FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
		rep.Head.Seq, l.page)
	if err != nil {
		return 0, fmt.Errorf("audit: verify: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
		var r row
		if err := r.scan(rows); err != nil {
			return n, fmt.Errorf("audit: verify: %w", err)
		}
		if p := check(&r, rep.Head, anchors); p != "" {
			seq := r.seq
			if p == ProblemMissing {
				seq = rep.Head.Seq + 1
			}
			rep.Broken = &Break{Seq: seq, Problem: p}
			return n, nil
		}
		rep.Count++
		rep.Head = Anchor{Seq: r.seq, Hash: r.hash}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("audit: verify: %w", err)
	}
	return n, nil
}

// check returns what is wrong with r, which follows prev, or "" when nothing is. A gap
// comes first (what is missing is the record before r); then the contents, so that an
// edited record is reported as such even when its stored prev_hash was edited too.
func check(r *row, prev Anchor, anchors map[int64]string) Problem {
	switch {
	case r.seq != prev.Seq+1:
		return ProblemMissing
	case r.chainHash() != r.hash:
		return ProblemHash
	case r.prevHash != prev.Hash:
		return ProblemPrev
	}
	if h, ok := anchors[r.seq]; ok && h != r.hash {
		return ProblemAnchor
	}
	return ""
}
