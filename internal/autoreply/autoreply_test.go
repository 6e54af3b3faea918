package autoreply_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/autoreply"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/ingest"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/metrics"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

const ch = "chtest"

var tokyo = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		panic(err)
	}
	return loc
}()

// syncBuffer collects log output from any goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type fixture struct {
	db      *store.DB
	clk     *clock.Fake
	svc     *autoreply.Service
	friends *friend.Service
	proc    *ingest.Processor
	logs    *syncBuffer
	seq     int
}

func newFixture(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	// Monday 2026-11-23, 10:00 in Tokyo.
	clk := clock.NewFake(time.Date(2026, 11, 23, 10, 0, 0, 0, tokyo))
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if _, err := db.ExecContext(context.Background(), `INSERT INTO channels (id, name, secret_enc, token_enc, created_at) VALUES (?, 'Test', ?, ?, 0)`,
		ch, []byte{1}, []byte{1}); err != nil {
		t.Fatal(err)
	}
	friends := friend.NewService(db, clk, nil, logger, testutil.SearchKey)
	deliveries := delivery.New(db, clk, nil, logger, delivery.Config{})
	svc := autoreply.New(db, clk, friends, deliveries, logger)
	proc := ingest.NewProcessor(db, clk, metrics.New(), logger)
	friends.Register(proc) // first: it records the friend the auto-reply looks up
	svc.Register(proc)
	return &fixture{db: db, clk: clk, svc: svc, friends: friends, proc: proc, logs: logs}
}

func textTemplate(s string) message.Template {
	return message.Template{Messages: []message.Message{{Type: "text", Text: s}}}
}

// rule is a valid, enabled rule answering with its own key.
func rule(key, match string, keywords ...string) autoreply.Rule {
	return autoreply.Rule{ChannelID: ch, Key: key, Name: key, Match: match, Keywords: keywords,
		Template: textTemplate("reply " + key), Enabled: true}
}

func (f *fixture) save(t *testing.T, r autoreply.Rule) autoreply.Rule {
	t.Helper()
	saved, err := f.svc.Save(context.Background(), f.db, r)
	if err != nil {
		t.Fatalf("save %s: %v", r.Key, err)
	}
	return saved
}

func TestMatch(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		withPriority := func(r autoreply.Rule, p int) autoreply.Rule { r.Priority = p; return r }
		withWindow := func(r autoreply.Rule, from, to string, days ...string) autoreply.Rule {
			r.Window = &autoreply.Window{From: from, To: to, Days: days}
			return r
		}
		disabled := rule("off", autoreply.MatchExact, "disabled")
		disabled.Enabled = false
		for _, r := range []autoreply.Rule{
			rule("hours", autoreply.MatchExact, "営業時間", "Hours"),
			rule("menu", autoreply.MatchContains, "メニュー", "ＭＥＮＵ"),
			rule("kana", autoreply.MatchExact, "ｶﾀｶﾅ"),
			rule("reserve", autoreply.MatchRegex, `^予約\s*\d+名$`),
			withWindow(withPriority(rule("closed", autoreply.MatchContains, "予約"), 10), "21:00", "09:00"),
			withPriority(rule("coupon-low", autoreply.MatchContains, "coupon"), 1),
			withPriority(rule("coupon-high", autoreply.MatchContains, "coupon"), 5),
			rule("tie-a", autoreply.MatchContains, "tie"),
			rule("tie-b", autoreply.MatchContains, "tie"),
			disabled,
			withWindow(rule("weekday", autoreply.MatchExact, "weekday"), "09:00", "18:00", "mon", "tue", "wed", "thu", "fri"),
			withWindow(rule("friday-night", autoreply.MatchExact, "friday night"), "21:00", "09:00", "fri"),
			withWindow(rule("late", autoreply.MatchExact, "late"), "21:00", "09:00"),
		} {
			f.save(t, r)
		}
		mon10 := time.Date(2026, 11, 23, 10, 0, 0, 0, tokyo)
		at := func(day, hour, minute int) time.Time { return time.Date(2026, 11, day, hour, minute, 0, 0, tokyo) }
		cases := []struct {
			name, text string
			now        time.Time
			want       string // "" for no match
		}{
			{"exact", "営業時間", mon10, "hours"},
			{"exact is case-folded", "HOURS", mon10, "hours"},
			{"exact across widths", "Ｈｏｕｒｓ", mon10, "hours"},
			{"exact trims full-width space", "　hours \n", mon10, "hours"},
			{"exact is not contains", "hours please", mon10, ""},
			{"half-width kana keyword", "カタカナ", mon10, "kana"},
			{"contains", "今日のメニューは？", mon10, "menu"},
			{"contains full-width keyword", "what's on the menu today", mon10, "menu"},
			{"regex on normalised text", "予約　３名", mon10, "reserve"},
			{"regex is searched, anchors respected", "予約 3名 です", mon10, ""},
			{"night window wins by priority", "予約 3名", at(23, 22, 0), "closed"},
			{"night window after midnight", "予約 3名", at(24, 8, 59), "closed"},
			{"night window ends at to", "予約 3名", at(24, 9, 0), "reserve"},
			{"higher priority wins", "coupon please", mon10, "coupon-high"},
			{"equal priority: older wins", "tie", mon10, "tie-a"},
			{"disabled rule", "disabled", mon10, ""},
			{"weekday window open", "weekday", at(23, 9, 0), "weekday"},
			{"weekday window end excluded", "weekday", at(23, 18, 0), ""},
			{"weekday window on saturday", "weekday", at(28, 12, 0), ""},
			{"friday night on friday", "friday night", at(27, 22, 0), "friday-night"},
			{"friday night into saturday", "friday night", at(28, 2, 0), "friday-night"},
			{"friday morning belongs to thursday", "friday night", at(27, 8, 0), ""},
			{"saturday night", "friday night", at(28, 22, 0), ""},
			{"wrap every day before midnight", "late", at(25, 23, 59), "late"},
			{"wrap every day after midnight", "late", at(25, 0, 30), "late"},
			{"wrap every day at noon", "late", at(25, 12, 0), ""},
			{"window in the channel's zone, whatever now's zone", "late", at(25, 21, 0).UTC(), "late"},
			{"nothing matches", "hello", mon10, ""},
			{"empty text", "", mon10, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r, ok, err := f.svc.Match(context.Background(), ch, c.text, c.now)
				if err != nil {
					t.Fatal(err)
				}
				got := ""
				if ok {
					got = r.Key
					if r.Template.Messages[0].Text != "reply "+r.Key {
						t.Errorf("matched rule read back incompletely: %+v", r)
					}
				}
				if got != c.want {
					t.Errorf("Match(%q at %s) = %q, want %q", c.text, c.now.In(tokyo).Format("Mon 15:04"), got, c.want)
				}
			})
		}

		// The window follows the channel's time zone: 21:00 in Tokyo is noon in UTC.
		if _, err := db.ExecContext(context.Background(), "UPDATE channels SET time_zone = 'UTC' WHERE id = ?", ch); err != nil {
			t.Fatal(err)
		}
		if r, ok, err := f.svc.Match(context.Background(), ch, "late", at(25, 21, 0)); err != nil || ok {
			t.Errorf("in UTC, 12:00 matched %q (err %v)", r.Key, err)
		}
		if _, ok, _ := f.svc.Match(context.Background(), "other-channel", "hours", mon10); ok {
			t.Error("a rule answered another channel")
		}
	})
}

func TestValidate(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		if err := f.svc.Validate(rule("ok", autoreply.MatchExact, "a")); err != nil {
			t.Fatalf("valid rule: %v", err)
		}
		tooMany := make([]string, autoreply.MaxKeywords+1)
		for i := range tooMany {
			tooMany[i] = fmt.Sprint("k", i)
		}
		cases := []struct {
			name   string
			change func(r *autoreply.Rule)
			path   string
			en     string // part of the English text
		}{
			{"no channel", func(r *autoreply.Rule) { r.ChannelID = "" }, "channel_id", "channel"},
			{"bad key", func(r *autoreply.Rule) { r.Key = "Opening Hours" }, "key", "1 to 64 of a-z, 0-9, _ and -"},
			{"long key", func(r *autoreply.Rule) { r.Key = strings.Repeat("a", 65) }, "key", "1 to 64"},
			{"name on two lines", func(r *autoreply.Rule) { r.Name = "a\nb" }, "name", "one line"},
			{"unknown match", func(r *autoreply.Rule) { r.Match = "prefix" }, "match", "exact, contains or regex"},
			{"no keywords", func(r *autoreply.Rule) { r.Keywords = nil }, "keywords", "at least one keyword"},
			{"too many keywords", func(r *autoreply.Rule) { r.Keywords = tooMany }, "keywords", "at most 20 keywords"},
			{"blank keyword", func(r *autoreply.Rule) { r.Keywords = []string{"a", "　 "} }, "keywords[1]", "empty"},
			{"long keyword", func(r *autoreply.Rule) { r.Keywords = []string{strings.Repeat("あ", 101)} }, "keywords[0]", "at most 100 characters"},
			{"long pattern", func(r *autoreply.Rule) {
				r.Match, r.Keywords = autoreply.MatchRegex, []string{strings.Repeat("a", 201)}
			}, "keywords[0]", "at most 200 characters"},
			{"bad pattern", func(r *autoreply.Rule) {
				r.Match, r.Keywords = autoreply.MatchRegex, []string{"(予約"}
			}, "keywords[0]", "not a valid regular expression (missing closing ): (予約)"},
			{"backreference", func(r *autoreply.Rule) {
				r.Match, r.Keywords = autoreply.MatchRegex, []string{`(a)\1`}
			}, "keywords[0]", "not a valid regular expression"},
			{"bad day", func(r *autoreply.Rule) {
				r.Window = &autoreply.Window{Days: []string{"Mon"}, From: "09:00", To: "18:00"}
			},
				"window.days[0]", "mon, tue"},
			{"bad from", func(r *autoreply.Rule) { r.Window = &autoreply.Window{From: "9:00", To: "18:00"} }, "window.from", "HH:MM"},
			{"bad to", func(r *autoreply.Rule) { r.Window = &autoreply.Window{From: "09:00", To: "24:00"} }, "window.to", "HH:MM"},
			{"empty window", func(r *autoreply.Rule) { r.Window = &autoreply.Window{From: "09:00", To: "09:00"} }, "window.to", "the same"},
			{"no messages", func(r *autoreply.Rule) { r.Template = message.Template{} }, "template.messages", "no messages"},
			{"bad message", func(r *autoreply.Rule) { r.Template = textTemplate("") }, "template.messages[0].text", ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := rule("ok", autoreply.MatchExact, "a")
				c.change(&r)
				err := f.svc.Validate(r)
				var ps message.Problems
				if !errors.As(err, &ps) {
					t.Fatalf("Validate = %v, want message.Problems", err)
				}
				found := false
				for _, p := range ps {
					if p.JA == "" || p.EN == "" {
						t.Errorf("problem without both languages: %+v", p)
					}
					if p.Path == c.path && strings.Contains(p.EN, c.en) {
						found = true
					}
				}
				if !found {
					t.Errorf("problems %v lack %s: %q", ps, c.path, c.en)
				}
				if _, err := f.svc.Save(context.Background(), db, r); !errors.As(err, &ps) {
					t.Errorf("Save of an invalid rule = %v", err)
				}
			})
		}
		if rules, err := f.svc.List(context.Background(), ch); err != nil || len(rules) != 0 {
			t.Fatalf("invalid rules were saved: %d (%v)", len(rules), err)
		}
	})
}

func TestSaveUpdatesByKey(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		first := f.save(t, rule("hours", autoreply.MatchExact, "hours"))
		if first.ID == 0 || !first.Enabled || first.CreatedAt.IsZero() {
			t.Fatalf("created %+v", first)
		}
		if _, err := db.ExecContext(ctx, "UPDATE autoreplies SET hits = 3 WHERE id = ?", first.ID); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Minute)
		upd := rule("hours", autoreply.MatchContains, "営業", "open")
		upd.Name, upd.Priority, upd.Enabled = "Opening hours", 7, false
		upd.Window = &autoreply.Window{Days: []string{"sat", "sun"}, From: "10:00", To: "17:00"}
		second := f.save(t, upd)
		if second.ID != first.ID || !second.CreatedAt.Equal(first.CreatedAt) || !second.UpdatedAt.After(first.UpdatedAt) {
			t.Fatalf("update did not keep the rule's identity: %+v then %+v", first, second)
		}
		if second.Hits != 3 {
			t.Errorf("update reset the hit counter to %d", second.Hits)
		}
		if second.Name != "Opening hours" || second.Match != autoreply.MatchContains || second.Priority != 7 || second.Enabled ||
			strings.Join(second.Keywords, "|") != "営業|open" || second.Window == nil ||
			strings.Join(second.Window.Days, ",") != "sat,sun" || second.Window.From != "10:00" || second.Window.To != "17:00" {
			t.Errorf("update not stored: %+v (window %+v)", second, second.Window)
		}
		got, err := f.svc.Get(ctx, ch, "hours")
		if err != nil || got.ID != first.ID {
			t.Fatalf("Get = %+v, %v", got, err)
		}

		f.save(t, rule("menu", autoreply.MatchExact, "menu"))
		rules, err := f.svc.List(ctx, ch)
		if err != nil || len(rules) != 2 || rules[0].Key != "hours" || rules[1].Key != "menu" {
			t.Fatalf("List = %+v, %v; want hours (priority 7) then menu", rules, err)
		}
		if err := f.svc.Delete(ctx, db, ch, "hours"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Get(ctx, ch, "hours"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get after Delete = %v", err)
		}
		if err := f.svc.Delete(ctx, db, ch, "hours"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second Delete = %v", err)
		}
	})
}

func TestRulesPerChannelAreCapped(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		err := db.WriteTx(ctx, func(tx *store.Tx) error {
			for i := range autoreply.MaxRules {
				if _, err := f.svc.Save(ctx, tx, rule(fmt.Sprint("r", i), autoreply.MatchExact, "k")); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var ps message.Problems
		if _, err := f.svc.Save(ctx, db, rule("one-too-many", autoreply.MatchExact, "k")); !errors.As(err, &ps) {
			t.Fatalf("rule %d was saved: %v", autoreply.MaxRules+1, err)
		}
		if _, err := f.svc.Save(ctx, db, rule("r0", autoreply.MatchExact, "changed")); err != nil {
			t.Fatalf("updating a rule at the cap: %v", err)
		}
	})
}
