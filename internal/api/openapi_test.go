package api

import (
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// The contract and the code must not drift: every route is documented, every documented
// operation is routed, and every reference in the document leads somewhere.
func TestOpenAPIMatchesTheRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi version %q, want 3.1.x", doc.OpenAPI)
	}
	methods := []string{"get", "put", "post", "delete", "patch", "head", "options"}
	var documented []string
	for path, item := range doc.Paths {
		for m := range item {
			if slices.Contains(methods, m) {
				documented = append(documented, strings.ToUpper(m)+" "+path)
			}
		}
	}
	a := New(Config{})
	routed := []string{"GET /api/openapi.yaml"}
	for _, rt := range a.routes {
		routed = append(routed, rt.method+" "+rt.path)
	}
	slices.Sort(documented)
	slices.Sort(routed)
	for _, r := range routed {
		if !slices.Contains(documented, r) {
			t.Errorf("routed but not in openapi.yaml: %s", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routed, d) {
			t.Errorf("in openapi.yaml but not routed: %s", d)
		}
	}

	// The mux itself resolves each documented operation to the pattern of that name.
	param := regexp.MustCompile(`\{[a-z]+\}`)
	for _, d := range documented {
		method, path, _ := strings.Cut(d, " ")
		req := httptest.NewRequest(method, param.ReplaceAllString(path, "x1"), nil)
		if _, pattern := a.mux.Handler(req); pattern != d {
			t.Errorf("%s: the mux routes it to %q", d, pattern)
		}
	}

	var all map[string]any
	if err := yaml.Unmarshal(openAPI, &all); err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`\$ref: "#/([^"]+)"`).FindAllStringSubmatch(string(openAPI), -1)
	if len(refs) == 0 {
		t.Fatal("no $ref found: has the document's style changed?")
	}
	for _, ref := range refs {
		var node any = all
		for _, part := range strings.Split(ref[1], "/") {
			m, ok := node.(map[string]any)
			if !ok || m[part] == nil {
				t.Errorf("$ref #/%s leads nowhere", ref[1])
				break
			}
			node = m[part]
		}
	}
}
