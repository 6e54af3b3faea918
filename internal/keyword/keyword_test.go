package keyword_test

import (
	"testing"

	"github.com/linestep/linestep/internal/keyword"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"ＡＢＣ":     "abc",
		"ｶﾀｶﾅ":    "カタカナ",
		"ｶﾞｯｺｳ":   "ガッコウ",
		"　Ｈｅｌｌｏ　": "hello",
		"Straße":  "strasse",
		"①２３":     "123",
	} {
		if got := keyword.Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}
