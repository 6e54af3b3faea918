package setup_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/setup"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/template"
	"github.com/linestep/linestep/internal/testutil"
)

const withTemplateStep = `
templates:
  greeting:
    messages: [{type: text, text: "{{display_name|お客様}}さん、ようこそ"}]
scenarios:
  welcome:
    trigger: {type: follow}
    steps:
      - {key: greet, template: greeting, actions: {rich_menu: richmenu-0123456789abcdef0123456789abcdef}}
      - {key: later, timing: {after: 1d}, actions: {rich_menu: default}}
`

// problemAt returns the problem of err at path.
func problemAt(t *testing.T, err error, path string) message.Problem {
	t.Helper()
	var ps message.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want problems, got %v", err)
	}
	i := slices.IndexFunc(ps, func(p message.Problem) bool { return p.Path == path })
	if i < 0 {
		t.Fatalf("no problem at %s: %v", path, ps)
	}
	return ps[i]
}

// A step's template and rich menu survive apply, export and apply elsewhere as written.
func TestTemplateStepsAndRichMenusRoundTrip(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		r.mustApply("ch1", withTemplateStep, setup.Options{})
		if sum := r.mustApply("ch1", withTemplateStep, setup.Options{}); sum.Changed() {
			t.Errorf("applied twice, it changed %+v", sum.Changes)
		}
		first := r.export("ch1")
		for _, want := range []string{"template: greeting", "rich_menu: richmenu-0123456789abcdef0123456789abcdef", "rich_menu: default"} {
			if !strings.Contains(first, want) {
				t.Errorf("export lacks %q:\n%s", want, first)
			}
		}
		if strings.Count(first, "ようこそ") != 1 {
			t.Errorf("the template's messages were copied into the step:\n%s", first)
		}
		r.mustApply("ch2", first, setup.Options{})
		if second := r.export("ch2"); second != first {
			t.Errorf("export round trip differs:\n%s\n---\n%s", first, second)
		}
	})
}

// A step's template must be in the file or the channel (with --prune: in the file).
func TestTemplateStepReferencesAreChecked(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		unknown := strings.Replace(withTemplateStep, "template: greeting", "template: nope", 1)
		_, err := r.apply("ch1", unknown, setup.Options{})
		p := problemAt(t, err, "scenarios.welcome.steps[0].template")
		if !strings.Contains(p.JA, "「greet」") || !strings.Contains(p.JA, "「nope」") || !strings.Contains(p.EN, `"nope"`) {
			t.Errorf("the problem does not name the step and the template: %+v", p)
		}

		r.mustApply("ch1", withTemplateStep, setup.Options{})
		scenarioOnly := withTemplateStep[strings.Index(withTemplateStep, "scenarios:"):]
		r.mustApply("ch1", scenarioOnly, setup.Options{}) // the channel has the template
		_, err = r.apply("ch1", scenarioOnly, setup.Options{Prune: true})
		p = problemAt(t, err, "scenarios.welcome.steps[0].template")
		if !strings.Contains(p.EN, "--prune") {
			t.Errorf("the problem does not say why under --prune: %+v", p)
		}
		if _, err := template.Get(ctx, db, "ch1", "greeting"); err != nil {
			t.Errorf("a refused prune deleted the template: %v", err)
		}

		// Pruning the scenario with its template works: the scenario goes first.
		r.mustApply("ch1", "tags: [x]\n", setup.Options{Prune: true})
		if _, err := template.Get(ctx, db, "ch1", "greeting"); err == nil {
			t.Errorf("the template was not pruned")
		}
	})
}
