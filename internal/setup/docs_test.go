package setup_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/linestep/linestep/internal/setup"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// exampleBlock is a complete file in docs/setup-files.md: a marker, then a yaml block.
var exampleBlock = regexp.MustCompile("(?s)<!-- setup-example: (\\S+) -->\n```yaml\n(.*?)```")

// TestDocExamples applies every complete example of the documentation, so that the
// documentation cannot promise a file that does not apply.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/setup-files.md")
	if err != nil {
		t.Fatal(err)
	}
	examples := exampleBlock.FindAllStringSubmatch(string(doc), -1)
	if len(examples) != 4 {
		t.Fatalf("found %d examples in docs/setup-files.md, want 4", len(examples))
	}
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		for _, ex := range examples {
			t.Run(ex[1], func(t *testing.T) {
				r := newRig(t, db)
				defer func() {
					if _, err := db.ExecContext(ctx, "DELETE FROM channels"); err != nil {
						t.Fatal(err)
					}
				}()
				sum, err := r.apply("ch1", ex[2], setup.Options{})
				if err != nil {
					t.Fatalf("the example does not apply: %v", err)
				}
				if !sum.Changed() {
					t.Errorf("the example created nothing")
				}
				if sum := r.mustApply("ch1", ex[2], setup.Options{}); sum.Changed() {
					t.Errorf("applied twice, it changed %+v", sum.Changes)
				}
				first := r.export("ch1")
				r.mustApply("ch2", first, setup.Options{})
				if second := r.export("ch2"); second != first {
					t.Errorf("export round trip differs:\n%s\n---\n%s", first, second)
				}
			})
		}
	})
}
