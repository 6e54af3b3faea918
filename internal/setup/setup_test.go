package setup_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/autoreply"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/setup"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/template"
	"github.com/linestep/linestep/internal/testutil"
)

var ctx = context.Background()

type rig struct {
	t   *testing.T
	db  *store.DB
	svc setup.Services
}

// newRig makes the services on db and the channels ch1 and ch2.
func newRig(t *testing.T, db *store.DB) *rig {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	clk := clock.NewFake(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	friends := friend.NewService(db, clk, nil, logger, testutil.SearchKey)
	deliveries := delivery.New(db, clk, nil, logger, delivery.Config{})
	for _, ch := range []string{"ch1", "ch2"} {
		if _, err := db.ExecContext(ctx, `INSERT INTO channels (id, name, secret_enc, token_enc, created_at) VALUES (?, 'Test', ?, ?, 0)`,
			ch, []byte{1}, []byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	return &rig{t: t, db: db, svc: setup.Services{
		Friends:     friends,
		Scenarios:   scenario.New(db, clk, friends, deliveries, logger, scenario.Config{}),
		AutoReplies: autoreply.New(db, clk, friends, deliveries, logger),
		Coupons:     coupon.New(db, clk, logger),
	}}
}

// apply parses src and applies it to ch.
func (r *rig) apply(ch, src string, opt setup.Options) (setup.Summary, error) {
	r.t.Helper()
	f, err := setup.Parse([]byte(src))
	if err != nil {
		r.t.Fatalf("parse: %v", err)
	}
	return setup.Apply(ctx, r.db, r.svc, ch, f, opt)
}

func (r *rig) mustApply(ch, src string, opt setup.Options) setup.Summary {
	r.t.Helper()
	sum, err := r.apply(ch, src, opt)
	if err != nil {
		r.t.Fatalf("apply: %v", err)
	}
	return sum
}

func (r *rig) export(ch string) string {
	r.t.Helper()
	f, err := setup.Export(ctx, r.db, r.svc, ch)
	if err != nil {
		r.t.Fatalf("export: %v", err)
	}
	b, err := f.Marshal()
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}

// full uses every kind and most of what each can say; its scenarios and a segment refer
// to each other.
const full = `
tags: [vip, "area:osaka"]
fields:
  - {key: next_visit, label: 次回来店日, type: date, purpose: 来店前日のリマインド, retention_days: 365}
  - key: rank
    label: ランク
    type: choice
    choices: [bronze, silver, gold]
    purpose: 特典の出し分け
  - {key: allergy, label: アレルギー, type: text, purpose: 料理の案内, sensitivity: special}
templates:
  osaka-sale:
    name: 大阪セール
    messages:
      - type: text
        text: |-
          {{display_name|お客様}}さん
          大阪店のセールです。クーポン {{coupon.osaka10.code|なし}}
      - type: flex
        altText: セール
        contents: {type: bubble, body: {type: box, layout: vertical, contents: [{type: text, text: "10% off"}]}}
segments:
  osaka: {name: 大阪の友だち, filter: {tag: "area:osaka"}}
  members: {filter: {field: {key: rank, op: eq, value: gold}}}
  greeted: {filter: {all: [{scenario: {key: welcome, state: completed}}, {not: {tag: vip}}]}}
coupons:
  osaka10:
    title: 大阪店10%オフ
    description: お会計から10%引き
    code_policy: generated
    valid_from: 2026-12-01
    valid_until: "2027-01-01 09:30"
  every1:
    title: 全員に
    code_policy: shared
    shared_code: HELLO1
    valid_from: 2026-11-01T10:00:00+09:00
    per_friend_limit: 3
    enabled: false
scenarios:
  welcome:
    name: あいさつ
    trigger: {type: follow}
    quiet_hours: "21:00-09:00"
    stop: {scenarios: [survey]}
    steps:
      - key: greet
        messages: [{type: text, text: "{{display_name|お客様}}さん、ようこそ"}]
      - key: day1
        timing: {after: 1d}
        if: {tag: newcomer}
        messages: [{type: text, text: 2日目です}]
        actions: {add_tags: [nurtured], set_fields: {rank: silver}, start: [survey]}
  survey:
    trigger: {type: scenario}
    enabled: false
    steps:
      - key: ask
        timing: {day: 0, at: "10:00"}
        messages: [{type: text, text: アンケートにご協力ください}]
        actions: {stop: [welcome]}
  visit:
    trigger: {type: field, field: next_visit}
    reentry: after_end
    steps:
      - key: eve
        timing: {field: next_visit, days: -1, at: "10:00"}
        messages: [{type: text, text: 明日お待ちしています}]
autoreplies:
  hours:
    name: 営業時間
    match: contains
    keywords: [営業, open]
    priority: 10
    window: {days: [mon, tue], from: "09:00", to: "18:00"}
    messages: [{type: text, text: 9時から18時までです}]
  night:
    match: regex
    keywords: ["^(予約|reserve)$"]
    enabled: false
    messages: [{type: text, text: 夜間は予約を受け付けていません}]
`

func counts(sum setup.Summary) map[string]setup.Counts {
	out := map[string]setup.Counts{}
	for _, k := range []string{setup.KindFields, setup.KindTags, setup.KindTemplates, setup.KindSegments, setup.KindCoupons, setup.KindScenarios, setup.KindAutoReplies} {
		out[k] = sum.Count(k)
	}
	return out
}

func TestApplyIdempotentAndExportRoundTrip(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		sum := r.mustApply("ch1", full, setup.Options{})
		want := map[string]setup.Counts{
			"fields": {Created: 3}, "tags": {Created: 2}, "templates": {Created: 1}, "segments": {Created: 3}, "coupons": {Created: 2},
			"scenarios": {Created: 3}, "autoreplies": {Created: 2},
		}
		if got := counts(sum); !equalCounts(got, want) {
			t.Errorf("first apply: %+v", got)
		}
		sum = r.mustApply("ch1", full, setup.Options{})
		if sum.Changed() {
			t.Errorf("second apply changed something: %+v", sum.Changes)
		}
		if c := sum.Count(setup.KindScenarios); c.Unchanged != 3 {
			t.Errorf("second apply: %+v", c)
		}
		sc, err := r.svc.Scenarios.Get(ctx, db, "ch1", "welcome")
		if err != nil || sc.Version != 1 {
			t.Errorf("an unchanged scenario was saved again: version %d, %v", sc.Version, err)
		}

		first := r.export("ch1")
		for _, s := range []string{"area:osaka", "newcomer", "nurtured", "enabled: false", "sensitivity: special", "value: gold", "2027-01-01 09:30", "2026-11-01 10:00", "2026-12-01"} {
			if !strings.Contains(first, s) {
				t.Errorf("export lacks %q:\n%s", s, first)
			}
		}
		// What the export says is what the channel holds: applying it back changes nothing.
		if sum := r.mustApply("ch1", first, setup.Options{}); sum.Changed() {
			t.Errorf("applying the export to its own channel changed %+v", sum.Changes)
		}
		r.mustApply("ch2", first, setup.Options{})
		if second := r.export("ch2"); second != first {
			t.Errorf("export, apply to another channel, export differ:\n--- ch1\n%s\n--- ch2\n%s", first, second)
		}
	})
}

func equalCounts(a, b map[string]setup.Counts) bool {
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestInvalidFileChangesNothing(t *testing.T) {
	const bad = `
tags: [ok-tag, "two\nlines"]
fields:
  - {key: next_visit, label: 次回来店日, type: dat, purpose: リマインド}
  - {key: rank, label: ランク, type: text}
templates:
  fine: {messages: [{type: text, text: こんにちは}]}
  Bad_Key: {messages: [{type: text, text: x}]}
segments:
  ghosts: {filter: {tag: no-such-tag}}
  none: {name: 空}
scenarios:
  welcome:
    trigger: {type: follow}
    steps:
      - key: greet
        messages: [{type: text, text: ""}]
  remind:
    trigger: {type: manual}
    steps:
      - key: eve
        timing: {field: birthday, days: -1}
        messages: [{type: text, text: 明日です}]
        actions: {start: [nowhere]}
coupons:
  half: {title: 半額, code_policy: shared, valid_from: next week}
  typo: {title: "", code_policy: generated, valid_from: 2026-12-01}
  ok10: {title: OK, code_policy: generated, valid_from: 2026-12-01}
autoreplies:
  coupon:
    keywords: [クーポン]
    messages: [{type: text, text: "{{coupon.osaka10.code|-}} / {{coupon.ok10.code|-}}"}]
  broken:
    match: regex
    keywords: ["(unclosed"]
    messages: [{type: text, text: x}]
`
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		_, err := r.apply("ch1", bad, setup.Options{})
		var ps message.Problems
		if !errors.As(err, &ps) {
			t.Fatalf("want problems, got %v", err)
		}
		paths := map[string]bool{}
		for _, p := range ps {
			paths[p.Path] = true
			if p.JA == "" || p.EN == "" {
				t.Errorf("problem without both languages: %+v", p)
			}
		}
		for _, want := range []string{
			"tags[1]", "fields[0].type", "fields[1].purpose", "templates.Bad_Key", "segments.none.filter",
			"scenarios.welcome.steps[0].messages[0].text", "autoreplies.broken.keywords[0]",
			"segments.ghosts.filter.tag", "scenarios.remind.steps[0].timing.field", "scenarios.remind.steps[0].actions.start[0]",
			"coupons.half.valid_from", "coupons.half.shared_code", "coupons.typo.title", "autoreplies.coupon.messages",
		} {
			if !paths[want] {
				t.Errorf("no problem at %s; got:\n%s", want, ps.Error())
			}
		}
		if got := r.export("ch1"); got != "{}\n" {
			t.Errorf("an invalid file changed the channel:\n%s", got)
		}
	})
}

func TestUpdateAndPrune(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		r.mustApply("ch1", full, setup.Options{})
		edited := strings.NewReplacer(
			"label: ランク", "label: 会員ランク",
			"大阪店のセールです", "大阪店の冬のセールです",
			"trigger: {type: scenario}\n    enabled: false", "trigger: {type: scenario}",
			"priority: 10", "priority: 20",
		).Replace(full)
		sum := r.mustApply("ch1", edited, setup.Options{})
		for kind, want := range map[string]setup.Counts{
			"fields": {Updated: 1, Unchanged: 2}, "templates": {Updated: 1}, "scenarios": {Updated: 1, Unchanged: 2},
			"autoreplies": {Updated: 1, Unchanged: 1}, "segments": {Unchanged: 3}, "tags": {Unchanged: 2}, "coupons": {Unchanged: 2},
		} {
			if got := sum.Count(kind); got != want {
				t.Errorf("%s: %+v, want %+v", kind, got, want)
			}
		}
		if sc, err := r.svc.Scenarios.Get(ctx, db, "ch1", "survey"); err != nil || !sc.Enabled {
			t.Errorf("survey not enabled: %+v %v", sc.Enabled, err)
		}
		if tp, err := template.Get(ctx, db, "ch1", "osaka-sale"); err != nil || !strings.Contains(tp.Body.Messages[0].Text, "冬") {
			t.Errorf("template not updated: %+v %v", tp, err)
		}

		// A smaller file leaves the rest alone, unless --prune is given.
		const small = `
templates:
  osaka-sale: {messages: [{type: text, text: セール}]}
scenarios:
  visit:
    trigger: {type: field, field: next_visit}
    reentry: after_end
    steps:
      - key: eve
        timing: {field: next_visit, days: -1, at: "10:00"}
        messages: [{type: text, text: 明日お待ちしています}]
`
		if sum := r.mustApply("ch1", small, setup.Options{}); sum.Count(setup.KindScenarios).Deleted != 0 {
			t.Errorf("deleted without --prune: %+v", sum.Changes)
		}
		sum = r.mustApply("ch1", small, setup.Options{Prune: true})
		for kind, want := range map[string]setup.Counts{
			"scenarios": {Unchanged: 1, Deleted: 2}, "autoreplies": {Deleted: 2}, "segments": {Deleted: 3},
			"templates": {Unchanged: 1}, "fields": {}, "tags": {}, "coupons": {},
		} {
			if got := sum.Count(kind); got != want {
				t.Errorf("prune %s: %+v, want %+v", kind, got, want)
			}
		}
		f, err := setup.Export(ctx, db, r.svc, "ch1")
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Scenarios) != 1 || len(f.AutoReplies) != 0 || len(f.Segments) != 0 || len(f.Fields) != 3 || !slices.Contains(f.Tags, "vip") {
			t.Errorf("after prune: %d scenarios, %d auto-replies, %d segments, %d fields, tags %v",
				len(f.Scenarios), len(f.AutoReplies), len(f.Segments), len(f.Fields), f.Tags)
		}

		// With --prune, a scenario may only refer to scenarios in the file.
		_, err = r.apply("ch1", `
scenarios:
  a:
    trigger: {type: manual}
    steps: [{key: s, actions: {start: [visit]}}]
`, setup.Options{Prune: true})
		var ps message.Problems
		if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Path != "scenarios.a.steps[0].actions.start[0]" {
			t.Errorf("reference to a pruned scenario: %v", err)
		}
	})
}

func TestDryRunChangesNothing(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		sum := r.mustApply("ch1", full, setup.Options{DryRun: true})
		if !sum.DryRun || sum.Count(setup.KindScenarios).Created != 3 {
			t.Errorf("dry run summary: %+v", sum)
		}
		if got := r.export("ch1"); got != "{}\n" {
			t.Errorf("dry run changed the channel:\n%s", got)
		}
		r.mustApply("ch1", full, setup.Options{})
		before := r.export("ch1")
		sum = r.mustApply("ch1", "tags: [vip]\n", setup.Options{DryRun: true, Prune: true})
		if sum.Count(setup.KindScenarios).Deleted != 3 {
			t.Errorf("dry run with prune: %+v", sum.Count(setup.KindScenarios))
		}
		if after := r.export("ch1"); after != before {
			t.Errorf("dry run with prune changed the channel")
		}
	})
}

func TestApplyToUnknownChannel(t *testing.T) {
	db := testutil.NewSQLite(t)
	r := newRig(t, db)
	if _, err := r.apply("nope", full, setup.Options{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown channel: %v", err)
	}
}

func TestParse(t *testing.T) {
	for _, src := range []string{
		"scenario: {}\n", // misspelt top-level key
		"scenarios:\n  a:\n    trigger: {type: follow}\n    stpes: []\n", // misspelt inside a definition
		"templates:\n  a: {messages: [{type: text, txt: x}]}\n",          // misspelt inside a message
		"segments:\n  a: {filter: {tags: vip}}\n",                        // misspelt inside a filter
		"segments:\n  a: {}\n  a: {}\n",                                  // a key twice
		"segments:\n  a: {filter: [vip]}\n",                              // not a mapping
		"tags: [\n",
	} {
		_, err := setup.Parse([]byte(src))
		var ps message.Problems
		if !errors.As(err, &ps) || len(ps) != 1 || !strings.Contains(ps[0].EN, "cannot read") || ps[0].JA == "" {
			t.Errorf("Parse(%q) = %v", src, err)
		}
	}
	// A filter's values are taken as written: 007 is a member code, not the number 7.
	f, err := setup.Parse([]byte("segments:\n  a: {filter: {field: {key: code, op: eq, value: 007}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Segments["a"].Filter.Field.Value; got != "007" {
		t.Errorf("value: %q", got)
	}
	if f, err := setup.Parse(nil); err != nil || f == nil {
		t.Errorf("empty file: %v", err)
	}
}

func TestSavedSegmentNamesScenarioOfSameFile(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		r.mustApply("ch1", full, setup.Options{})
		s, err := segment.GetSegment(ctx, db, "ch1", "greeted")
		if err != nil || s.Filter.All[0].Scenario.Key != "welcome" {
			t.Fatalf("greeted: %+v %v", s, err)
		}
		if _, err := segment.Resolve(ctx, db, "ch1", s.Filter); err != nil {
			t.Errorf("saved segment does not resolve: %v", err)
		}
	})
}
