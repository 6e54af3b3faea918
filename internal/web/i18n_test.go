package web

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every text shown exists in Japanese and in English.
func TestCatalogsComplete(t *testing.T) {
	for _, pair := range [][2]string{{"ja", "en"}, {"en", "ja"}} {
		for key, text := range catalog[pair[0]] {
			if strings.TrimSpace(text) == "" {
				t.Errorf("%s: %q is empty", pair[0], key)
			}
			if _, ok := catalog[pair[1]][key]; !ok {
				t.Errorf("%q is in %s but not in %s", key, pair[0], pair[1])
			}
		}
	}
}

// Every key the templates and handlers ask for is in the catalog: a missing key would
// show itself (e.g. "friends.title") to the user.
func TestEveryUsedKeyIsTranslated(t *testing.T) {
	used := map[string]string{}
	inTemplates := regexp.MustCompile(`\bt \$?[A-Za-z.]* *"([a-z0-9_.]+)"`)
	fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := templateFS.ReadFile(path)
		for _, m := range inTemplates.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = path
		}
		return nil
	})
	// A Go string shaped like a key whose first part is one the catalog uses.
	prefixes := map[string]bool{}
	for key := range catalog["ja"] {
		prefix, _, _ := strings.Cut(key, ".")
		prefixes[prefix] = true
	}
	inGo := regexp.MustCompile(`"([a-z0-9]+\.[a-z0-9_.]+)"`)
	goFiles, _ := filepath.Glob("*.go")
	for _, f := range goFiles {
		if strings.HasSuffix(f, "_test.go") || strings.HasPrefix(f, "i18n") {
			continue
		}
		b, _ := os.ReadFile(f)
		for _, m := range inGo.FindAllStringSubmatch(string(b), -1) {
			if prefix, _, _ := strings.Cut(m[1], "."); !prefixes[prefix] {
				continue
			}
			used[m[1]] = f
		}
	}
	if len(used) < 20 {
		t.Fatalf("found only %d keys in use: the scan is broken", len(used))
	}
	for key, where := range used {
		for _, lang := range []string{"ja", "en"} {
			if _, ok := catalog[lang][key]; !ok {
				t.Errorf("%s uses %q, missing in %s", where, key, lang)
			}
		}
	}
}
