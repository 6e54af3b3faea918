// Package keyword holds how linestep compares what friends type with the keywords
// staff write, for auto-replies and keyword-triggered scenarios alike.
package keyword

import (
	"strings"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Normalize is the form in which keywords and a friend's text are compared: Unicode NFKC
// (ＡＢＣ and ABC, ｶﾀｶﾅ and カタカナ, the ideographic space and the space become one),
// case-folded, and trimmed of surrounding space.
func Normalize(s string) string {
	s = norm.NFKC.String(s)
	// A Caser keeps state: one per call keeps Normalize safe for concurrent use.
	s = cases.Fold().String(s)
	// Folding can leave a few characters unnormalised (Unicode's NFKC_Casefold
	// normalises again for this reason).
	s = norm.NFKC.String(s)
	return strings.TrimSpace(s)
}
