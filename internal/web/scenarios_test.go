package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/store"
)

// ctScenario saves a scenario as a setup file would, with the date field its steps
// may be timed by.
func ctScenario(t *testing.T, h *servertest.Harness, key, yaml string, enabled bool) {
	t.Helper()
	ctx := context.Background()
	if _, err := h.Srv.Friends.DefineField(ctx, h.Srv.DB, friend.Field{ChannelID: h.Ch, Key: "next_visit", Label: "次回来店日",
		Type: friend.DateField, Purpose: "予約の確認", Sensitivity: friend.Attribute}); err != nil {
		t.Fatal(err)
	}
	def, err := scenario.ParseDefinition([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	err = h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		_, err := h.Srv.Scenarios.Save(ctx, tx, scenario.Scenario{ChannelID: h.Ch, Key: key, Definition: def, Enabled: enabled})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

const ctWelcome = `name: "<i>ようこそ</i>"
trigger: {type: follow}
quiet_hours: "21:00-09:00"
stop: {tags: [purchased]}
steps:
  - key: greet
    messages:
      - {type: text, text: "<script>alert('greet')</script>{{display_name|お客様}}さん、ようこそ"}
  - key: day1
    timing: {day: 1, at: "10:00"}
    if: {all: [{tag: vip}, {not: {tag: optout}}]}
    messages:
      - type: flex
        altText: 新メニューのご案内
        contents: {type: carousel, contents: [{type: bubble, body: {type: box, layout: vertical, contents: [{type: text, text: A}]}}, {type: bubble, body: {type: box, layout: vertical, contents: [{type: text, text: B}]}}]}
    actions: {add_tags: [nurtured]}
  - key: remind
    timing: {field: next_visit, days: -1, at: "10:00"}
    messages: [{type: text, text: 明日のご来店をお待ちしています}]
  - key: later
    timing: {after: 1d12h}
    messages: [{type: text, text: その後いかがですか}]
`

func TestScenarioPagesShowTheTimelineAndSwitchIt(t *testing.T) {
	fxEachDB(t, func(t *testing.T, h *servertest.Harness) {
		ctx := context.Background()
		ctScenario(t, h, "welcome", ctWelcome, true)
		fs := ctFollowers(t, h, "花子")
		h.Eventually("the enrolment", func() bool {
			es, _ := h.Srv.Scenarios.Enrolments(ctx, h.Srv.DB, fs[0].ID)
			return len(es) == 1
		})
		b := signIn(t, h)
		base := "/console/channels/" + h.Ch + "/scenarios"

		list := ctPage(t, b, base)
		ctInOrder(t, "list", list, "&lt;i&gt;ようこそ&lt;/i&gt;", "友だち追加", "有効")
		page := ctPage(t, b, base+"/welcome")
		ctInOrder(t, "timeline in Japanese", page,
			"友だち追加", "21:00〜09:00", "タグ「purchased」が付いたら停止",
			"1", "友だち追加直後", "greet", "&lt;script&gt;alert(&#39;greet&#39;)&lt;/script&gt;{{display_name|お客様}}さん、ようこそ",
			"2", "1日後 10:00", "day1", "タグ「vip」 かつ タグ「optout」 ではない", "Flexメッセージ（カルーセル2枚）", "タグを付ける: nurtured",
			"3", "next_visit の1日前 10:00", "remind",
			"4", "前のステップの1日12時間後", "later")
		for _, bad := range []string{"<script>alert", "<i>ようこそ"} {
			if strings.Contains(page, bad) {
				t.Errorf("%q reached the page unescaped", bad)
			}
		}
		en := ctPage(t, b, base+"/welcome?lang=en")
		ctInOrder(t, "timeline in English", en, "Right after the follow", "Day 1 at 10:00", "1 day(s) before next_visit, at 10:00", "1 day 12 hours after the previous step")

		// Switching it off is a form with the token; without the token it is refused.
		if res, _ := b.do("POST", base+"/welcome/enabled", url.Values{"on": {"0"}}, nil); res.StatusCode != http.StatusForbidden {
			t.Errorf("switch without the form token: %d, want 403", res.StatusCode)
		}
		res, body := ctPost(b, base+"/welcome/enabled", url.Values{"on": {"0"}})
		ctRedirect(t, "switch off", res, body)
		if sc, _ := h.Srv.Scenarios.Get(ctx, h.Srv.DB, h.Ch, "welcome"); sc.Enabled {
			t.Errorf("still enabled")
		}
		ctInOrder(t, "switched off", ctPage(t, b, base+"?lang=ja"), "停止中", ">1<")
	})
}

func TestScenarioEditorShowsProblemsWithTheirPath(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	ctx := context.Background()
	b := signIn(t, h)
	base := "/console/channels/" + h.Ch + "/scenarios"
	bad := "trigger: {type: manual}\nsteps:\n  - key: a\n    timing: {day: 1, at: \"25:00\"}\n    messages: [{type: text, text: こんにちは}]\n"
	res, page := ctPost(b, base, url.Values{"key": {"visit"}, "yaml": {bad}})
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("invalid scenario: %d", res.StatusCode)
	}
	ctInOrder(t, "problem", page, "steps[0].timing.at", "「10:00」の形で書いてください", "25:00")
	res, page = ctPost(b, base+"?lang=en", url.Values{"key": {"visit"}, "yaml": {"steps: [oops"}})
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "The YAML cannot be read") || !strings.Contains(page, "steps: [oops") {
		t.Errorf("unreadable YAML in English: %d", res.StatusCode)
	}
	// A good one is saved, and the editor shows it for the next change.
	good := strings.Replace(bad, "25:00", "10:00", 1)
	res, page = ctPost(b, base, url.Values{"key": {"visit"}, "yaml": {good}, "enabled": {"1"}})
	if to := ctRedirect(t, "save", res, page); to != base+"/visit?notice=saved" {
		t.Errorf("saved to %s", to)
	}
	sc, err := h.Srv.Scenarios.Get(ctx, h.Srv.DB, h.Ch, "visit")
	if err != nil || !sc.Enabled || sc.Definition.Steps[0].Timing.At != "10:00" {
		t.Fatalf("saved scenario: %+v %v", sc, err)
	}
	edit := ctPage(t, b, base+"/visit/edit")
	if !strings.Contains(edit, "type: manual") {
		t.Errorf("the editor does not show the saved YAML:\n%s", edit)
	}
	// The same key cannot be created twice.
	if res, _ := ctPost(b, base, url.Values{"key": {"visit"}, "yaml": {good}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("duplicate key: %d", res.StatusCode)
	}
	// Starting it for a friend enrols them.
	fs := ctFollowers(t, h, "次郎")
	res, page = ctPost(b, base+"/visit/start", url.Values{"friend": {itoa(fs[0].ID)}})
	if to := ctRedirect(t, "start", res, page); !strings.HasSuffix(to, "notice=started") {
		t.Errorf("start: %s", to)
	}
	if es, _ := h.Srv.Scenarios.Enrolments(ctx, h.Srv.DB, fs[0].ID); len(es) != 1 || es[0].ScenarioKey != "visit" {
		t.Errorf("enrolments: %+v", es)
	}
	res, page = ctPost(b, base+"/visit/start", url.Values{"friend": {"999999"}})
	if to := ctRedirect(t, "start a stranger", res, page); !strings.HasSuffix(to, "notice=notstarted") {
		t.Errorf("start a stranger: %s", to)
	}
}

func TestScenarioWritesAreNotOfferedToReaders(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	ctScenario(t, h, "welcome", ctWelcome, true)
	b, _ := fxMember(t, h, "analyst1", "Analyst", "analyst")
	base := "/console/channels/" + h.Ch + "/scenarios"
	page := ctPage(t, b, base+"/welcome")
	for _, offered := range []string{"/enabled", "/edit", "/start"} {
		if strings.Contains(page, base+"/welcome"+offered) {
			t.Errorf("an analyst is offered %s", offered)
		}
	}
	if res, _ := ctPost(b, base+"/welcome/enabled", url.Values{"on": {"0"}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("an analyst switches a scenario: %d", res.StatusCode)
	}
}
