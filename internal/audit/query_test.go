package audit

import (
	"bytes"
	"context"
	"encoding/csv"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// fixture appends a small, varied log, one minute apart from start+1m.
func fixture(t *testing.T, l *Log, clk interface{ Advance(time.Duration) }) {
	t.Helper()
	recs := []Record{
		{Actor: Staff(1, "owner"), Action: SignInSuccess, ClientAddr: "192.0.2.1"},              // 1
		{Actor: Staff(2, "hanako"), Action: FriendView, ChannelID: "ch1", Subject: "friend:10"}, // 2
		{Actor: Staff(2, "hanako"), Action: FriendReveal, ChannelID: "ch1", Subject: "friend:10", // 3
			Fields: []string{"phone"}, Detail: map[string]string{"reason": "予約の確認"}},
		{Actor: Staff(2, "hanako"), Action: FriendsExport, ChannelID: "ch1", Detail: map[string]string{"rows": "120"}}, // 4
		{Actor: Token(5, "booking"), Action: TokenUse, ChannelID: "ch2"},                                               // 5
		{Actor: Staff(1, "owner"), Action: RoleChange, Subject: "staff:2", // 6
			Detail: map[string]string{"from": "operator", "to": "admin"}},
		{Actor: System("retention"), Action: "friend_data.delete", ChannelID: "ch2", Subject: "friend:11"}, // 7
		{Actor: Staff(2, "hanako"), Action: FriendView, ChannelID: "ch2", Subject: "friend:11"},            // 8
	}
	for _, r := range recs {
		clk.Advance(time.Minute)
		if _, err := l.Add(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func seqs(recs []Record) []int64 {
	out := []int64{}
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

func TestQuery(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l, clk := newLog(t, db)
		fixture(t, l, clk)
		for _, c := range []struct {
			name string
			f    Filter
			want []int64
		}{
			{"all, newest first", Filter{}, []int64{8, 7, 6, 5, 4, 3, 2, 1}},
			{"staff member", Filter{ActorKind: ActorStaff, ActorID: "2"}, []int64{8, 4, 3, 2}},
			{"token", Filter{ActorKind: ActorToken}, []int64{5}},
			{"action prefix", Filter{Action: "friend"}, []int64{8, 3, 2}},
			{"action prefix with .*", Filter{Action: "friend.*"}, []int64{8, 3, 2}},
			{"action exact", Filter{Action: FriendReveal}, []int64{3}},
			{"plural is another action", Filter{Action: "friends"}, []int64{4}},
			{"underscore is no wildcard", Filter{Action: "friend_data"}, []int64{7}},
			{"prefix of a word is no match", Filter{Action: "sign"}, nil},
			{"channel", Filter{ChannelID: "ch2"}, []int64{8, 7, 5}},
			{"subject", Filter{Subject: "friend:10"}, []int64{3, 2}},
			{"since", Filter{Since: start.Add(6 * time.Minute)}, []int64{8, 7, 6}},
			{"until", Filter{Until: start.Add(3 * time.Minute)}, []int64{2, 1}},
			{"since and until", Filter{Since: start.Add(3 * time.Minute), Until: start.Add(5 * time.Minute)}, []int64{4, 3}},
			{"combined", Filter{ActorID: "2", ChannelID: "ch1", Action: "friend"}, []int64{3, 2}},
			{"limit", Filter{Limit: 3}, []int64{8, 7, 6}},
			{"next page", Filter{Before: 6, Limit: 3}, []int64{5, 4, 3}},
			{"last page", Filter{Before: 3, Limit: 3}, []int64{2, 1}},
		} {
			got, err := l.Query(ctx, c.f)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if !slices.Equal(seqs(got), c.want) && !(len(got) == 0 && len(c.want) == 0) {
				t.Errorf("%s: got %v, want %v", c.name, seqs(got), c.want)
			}
		}
		got, err := l.Query(ctx, Filter{Action: RoleChange})
		if err != nil || len(got) != 1 {
			t.Fatal(got, err)
		}
		r := got[0]
		if r.Actor != Staff(1, "owner") || r.Subject != "staff:2" || r.Detail["to"] != "admin" || !r.At.Equal(start.Add(6*time.Minute)) {
			t.Errorf("record read back: %+v", r)
		}
	})
}

func TestExportCSV(t *testing.T) {
	t.Parallel()
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l, clk := newLog(t, db)
		l.page = 3
		fixture(t, l, clk)
		// Values that a spreadsheet would run as formulas.
		hostile := Record{Actor: Staff(9, "=cmd|' /C calc'!A0"), Action: SignInFailure,
			ClientAddr: "+81-3", UserAgent: "@SUM(1+1)*cmd|' /C calc'!A0", Subject: "-2+3",
			Fields: []string{"=x"}, Detail: map[string]string{"reason": "=HYPERLINK(\"http://evil\")"}}
		clk.Advance(time.Minute)
		if _, err := l.Add(ctx, hostile); err != nil {
			t.Fatal(err)
		}

		var buf bytes.Buffer
		n, err := l.ExportCSV(ctx, &buf, Filter{})
		if err != nil || n != 9 {
			t.Fatalf("export: %d %v", n, err)
		}
		lines, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) != 10 || !slices.Equal(lines[0], CSVHeader) {
			t.Fatalf("export: %d lines, header %v", len(lines), lines[0])
		}
		for i, line := range lines[1:] {
			if line[0] != strconv.Itoa(i+1) {
				t.Errorf("line %d is record %s: oldest first expected", i+1, line[0])
			}
		}
		last := lines[9]
		cell := func(name string) string { return last[slices.Index(CSVHeader, name)] }
		for name, want := range map[string]string{
			"actor_name":  "'=cmd|' /C calc'!A0",
			"client_addr": "'+81-3",
			"user_agent":  "'@SUM(1+1)*cmd|' /C calc'!A0",
			"subject":     "'-2+3",
			"fields":      `["=x"]`,
			"detail":      `{"reason":"=HYPERLINK(\"http://evil\")"}`,
		} {
			if got := cell(name); got != want {
				t.Errorf("%s: %q, want %q", name, got, want)
			}
		}
		for _, line := range lines[1:] {
			for _, c := range line {
				if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
					t.Errorf("a cell starts with a formula character: %q", c)
				}
			}
		}

		// The export holds all it takes to recompute the chain, outside linestep.
		prev := Genesis
		for _, line := range lines[1:] {
			un := make([]string, len(line))
			for i, c := range line {
				un[i] = strings.TrimPrefix(c, "'")
			}
			at, err := time.Parse(csvTime, un[1])
			if err != nil {
				t.Fatal(err)
			}
			seq, _ := strconv.ParseInt(un[0], 10, 64)
			r := row{seq: seq, createdAt: store.Millis(at), actorKind: un[2], actorID: un[3], actorName: un[4],
				action: un[5], channelID: un[6], subject: un[7], fields: un[8], clientAddr: un[9], userAgent: un[10],
				detail: un[11], prevHash: prev}
			if r.chainHash() != un[13] || un[12] != prev {
				t.Fatalf("record %d: the chain does not recompute from the export", seq)
			}
			prev = un[13]
		}

		// Filters and limits apply, across pages.
		buf.Reset()
		if n, err := l.ExportCSV(ctx, &buf, Filter{ActorID: "2", Limit: 3}); err != nil || n != 3 {
			t.Fatalf("filtered export: %d %v", n, err)
		}
		lines, _ = csv.NewReader(&buf).ReadAll()
		if len(lines) != 4 || lines[1][0] != "2" || lines[3][0] != "4" {
			t.Errorf("filtered export: %v", lines)
		}
		buf.Reset()
		if n, err := l.ExportCSV(ctx, &buf, Filter{Subject: "nobody"}); err != nil || n != 0 || strings.Count(buf.String(), "\n") != 1 {
			t.Errorf("empty export: %d %v %q", n, err, buf.String())
		}
	})
}

func TestSafeCell(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":               "",
		"hello":          "hello",
		"田中":             "田中",
		"=1+1":           "'=1+1",
		"+81":            "'+81",
		"-5":             "'-5",
		"@SUM(A1)":       "'@SUM(A1)",
		"\t=1":           "'\t=1",
		"\r=1":           "'\r=1",
		"'quoted":        "''quoted",
		"＝1+1":           "'＝1+1",
		"＠x":             "'＠x",
		"a=1":            "a=1",
		" =1":            " =1",
		`{"a":"=1"}`:     `{"a":"=1"}`,
		"192.0.2.1":      "192.0.2.1",
		"2026-04-01T09:": "2026-04-01T09:",
	} {
		if got := SafeCell(in); got != want {
			t.Errorf("SafeCell(%q) = %q, want %q", in, got, want)
		}
		// Reversible: one leading quote, when present, is the one SafeCell added.
		if got := SafeCell(in); got != in && got[1:] != in {
			t.Errorf("SafeCell(%q) = %q cannot be undone", in, got)
		}
	}
}
