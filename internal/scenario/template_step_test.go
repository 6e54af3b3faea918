package scenario_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/template"
	"github.com/linestep/linestep/internal/testutil"
)

func saveTemplate(t *testing.T, h *servertest.Harness, key, text string) {
	t.Helper()
	body := message.Template{Messages: []message.Message{{Type: "text", Text: text}}}
	if _, err := template.Save(ctx, h.Srv.DB, h.Ch, key, "", body); err != nil {
		t.Fatal(err)
	}
}

// trySave saves a scenario and returns the error.
func trySave(t *testing.T, h *servertest.Harness, key, src string) error {
	t.Helper()
	def, err := scenario.ParseDefinition([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		_, err := h.Srv.Scenarios.Save(ctx, tx, scenario.Scenario{ChannelID: h.Ch, Key: key, Definition: def, Enabled: true})
		return err
	})
}

func deleteTemplate(h *servertest.Harness, key string) error {
	return h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		return template.Delete(ctx, tx, h.Ch, key, h.Srv.Scenarios.TemplateUsers)
	})
}

// A step that names a template sends it with the friend's variables, as the template
// reads when the step runs: an edit reaches friends already waiting for the step.
func TestStepSendsATemplateAsItReadsWhenItRuns(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		saveTemplate(t, h, "greeting", "{{display_name|お客様}}さん、ようこそ")
		saveTemplate(t, h, "news", "古いお知らせ")
		save(t, h, "welcome", `
trigger: {type: follow}
steps:
  - {key: greet, template: greeting}
  - {key: news, timing: {after: 1d}, template: news}
`)
		u, _ := follow(t, h, "山田")
		h.Eventually("the greeting", func() bool { return len(received(t, h, u)) == 1 })
		settle(t, h)
		expectReceived(t, h, u, "reply: 山田さん、ようこそ")

		saveTemplate(t, h, "news", "新しいお知らせです")
		advance(t, h, 24*time.Hour)
		expectReceived(t, h, u, "reply: 山田さん、ようこそ", "push: 新しいお知らせです")
	})
}

// Saving refuses a step naming a template that does not exist, saying which step, and a
// step that gives both a template and messages.
func TestTemplateReferencesAreChecked(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		err := trySave(t, h, "refs", "trigger: {type: manual}\nsteps:\n  - {key: first, template: nope}\n")
		var ps scenario.Problems
		if !errors.Is(err, scenario.ErrInvalid) || !errors.As(err, &ps) {
			t.Fatalf("save with an unknown template: %v", err)
		}
		i := slices.IndexFunc(ps, func(p scenario.Problem) bool { return p.Path == "steps[0].template" })
		if i < 0 || !strings.Contains(ps[i].JA, "「first」") || !strings.Contains(ps[i].JA, "「nope」") ||
			!strings.Contains(ps[i].EN, `"first"`) || !strings.Contains(ps[i].EN, `"nope"`) {
			t.Fatalf("the problem does not name the step and the template: %+v", ps)
		}
		if _, err := h.Srv.Scenarios.Get(ctx, h.Srv.DB, h.Ch, "refs"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("an invalid scenario was kept: %v", err)
		}
	})
	for name, src := range map[string]string{
		"both":    "trigger: {type: manual}\nsteps:\n  - {key: a, template: sale, messages: [{type: text, text: x}]}\n",
		"bad key": "trigger: {type: manual}\nsteps:\n  - {key: a, template: Sale!}\n",
	} {
		d, err := scenario.ParseDefinition([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		ps := d.Validate()
		if i := slices.IndexFunc(ps, func(p scenario.Problem) bool { return p.Path == "steps[0].template" }); i < 0 || ps[i].JA == "" || ps[i].EN == "" {
			t.Errorf("%s: no problem at steps[0].template: %+v", name, ps)
		}
	}
}

// A template that steps send cannot be deleted; the refusal names the scenarios. Once
// no step sends it, it can.
func TestDeletingATemplateInUseIsRefused(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		saveTemplate(t, h, "sale", "セールです")
		saveTemplate(t, h, "sale-2", "別のセール")
		save(t, h, "winter", "trigger: {type: manual}\nsteps:\n  - {key: a, template: sale}\n")
		save(t, h, "autumn", "trigger: {type: manual}\nsteps:\n  - {key: a, messages: [{type: text, text: x}]}\n  - {key: b, template: sale}\n")
		save(t, h, "other", "trigger: {type: manual}\nsteps:\n  - {key: a, template: sale-2}\n")

		err := deleteTemplate(h, "sale")
		var inUse *template.InUseError
		if !errors.As(err, &inUse) || !slices.Equal(inUse.Scenarios, []string{"autumn", "winter"}) {
			t.Fatalf("delete of a template in use: %v", err)
		}
		if _, err := template.Get(ctx, h.Srv.DB, h.Ch, "sale"); err != nil {
			t.Fatalf("the template in use is gone: %v", err)
		}

		save(t, h, "winter", "trigger: {type: manual}\nsteps:\n  - {key: a, messages: [{type: text, text: x}]}\n")
		if err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error { return h.Srv.Scenarios.Delete(ctx, tx, h.Ch, "autumn") }); err != nil {
			t.Fatal(err)
		}
		if err := deleteTemplate(h, "sale"); err != nil {
			t.Fatalf("delete once unused: %v", err)
		}
	})
}

// A rich_menu action takes a rich menu ID as LINE issues them, or default.
func TestRichMenuActionNeedsAMenuID(t *testing.T) {
	for _, tc := range []struct {
		value string
		ok    bool
	}{
		{"richmenu-0123456789abcdef0123456789abcdef", true},
		{"default", true},
		{"richmenu-xyz", false},
		{"richmenu-0123456789ABCDEF0123456789ABCDEF", false},
		{"none", false},
		{"richmenu-0123456789abcdef0123456789abcdef/../x", false},
	} {
		d, err := scenario.ParseDefinition([]byte("trigger: {type: manual}\nsteps:\n  - {key: a, actions: {rich_menu: '" + tc.value + "'}}\n"))
		if err != nil {
			t.Fatal(err)
		}
		ps := d.Validate()
		i := slices.IndexFunc(ps, func(p scenario.Problem) bool { return p.Path == "steps[0].actions.rich_menu" })
		switch {
		case tc.ok && ps != nil:
			t.Errorf("%q refused: %v", tc.value, ps)
		case !tc.ok && i < 0:
			t.Errorf("%q accepted: %v", tc.value, ps)
		case !tc.ok && (!strings.Contains(ps[i].JA, "richmenu-") || !strings.Contains(ps[i].EN, "default")):
			t.Errorf("%q: the problem does not say what to write: %+v", tc.value, ps[i])
		}
	}
}
