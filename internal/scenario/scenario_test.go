package scenario_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

var ctx = context.Background()

// save parses a YAML definition and saves it, enabled.
func save(t *testing.T, h *servertest.Harness, key, src string) scenario.Scenario {
	t.Helper()
	def, err := scenario.ParseDefinition([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var sc scenario.Scenario
	err = h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		sc, err = h.Srv.Scenarios.Save(ctx, tx, scenario.Scenario{ChannelID: h.Ch, Key: key, Definition: def, Enabled: true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// settle runs every due step now and waits until the outbox has handed everything to
// LINE.
func settle(t *testing.T, h *servertest.Harness) {
	t.Helper()
	h.Eventually("due steps to run and the outbox to drain", func() bool {
		if _, err := h.Srv.Scenarios.RunDue(ctx); err != nil {
			t.Fatal(err)
		}
		var due int
		if err := h.Srv.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM enrollments WHERE state = 'active' AND due_at <= ?",
			store.Millis(h.Clk.Now())).Scan(&due); err != nil {
			t.Fatal(err)
		}
		h.Srv.Delivery.Notify()
		c, err := h.Srv.Delivery.Counts(ctx, h.Ch)
		if err != nil {
			t.Fatal(err)
		}
		return due == 0 && c[delivery.Pending] == 0 && c[delivery.Sending] == 0
	})
}

// advance moves the server's clock and lets what became due run.
func advance(t *testing.T, h *servertest.Harness, d time.Duration) {
	t.Helper()
	h.Clk.Advance(d)
	settle(t, h)
}

// received lists what a user got from the account, as "via: text".
func received(t *testing.T, h *servertest.Harness, u string) []string {
	t.Helper()
	rs, err := h.Emu.ReceivedBy(h.Ch, u)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		for _, m := range r.Messages {
			var msg struct{ Text string }
			if err := json.Unmarshal(m, &msg); err != nil {
				t.Fatal(err)
			}
			out = append(out, r.Via+": "+msg.Text)
		}
	}
	return out
}

func expectReceived(t *testing.T, h *servertest.Harness, u string, want ...string) {
	t.Helper()
	if got := received(t, h, u); !slices.Equal(got, want) {
		t.Fatalf("received:\n got  %q\n want %q", got, want)
	}
}

func expectTexts(t *testing.T, h *servertest.Harness, u string, want ...string) {
	t.Helper()
	var got []string
	for _, r := range received(t, h, u) {
		_, text, _ := strings.Cut(r, ": ")
		got = append(got, text)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("received:\n got  %q\n want %q", got, want)
	}
}

func follow(t *testing.T, h *servertest.Harness, name string) (string, int64) {
	t.Helper()
	u := h.User(name)
	h.OK(h.Emu.Follow(ctx, h.Ch, u))
	h.Eventually("the friend", func() bool { return h.Friend(u).ID != 0 })
	return u, h.Friend(u).ID
}

func enrolment(t *testing.T, h *servertest.Harness, friendID int64, key string) scenario.Enrolment {
	t.Helper()
	es, err := h.Srv.Scenarios.Enrolments(ctx, h.Srv.DB, friendID)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.ScenarioKey == key {
			return e
		}
	}
	return scenario.Enrolment{}
}

func tag(t *testing.T, h *servertest.Harness, friendID int64, name string) {
	t.Helper()
	err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		tg, err := h.Srv.Friends.CreateTag(ctx, tx, h.Ch, name)
		if err != nil {
			return err
		}
		_, err = h.Srv.Friends.AddTag(ctx, tx, friendID, tg.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func setField(t *testing.T, h *servertest.Harness, friendID int64, key, value string) {
	t.Helper()
	err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		f, err := h.Srv.Friends.FieldByKey(ctx, tx, h.Ch, key)
		if err != nil {
			return err
		}
		_, err = h.Srv.Friends.SetField(ctx, tx, friendID, f, value)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func defineField(t *testing.T, h *servertest.Harness, key string, typ friend.FieldType) {
	t.Helper()
	if _, err := h.Srv.Friends.DefineField(ctx, h.Srv.DB, friend.Field{ChannelID: h.Ch, Key: key, Label: key, Type: typ,
		Purpose: "test", Sensitivity: friend.Normal}); err != nil {
		t.Fatal(err)
	}
}

// Seed use case 1: greet a new friend right after they add the account, by reply (free
// of the monthly quota), with their name; the next step follows a day later by push.
func TestGreetingOnFollowByReply(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		save(t, h, "welcome", `
name: 友だち追加の挨拶
trigger: {type: follow}
steps:
  - key: greet
    messages:
      - {type: text, text: "{{display_name|お客様}}さん、友だち追加ありがとうございます！"}
  - key: next-day
    timing: {after: 1d}
    messages:
      - {type: text, text: "昨日はありがとうございました"}
`)
		u, id := follow(t, h, "山田")
		h.Eventually("the greeting", func() bool { return len(received(t, h, u)) == 1 })
		settle(t, h)
		expectReceived(t, h, u, "reply: 山田さん、友だち追加ありがとうございます！")
		recs, err := h.Srv.Delivery.ForFriend(ctx, id, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].Method != delivery.MethodReply || recs[0].Source != "scenario" || recs[0].SourceRef != "greet" {
			t.Fatalf("delivery record: %+v", recs)
		}

		advance(t, h, 23*time.Hour)
		expectReceived(t, h, u, "reply: 山田さん、友だち追加ありがとうございます！")
		advance(t, h, time.Hour)
		expectReceived(t, h, u, "reply: 山田さん、友だち追加ありがとうございます！", "push: 昨日はありがとうございました")
		if e := enrolment(t, h, id, "welcome"); e.State != scenario.Completed || e.LastStep != "next-day" {
			t.Fatalf("enrolment after the last step: %+v", e)
		}
	})
}

// Seed use case 3: a reminder after a set period, postponed out of the quiet hours.
func TestReminderHonoursQuietHours(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		// The clock is 10:00 UTC = 19:00 in Tokyo.
		if _, err := h.Srv.DB.ExecContext(ctx, "UPDATE channels SET quiet_hours = '21:00-09:00' WHERE id = ?", h.Ch); err != nil {
			t.Fatal(err)
		}
		save(t, h, "trial", `
trigger: {type: tag, tag: trial}
steps:
  - key: thanks
    messages: [{type: text, text: 体験のお申し込みありがとうございます}]
  - key: remind
    timing: {after: 10h}
    messages: [{type: text, text: ご来店をお待ちしています}]
`)
		u, id := follow(t, h, "佐藤")
		tag(t, h, id, "trial")
		settle(t, h)
		expectReceived(t, h, u, "push: 体験のお申し込みありがとうございます")

		// Ten hours later it is 05:00 in Tokyo: quiet until 09:00.
		advance(t, h, 10*time.Hour)
		expectReceived(t, h, u, "push: 体験のお申し込みありがとうございます")
		e := enrolment(t, h, id, "trial")
		if want := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC); !e.DueAt.Equal(want) {
			t.Fatalf("reminder due %v, want %v (09:00 in Tokyo)", e.DueAt.UTC(), want)
		}
		advance(t, h, 4*time.Hour-time.Minute)
		expectReceived(t, h, u, "push: 体験のお申し込みありがとうございます")
		advance(t, h, time.Minute)
		expectReceived(t, h, u, "push: 体験のお申し込みありがとうございます", "push: ご来店をお待ちしています")
	})
}

// A friend who blocks mid-scenario receives nothing more; following again resumes where
// they left, with delays counted from the return.
func TestBlockStopsAndRefollowResumes(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		save(t, h, "course", `
trigger: {type: follow, refollow: resume}
steps:
  - key: one
    messages: [{type: text, text: "1"}]
  - key: two
    timing: {after: 1h}
    messages: [{type: text, text: "2"}]
  - key: three
    timing: {after: 1h}
    messages: [{type: text, text: "3"}]
`)
		u, id := follow(t, h, "鈴木")
		h.Eventually("step one", func() bool { return len(received(t, h, u)) == 1 })
		advance(t, h, time.Hour)
		expectReceived(t, h, u, "reply: 1", "push: 2")

		h.OK(h.Emu.Block(ctx, h.Ch, u))
		h.Eventually("the run to stop", func() bool { return enrolment(t, h, id, "course").State == scenario.Stopped })
		advance(t, h, 5*time.Hour)
		expectReceived(t, h, u, "reply: 1", "push: 2")
		if e := enrolment(t, h, id, "course"); e.StopReason != scenario.StopBlocked || e.NextStep != "three" {
			t.Fatalf("after the block: %+v", e)
		}

		h.OK(h.Emu.Follow(ctx, h.Ch, u))
		h.Eventually("the run to resume", func() bool { return enrolment(t, h, id, "course").State == scenario.Active })
		settle(t, h)
		expectReceived(t, h, u, "reply: 1", "push: 2")
		advance(t, h, time.Hour)
		expectReceived(t, h, u, "reply: 1", "push: 2", "push: 3")
	})
}

// Seed use case 3 with each friend's own date: a reminder the day before the booking in
// next_visit, which follows the booking when it moves.
func TestReminderRelativeToFieldFollowsTheDate(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		defineField(t, h, "next_visit", friend.DateField)
		save(t, h, "visit", `
trigger: {type: field, field: next_visit}
steps:
  - key: day-before
    timing: {field: next_visit, days: -1, at: "10:00"}
    messages: [{type: text, text: "明日 {{field.next_visit}} のご来店をお待ちしています"}]
`)
		u, id := follow(t, h, "高橋")
		setField(t, h, id, "next_visit", "2026-11-26")
		settle(t, h)
		if e := enrolment(t, h, id, "visit"); !e.DueAt.Equal(time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)) {
			t.Fatalf("due %v, want 2026-11-25 10:00 in Tokyo", e.DueAt.UTC())
		}
		setField(t, h, id, "next_visit", "2026-11-28")
		advance(t, h, 40*time.Hour) // 2026-11-25 02:00 UTC
		expectReceived(t, h, u)
		h.Clk.Set(time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC))
		settle(t, h)
		expectReceived(t, h, u, "push: 明日 2026-11-28 のご来店をお待ちしています")
	})
}

// Conditions skip a step for friends they do not hold for; actions change tags and
// fields; a tag named in a stop rule ends the run, and the tag starts another scenario.
func TestConditionsActionsAndStopRules(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		defineField(t, h, "rank", friend.TextField)
		save(t, h, "thanks", `
trigger: {type: tag, tag: purchased}
steps:
  - key: thank
    messages: [{type: text, text: ご購入ありがとうございます}]
    actions: {add_tags: [customer], set_fields: {rank: gold}}
`)
		save(t, h, "nurture", `
trigger: {type: manual}
stop: {tags: [purchased]}
steps:
  - key: a
    messages: [{type: text, text: a}]
  - key: vip
    timing: {after: 1h}
    if: {tag: vip}
    messages: [{type: text, text: VIP限定}]
  - key: c
    timing: {after: 1h}
    messages: [{type: text, text: c}]
`)
		x, xid := follow(t, h, "X")
		y, yid := follow(t, h, "Y")
		tag(t, h, xid, "vip")
		err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
			for _, id := range []int64{xid, yid} {
				if ok, err := h.Srv.Scenarios.Start(ctx, tx, h.Ch, id, "nurture"); err != nil || !ok {
					return fmt.Errorf("start: %v %v", ok, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		settle(t, h)
		advance(t, h, time.Hour)
		// (Step a goes by multicast when both runs are in one batch, by push when two
		// runners each took one: only the texts are compared.)
		expectTexts(t, h, x, "a", "VIP限定")
		expectTexts(t, h, y, "a")

		tag(t, h, xid, "purchased")
		settle(t, h)
		advance(t, h, time.Hour)
		expectTexts(t, h, x, "a", "VIP限定", "ご購入ありがとうございます")
		expectTexts(t, h, y, "a", "c")
		if e := enrolment(t, h, xid, "nurture"); e.State != scenario.Stopped || e.StopReason != "tag:purchased" {
			t.Fatalf("nurture for X: %+v", e)
		}
		tags, err := h.Srv.Friends.FriendTags(ctx, h.Srv.DB, xid)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tg := range tags {
			names = append(names, tg.Name)
		}
		if !slices.Equal(names, []string{"customer", "purchased", "vip"}) {
			t.Fatalf("tags of X: %v", names)
		}
		if vals, _ := h.Srv.Friends.FieldValues(ctx, h.Srv.DB, xid); vals["rank"] != "gold" {
			t.Fatalf("fields of X: %v", vals)
		}
		// Once only: a second start does nothing.
		if ok, err := h.Srv.Scenarios.Start(ctx, h.Srv.DB, h.Ch, yid, "nurture"); err != nil || ok {
			t.Fatalf("second start of a once-only scenario: %v %v", ok, err)
		}
	})
}

// Editing a running scenario neither repeats nor skips a step for friends in it: a
// friend waiting for a deleted step goes on with the step after the last they received;
// a step inserted before their position is not sent to them.
func TestEditingARunningScenario(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		save(t, h, "edit", `
trigger: {type: manual}
steps:
  - {key: a, messages: [{type: text, text: a}]}
  - {key: b, timing: {after: 1h}, messages: [{type: text, text: b}]}
  - {key: c, timing: {after: 2h}, messages: [{type: text, text: c}]}
`)
		u, id := follow(t, h, "編集")
		if _, err := h.Srv.Scenarios.Start(ctx, h.Srv.DB, h.Ch, id, "edit"); err != nil {
			t.Fatal(err)
		}
		settle(t, h)
		save(t, h, "edit", `
trigger: {type: manual}
steps:
  - {key: x, messages: [{type: text, text: x}]}
  - {key: a, messages: [{type: text, text: a}]}
  - {key: c, timing: {after: 2h}, messages: [{type: text, text: c (edited)}]}
  - {key: d, timing: {after: 1h}, messages: [{type: text, text: d}]}
`)
		advance(t, h, time.Hour)
		expectReceived(t, h, u, "push: a")
		advance(t, h, time.Hour)
		expectReceived(t, h, u, "push: a", "push: c (edited)")
		advance(t, h, time.Hour)
		expectReceived(t, h, u, "push: a", "push: c (edited)", "push: d")
	})
}

// A keyword (compared after width and case folding) and a postback start scenarios, and
// their first step answers by reply.
func TestKeywordAndPostbackTriggers(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		save(t, h, "coupon-word", `
trigger: {type: keyword, value: クーポン}
reentry: after_end
steps:
  - {key: send, messages: [{type: text, text: クーポンはこちら}]}
`)
		save(t, h, "reserve", `
trigger: {type: postback, value: "action=reserve"}
steps:
  - {key: ask, messages: [{type: text, text: ご希望の日時を教えてください}]}
`)
		u, _ := follow(t, h, "K")
		h.OK(h.Emu.SendText(ctx, h.Ch, u, "ｸｰﾎﾟﾝ"))
		h.Eventually("the keyword answer", func() bool { return len(received(t, h, u)) == 1 })
		h.OK(h.Emu.SendText(ctx, h.Ch, u, "クーポンください")) // exact match only
		h.OK(h.Emu.Postback(ctx, h.Ch, u, "action=reserve"))
		h.Eventually("the postback answer", func() bool { return len(received(t, h, u)) == 2 })
		h.OK(h.Emu.SendText(ctx, h.Ch, u, "クーポン")) // re-entry after the end
		h.Eventually("the second keyword answer", func() bool { return len(received(t, h, u)) == 3 })
		settle(t, h)
		expectReceived(t, h, u, "reply: クーポンはこちら", "reply: ご希望の日時を教えてください", "reply: クーポンはこちら")
	})
}

func TestDefinitionProblemsSayWhatToFix(t *testing.T) {
	cases := []struct{ name, src, path string }{
		{"no steps", `trigger: {type: follow}`, "steps"},
		{"unknown trigger", "trigger: {type: birthday}\nsteps: [{key: a, messages: [{type: text, text: x}]}]", "trigger.type"},
		{"duplicate key", "trigger: {type: manual}\nsteps: [{key: a, messages: [{type: text, text: x}]}, {key: a, messages: [{type: text, text: y}]}]", "steps[1].key"},
		{"two timings", "trigger: {type: manual}\nsteps: [{key: a, timing: {after: 1h, day: 1, at: '10:00'}, messages: [{type: text, text: x}]}]", "steps[0].timing"},
		{"bad clock", "trigger: {type: manual}\nsteps: [{key: a, timing: {day: 1, at: '25:00'}, messages: [{type: text, text: x}]}]", "steps[0].timing.at"},
		{"empty step", "trigger: {type: manual}\nsteps: [{key: a}]", "steps[0]"},
		{"message too long", "trigger: {type: manual}\nsteps: [{key: a, messages: [{type: text, text: '" + strings.Repeat("あ", 5001) + "'}]}]", "steps[0].messages[0].text"},
		{"quiet hours", "trigger: {type: manual}\nquiet_hours: '9-5'\nsteps: [{key: a, messages: [{type: text, text: x}]}]", "quiet_hours"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := scenario.ParseDefinition([]byte(c.src))
			if err != nil {
				t.Fatal(err)
			}
			ps := d.Validate()
			if len(ps) == 0 {
				t.Fatal("valid")
			}
			found := false
			for _, p := range ps {
				if p.JA == "" || p.EN == "" {
					t.Errorf("problem without both languages: %+v", p)
				}
				found = found || p.Path == c.path
			}
			if !found {
				t.Fatalf("no problem at %s: %v", c.path, ps)
			}
		})
	}
	if _, err := scenario.ParseDefinition([]byte("trigger: {type: manual}\nstpes: []")); err == nil {
		t.Fatal("a misspelt key was accepted")
	}
}

func TestSaveChecksReferences(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		defineField(t, h, "memo", friend.TextField)
		def, err := scenario.ParseDefinition([]byte(`
trigger: {type: manual}
steps:
  - {key: a, timing: {field: memo}, messages: [{type: text, text: x}]}
  - {key: b, actions: {start: [missing], set_fields: {nope: 1}}}
  - {key: c, messages: [{type: text, text: "クーポン: {{coupon.nope.code|}}"}]}
`))
		if err != nil {
			t.Fatal(err)
		}
		err = h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
			_, err := h.Srv.Scenarios.Save(ctx, tx, scenario.Scenario{ChannelID: h.Ch, Key: "refs", Definition: def, Enabled: true})
			return err
		})
		var ps scenario.Problems
		if !errors.Is(err, scenario.ErrInvalid) || !errors.As(err, &ps) {
			t.Fatalf("save: %v", err)
		}
		got := fmt.Sprint(ps)
		for _, want := range []string{"steps[0].timing.field", "steps[1].actions.set_fields.nope", "no scenario missing", "steps[2].messages"} {
			if !strings.Contains(got, want) {
				t.Errorf("problems %s lack %q", got, want)
			}
		}
		if _, err := h.Srv.Scenarios.Get(ctx, h.Srv.DB, h.Ch, "refs"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("an invalid scenario was kept: %v", err)
		}
	})
}

// A step whose own action stops its run (it adds a stop tag) still sends its messages,
// and nothing after it; the messages see the field it sets.
func TestStepThatStopsItsOwnRun(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		defineField(t, h, "rank", friend.TextField)
		save(t, h, "last", `
trigger: {type: manual}
stop: {tags: [done]}
steps:
  - key: final
    actions: {add_tags: [done], set_fields: {rank: gold}}
    messages: [{type: text, text: "最後のご案内（{{field.rank|なし}}会員）"}]
  - {key: never, timing: {after: 1h}, messages: [{type: text, text: never}]}
`)
		u, id := follow(t, h, "S")
		if _, err := h.Srv.Scenarios.Start(ctx, h.Srv.DB, h.Ch, id, "last"); err != nil {
			t.Fatal(err)
		}
		settle(t, h)
		advance(t, h, 2*time.Hour)
		expectReceived(t, h, u, "push: 最後のご案内（gold会員）")
		if e := enrolment(t, h, id, "last"); e.State != scenario.Stopped || e.StopReason != "tag:done" || e.LastStep != "final" {
			t.Fatalf("enrolment: %+v", e)
		}
	})
}

// What a run queued and LINE has not been handed yet is cancelled when the run stops or
// its scenario is deleted; another friend's deliveries from the same scenario stay. (A
// personalised step's deliveries wait as pending until the dispatcher claims them; here
// they are due later, so that none is claimed meanwhile.)
func TestStoppingARunCancelsWhatItQueued(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		save(t, h, "course", `
trigger: {type: manual}
steps:
  - {key: one, timing: {after: 1h}, messages: [{type: text, text: later}]}
`)
		ua, a := follow(t, h, "A")
		ub, b := follow(t, h, "B")
		queue := func(user string, friendID int64) int64 {
			t.Helper()
			if _, err := h.Srv.Scenarios.Start(ctx, h.Srv.DB, h.Ch, friendID, "course"); err != nil {
				t.Fatal(err)
			}
			var id int64
			err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
				var err error
				id, err = h.Srv.Delivery.Enqueue(ctx, tx, delivery.Item{ChannelID: h.Ch, FriendID: friendID, LineUserID: user,
					Source: "scenario", SourceID: enrolment(t, h, friendID, "course").ID, SourceRef: "one",
					Messages: []json.RawMessage{json.RawMessage(`{"type":"text","text":"later"}`)}, DueAt: h.Clk.Now().Add(time.Hour)})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		da, db := queue(ua, a), queue(ub, b)
		state := func(id int64) string {
			t.Helper()
			rec, err := h.Srv.Delivery.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return rec.State + " " + rec.LastError
		}

		if err := h.Srv.Scenarios.Stop(ctx, h.Srv.DB, h.Ch, a, "course", scenario.StopManual); err != nil {
			t.Fatal(err)
		}
		if got := state(da); got != "cancelled scenario stopped: manual" {
			t.Errorf("stopped run's delivery: %q", got)
		}
		if got := state(db); got != "pending " {
			t.Errorf("the other friend's delivery: %q, want it still pending", got)
		}

		err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error { return h.Srv.Scenarios.Delete(ctx, tx, h.Ch, "course") })
		if err != nil {
			t.Fatal(err)
		}
		if got := state(db); got != "cancelled scenario deleted" {
			t.Errorf("deleted scenario's delivery: %q", got)
		}
	})
}
