package segment_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// now is 18:00 in Tokyo on 2026-11-23.
var now = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// pop is the test population: friends u01..u12 of channel "ch", and one friend of
// channel "other" who carries a tag of the same name and must never be selected.
type pop struct {
	db  *store.DB
	ids map[string]int64 // "u01" -> friend id
}

type person struct {
	name     string
	status   string
	followed time.Duration // before now; 0: never followed (NULL)
	tags     []string
	fields   map[string]string // set with SetField
	raw      map[string]string // inserted as is: values SetField would refuse
}

var people = []person{
	{"u01", "following", 1 * day, []string{"area:osaka", "member"}, map[string]string{"age": "30", "next_visit": "2026-11-20", "plan": "gold", "note": "50% off_sale"}, nil},
	{"u02", "following", 3 * day, []string{"area:osaka"}, map[string]string{"age": "45", "next_visit": "2026-12-01", "plan": "silver"}, nil},
	{"u03", "following", 10 * day, []string{"area:tokyo", "member"}, map[string]string{"age": "19", "next_visit": "2026-11-24", "plan": "gold"}, nil},
	{"u04", "following", 40 * day, []string{"area:tokyo"}, nil, map[string]string{"age": "abc"}},
	{"u05", "blocked", 5 * day, []string{"area:osaka", "member"}, map[string]string{"age": "50", "plan": "gold"}, nil},
	{"u06", "following", 100 * day, nil, nil, nil},
	{"u07", "unknown", 0, []string{"member"}, nil, nil},
	{"u08", "following", 2 * day, []string{"member"}, map[string]string{"age": "20.5", "note": "50 percent off-sale"}, nil},
	{"u09", "blocked", 200 * day, []string{"area:tokyo"}, map[string]string{"age": "30"}, nil},
	{"u10", "following", 6 * day, []string{"area:osaka", "area:tokyo"}, map[string]string{"age": "-5", "next_visit": "2026-11-23"}, nil},
	{"u11", "following", 20 * day, []string{"member"}, map[string]string{"age": "1000", "note": "a_b"}, nil},
	{"u12", "following", 8 * day, nil, map[string]string{"age": "7", "note": "aXb"}, map[string]string{"next_visit": "soon"}},
}

func setup(t *testing.T, db *store.DB) *pop {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewFake(now)
	svc := friend.NewService(db, clk, nil, nil, testutil.SearchKey)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, ch := range []string{"ch", "other"} {
		exec("INSERT INTO channels (id, name, secret_enc, token_enc, created_at) VALUES (?, ?, ?, ?, 0)", ch, ch, []byte{1}, []byte{1})
	}
	fields := map[string]friend.Field{}
	for _, def := range []friend.Field{
		{ChannelID: "ch", Key: "age", Label: "Age", Type: friend.NumberField, Purpose: "offers"},
		{ChannelID: "ch", Key: "next_visit", Label: "Next visit", Type: friend.DateField, Purpose: "reminders"},
		{ChannelID: "ch", Key: "plan", Label: "Plan", Type: friend.ChoiceField, Choices: []string{"gold", "silver", "bronze"}, Purpose: "offers"},
		{ChannelID: "ch", Key: "note", Label: "Note", Type: friend.TextField, Purpose: "support"},
	} {
		f, err := svc.DefineField(ctx, db, def)
		if err != nil {
			t.Fatal(err)
		}
		fields[f.Key] = f
	}
	tags := map[string]int64{}
	for _, name := range []string{"area:osaka", "area:tokyo", "member", "unused"} {
		tag, err := svc.CreateTag(ctx, db, "ch", name)
		if err != nil {
			t.Fatal(err)
		}
		tags[name] = tag.ID
	}
	p := &pop{db: db, ids: map[string]int64{}}
	insert := func(ch, user, status string, followed any) int64 {
		t.Helper()
		exec(`INSERT INTO friends (channel_id, line_user_id, status, status_at, followed_at, created_at, updated_at)
			VALUES (?, ?, ?, 0, ?, 0, 0)`, ch, user, status, followed)
		var id int64
		if err := db.QueryRowContext(ctx, "SELECT id FROM friends WHERE channel_id = ? AND line_user_id = ?", ch, user).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	for _, pe := range people {
		var followed any
		if pe.followed != 0 {
			followed = store.Millis(now.Add(-pe.followed))
		}
		id := insert("ch", "U"+pe.name, pe.status, followed)
		p.ids[pe.name] = id
		for _, tg := range pe.tags {
			if _, err := svc.AddTag(ctx, db, id, tags[tg]); err != nil {
				t.Fatal(err)
			}
		}
		for k, v := range pe.fields {
			if _, err := svc.SetField(ctx, db, id, fields[k], v); err != nil {
				t.Fatalf("%s %s=%s: %v", pe.name, k, v, err)
			}
		}
		for k, v := range pe.raw {
			exec("INSERT INTO friend_fields (friend_id, field_id, value, updated_at) VALUES (?, ?, ?, 0)", id, fields[k].ID, v)
		}
	}
	// The other channel: a follower carrying a "member" tag of its own.
	otherTag, err := svc.CreateTag(ctx, db, "other", "member")
	if err != nil {
		t.Fatal(err)
	}
	oid := insert("other", "Uother", "following", store.Millis(now.Add(-day)))
	if _, err := svc.AddTag(ctx, db, oid, otherTag.ID); err != nil {
		t.Fatal(err)
	}
	// Scenarios and enrolments.
	scen := map[string]int64{}
	for _, key := range []string{"welcome", "promo"} {
		exec(`INSERT INTO scenarios (channel_id, key, definition, trigger_type, created_at, updated_at) VALUES ('ch', ?, '{}', 'follow', 0, 0)`, key)
		var id int64
		if err := db.QueryRowContext(ctx, "SELECT id FROM scenarios WHERE channel_id = 'ch' AND key = ?", key).Scan(&id); err != nil {
			t.Fatal(err)
		}
		scen[key] = id
	}
	for _, e := range []struct{ scenario, friend, state string }{
		{"welcome", "u01", "active"}, {"welcome", "u02", "completed"}, {"welcome", "u03", "stopped"},
		{"welcome", "u05", "active"}, {"promo", "u01", "completed"},
	} {
		exec(`INSERT INTO enrollments (scenario_id, friend_id, channel_id, state, anchor_at, updated_at) VALUES (?, ?, 'ch', ?, 0, 0)`,
			scen[e.scenario], p.ids[e.friend], e.state)
	}
	return p
}

func (p *pop) names(ms []segment.Member) []string {
	var out []string
	for _, m := range ms {
		for name, id := range p.ids {
			if id == m.FriendID {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	out := strings.Split(s, " ")
	slices.Sort(out)
	return out
}

var cases = []struct {
	name   string
	filter string // YAML
	want   string // friend names, space-separated
	now    time.Time
}{
	{"empty is every follower", `{}`, "u01 u02 u03 u04 u06 u08 u10 u11 u12", time.Time{}},
	{"tag", `tag: member`, "u01 u03 u08 u11", time.Time{}},
	{"unused tag", `tag: unused`, "", time.Time{}},
	{"tag any status", `all: [{tag: member}, {status: any}]`, "u01 u03 u05 u07 u08 u11", time.Time{}},
	{"status blocked", `status: blocked`, "u05 u09", time.Time{}},
	{"status unknown", `status: unknown`, "u07", time.Time{}},
	{"status any", `status: any`, "u01 u02 u03 u04 u05 u06 u07 u08 u09 u10 u11 u12", time.Time{}},
	{"any", "any:\n  - tag: area:osaka\n  - tag: area:tokyo", "u01 u02 u03 u04 u10", time.Time{}},
	{"not", `not: {tag: member}`, "u02 u04 u06 u10 u12", time.Time{}},
	{"and not", `all: [{tag: area:osaka}, {not: {tag: member}}]`, "u02 u10", time.Time{}},
	{"not status", `not: {status: following}`, "u05 u07 u09", time.Time{}},
	{"number gt", `field: {key: age, op: gt, value: "25"}`, "u01 u02 u11", time.Time{}},
	{"number lte decimal", `field: {key: age, op: lte, value: "20.5"}`, "u03 u08 u10 u12", time.Time{}},
	{"number negative", `field: {key: age, op: lt, value: "0"}`, "u10", time.Time{}},
	{"not numeric includes bad value", `not: {field: {key: age, op: gte, value: "0"}}`, "u04 u06 u10", time.Time{}},
	{"number eq normalised", `field: {key: age, op: eq, value: "30.0"}`, "u01", time.Time{}},
	{"number ne", `field: {key: age, op: ne, value: "30"}`, "u02 u03 u04 u06 u08 u10 u11 u12", time.Time{}},
	{"set", `field: {key: age, op: set}`, "u01 u02 u03 u04 u08 u10 u11 u12", time.Time{}},
	{"unset", `field: {key: age, op: unset}`, "u06", time.Time{}},
	{"choice eq", `field: {key: plan, op: eq, value: gold}`, "u01 u03", time.Time{}},
	{"choice ne", `field: {key: plan, op: ne, value: gold}`, "u02 u04 u06 u08 u10 u11 u12", time.Time{}},
	{"date before today", `field: {key: next_visit, op: before, value: today}`, "u01", time.Time{}},
	{"date after today", `field: {key: next_visit, op: after, value: today}`, "u02 u03", time.Time{}},
	{"date gte today", `field: {key: next_visit, op: gte, value: today}`, "u02 u03 u10", time.Time{}},
	{"date eq tomorrow", `field: {key: next_visit, op: eq, value: "+1d"}`, "u03", time.Time{}},
	{"date lt absolute", `field: {key: next_visit, op: lt, value: "2026-12-01"}`, "u01 u03 u10", time.Time{}},
	{"date after relative", `field: {key: next_visit, op: after, value: "-7d"}`, "u01 u02 u03 u10", time.Time{}},
	{"date within weeks", `field: {key: next_visit, op: lte, value: "+1w"}`, "u01 u03 u10", time.Time{}},
	{"not a date", `not: {field: {key: next_visit, op: gte, value: "2000-01-01"}}`, "u04 u06 u08 u11 u12", time.Time{}},
	// 20:00 UTC on the 23rd is already the 24th in Tokyo, the channel's zone.
	{"today in the channel zone", `field: {key: next_visit, op: eq, value: today}`, "u03", now.Add(11 * time.Hour)},
	{"contains percent", `field: {key: note, op: contains, value: "%"}`, "u01", time.Time{}},
	{"contains percent underscore", `field: {key: note, op: contains, value: "0% off_"}`, "u01", time.Time{}},
	{"contains underscore", `field: {key: note, op: contains, value: "_"}`, "u01 u11", time.Time{}},
	{"contains underscore literal", `field: {key: note, op: contains, value: "a_b"}`, "u11", time.Time{}},
	{"contains is case-sensitive", `field: {key: note, op: contains, value: "OFF"}`, "", time.Time{}},
	{"prefix", `field: {key: note, op: prefix, value: "50"}`, "u01 u08", time.Time{}},
	{"prefix underscore", `field: {key: note, op: prefix, value: "a_"}`, "u11", time.Time{}},
	{"text eq", `field: {key: note, op: eq, value: "a_b"}`, "u11", time.Time{}},
	{"quotes and placeholders are values", `field: {key: note, op: contains, value: "?' OR 1=1; --"}`, "", time.Time{}},
	{"followed within 7d", `followedWithin: 7d`, "u01 u02 u08 u10", time.Time{}},
	{"followed within 36h", `followedWithin: 36h`, "u01", time.Time{}},
	{"followed before 30d", `followedBefore: 30d`, "u04 u06", time.Time{}},
	{"not followed within", `not: {followedWithin: 7d}`, "u03 u04 u06 u11 u12", time.Time{}},
	{"never followed is not within", `all: [{status: any}, {not: {followedWithin: 1w}}]`, "u03 u04 u06 u07 u09 u11 u12", time.Time{}},
	{"scenario active", `scenario: {key: welcome, state: active}`, "u01", time.Time{}},
	{"scenario active any status", `all: [{scenario: {key: welcome, state: active}}, {status: any}]`, "u01 u05", time.Time{}},
	{"scenario completed", `scenario: {key: welcome, state: completed}`, "u02", time.Time{}},
	{"scenario stopped", `scenario: {key: welcome, state: stopped}`, "u03", time.Time{}},
	{"scenario ever", `scenario: {key: welcome, state: ever}`, "u01 u02 u03", time.Time{}},
	{"scenario never", `scenario: {key: welcome, state: never}`, "u04 u06 u08 u10 u11 u12", time.Time{}},
	{"other scenario", `scenario: {key: promo, state: completed}`, "u01", time.Time{}},
	{"nested", `
any:
  - all:
      - tag: area:osaka
      - field: {key: age, op: gte, value: "40"}
  - all:
      - tag: area:tokyo
      - not: {scenario: {key: welcome, state: ever}}
`, "u02 u04 u10", time.Time{}},
	{"double not", `not: {not: {tag: member}}`, "u01 u03 u08 u11", time.Time{}},
}

func TestSegments(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := setup(t, db)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				at := now
				if !tc.now.IsZero() {
					at = tc.now
				}
				f, err := segment.Parse([]byte(tc.filter))
				if err != nil {
					t.Fatal(err)
				}
				c, err := segment.Resolve(ctx, db, "ch", f)
				if err != nil {
					t.Fatal(err)
				}
				want := list(tc.want)
				// All pages, two at a time, give the expected set in id order.
				var all []segment.Member
				after := int64(0)
				for {
					page, err := segment.Page(ctx, db, c, at, after, 2)
					if err != nil {
						t.Fatal(err)
					}
					if len(page) > 2 {
						t.Fatalf("page of %d", len(page))
					}
					all = append(all, page...)
					if len(page) < 2 {
						break
					}
					after = page[len(page)-1].FriendID
				}
				if !slices.IsSortedFunc(all, func(a, b segment.Member) int { return int(a.FriendID - b.FriendID) }) {
					t.Errorf("pages not in id order: %v", all)
				}
				if got := p.names(all); !slices.Equal(got, want) {
					where, args := c.Where(db.Dialect(), at)
					t.Errorf("got %v, want %v\nwhere %s %v", got, want, where, args)
				}
				for _, m := range all {
					if m.LineUserID == "" {
						t.Errorf("member %d without LINE user ID", m.FriendID)
					}
				}
				n, err := segment.Count(ctx, db, c, at)
				if err != nil {
					t.Fatal(err)
				}
				if n != len(want) {
					t.Errorf("count %d, want %d", n, len(want))
				}
				for name, id := range p.ids {
					ok, err := c.Match(ctx, db, id, at)
					if err != nil {
						t.Fatal(err)
					}
					if ok != slices.Contains(want, name) {
						t.Errorf("Match(%s) = %v", name, ok)
					}
				}
			})
		}
		t.Run("values are bound", func(t *testing.T) {
			// The SQL text depends on the filter's shape only (store caches rebound
			// queries by text), and never holds a value.
			var texts []string
			for _, v := range []string{"25", "99.5", "-1"} {
				c, err := segment.Resolve(ctx, db, "ch", segment.Filter{All: []segment.Filter{
					{Field: &segment.FieldCond{Key: "age", Op: "gt", Value: v}},
					{Field: &segment.FieldCond{Key: "note", Op: "prefix", Value: "x" + v}},
				}})
				if err != nil {
					t.Fatal(err)
				}
				where, args := c.Where(db.Dialect(), now)
				if strings.Contains(where, v) || strings.Count(where, "?") != len(args) {
					t.Errorf("%s %v", where, args)
				}
				texts = append(texts, where)
			}
			if texts[0] != texts[1] || texts[1] != texts[2] {
				t.Errorf("SQL differs by value: %q", texts)
			}
		})
		t.Run("other channel", func(t *testing.T) {
			c, err := segment.Resolve(ctx, db, "other", segment.Filter{Tag: "member"})
			if err != nil {
				t.Fatal(err)
			}
			n, err := segment.Count(ctx, db, c, now)
			if err != nil || n != 1 {
				t.Fatalf("count %d, %v", n, err)
			}
			if ok, err := c.Match(ctx, db, p.ids["u01"], now); err != nil || ok {
				t.Errorf("a friend of another channel matched: %v %v", ok, err)
			}
		})
		t.Run("transaction", func(t *testing.T) {
			err := db.WriteTx(ctx, func(tx *store.Tx) error {
				c, err := segment.Resolve(ctx, tx, "ch", segment.Filter{Tag: "member"})
				if err != nil {
					return err
				}
				n, err := segment.Count(ctx, tx, c, now)
				if err == nil && n != 4 {
					err = fmt.Errorf("count %d in a transaction", n)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	})
}

func TestResolveErrors(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		setup(t, db)
		for _, tc := range []struct {
			filter string
			want   string
		}{
			{`tag: area:kyoto`, `tag: unknown tag "area:kyoto"`},
			{`any: [{tag: member}, {not: {tag: vip}}]`, `any[1].not.tag: unknown tag "vip"`},
			{`field: {key: height, op: set}`, `field.key: unknown field "height"`},
			{`field: {key: age, op: contains, value: "3"}`, `field.op: contains does not apply to number field "age"`},
			{`field: {key: note, op: gt, value: "3"}`, `field.op: gt does not apply to text field "note"`},
			{`field: {key: plan, op: prefix, value: "g"}`, `field.op: prefix does not apply to choice field "plan"`},
			{`field: {key: age, op: gt, value: "abc"}`, `field.value: "abc" is not a number`},
			{`field: {key: age, op: gt, value: "NaN"}`, `field.value: "NaN" is not a number`},
			{`field: {key: next_visit, op: gt, value: "tomorrow"}`, `field.value: "tomorrow" is not a date`},
			{`field: {key: plan, op: eq, value: platinum}`, `field.value: "platinum" is not a choice of field "plan"`},
			{`all: [{tag: member}, {scenario: {key: onboarding, state: ever}}]`, `all[1].scenario.key: unknown scenario "onboarding"`},
		} {
			f, err := segment.Parse([]byte(tc.filter))
			if err != nil {
				t.Fatalf("%s: %v", tc.filter, err)
			}
			_, err = segment.Resolve(ctx, db, "ch", f)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: got %v, want %q", tc.filter, err, tc.want)
			}
			if !errors.Is(err, segment.ErrInvalid) {
				t.Errorf("%s: %v is not ErrInvalid", tc.filter, err)
			}
		}
		// Tags are per channel: "area:osaka" does not exist in "other".
		if _, err := segment.Resolve(ctx, db, "other", segment.Filter{Tag: "area:osaka"}); err == nil {
			t.Error("resolved a tag of another channel")
		}
		if _, err := segment.Resolve(ctx, db, "nope", segment.Filter{}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown channel: %v", err)
		}
	})
}
