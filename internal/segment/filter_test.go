package segment_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/linestep/linestep/internal/segment"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		json string
		want string // "" when valid
	}{
		{`{}`, ""},
		{`{"tag": "member"}`, ""},
		{`{"status": "any"}`, ""},
		{`{"all": [{"tag": "a"}, {"any": [{"tag": "b"}, {"not": {"field": {"key": "age", "op": "gt", "value": "3"}}}]}]}`, ""},
		{`{"field": {"key": "d", "op": "before", "value": "-30d"}}`, ""},
		{`{"field": {"key": "d", "op": "after", "value": "2026-01-31"}}`, ""},
		{`{"tag": "a", "field": {"key": "age", "op": "set"}}`, "segment: a condition holds exactly one of all, any, not, tag, field, status, ...; this one has tag and field"},
		{`{"all": [{"tag": "a"}, {"tag": "b", "status": "blocked"}]}`, "segment: all[1]: a condition holds exactly one"},
		{`{"all": [{"tag": "a"}, {"field": {"key": "age", "op": "greater", "value": "3"}}]}`, `segment: all[1].field.op: "greater" is not one of eq, ne`},
		{`{"all": [{"tag": "a"}, {}]}`, "segment: all[1]: empty condition"},
		{`{"all": []}`, "segment: all: empty list"},
		{`{"any": [{"not": {"tag": " "}}]}`, "segment: any[0].not.tag: empty name"},
		{`{"field": {"op": "set"}}`, "segment: field.key: empty name"},
		{`{"field": {"key": "age", "op": "set", "value": "1"}}`, "segment: field.value: set takes no value"},
		{`{"field": {"key": "age", "op": "gt"}}`, "segment: field.value: gt needs a value"},
		{`{"field": {"key": "d", "op": "before", "value": "next week"}}`, `segment: field.value: "next week" is not a date`},
		{`{"field": {"key": "d", "op": "after", "value": "2026-02-30"}}`, `segment: field.value: "2026-02-30" is not a date`},
		{`{"status": "active"}`, `segment: status: "active" is not one of following, blocked, unknown, any`},
		{`{"scenario": {"key": "welcome", "state": "done"}}`, `segment: scenario.state: "done" is not one of active`},
		{`{"scenario": {"state": "ever"}}`, `segment: scenario.key: empty name`},
		{`{"not": {}}`, "segment: not: empty condition"},
		{strings.Repeat(`{"not": `, 20) + `{"tag": "a"}` + strings.Repeat(`}`, 20), "nested too deeply"},
	} {
		var f segment.Filter
		if err := json.Unmarshal([]byte(tc.json), &f); err != nil {
			t.Fatalf("%s: %v", tc.json, err)
		}
		err := f.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.json, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.json, err, tc.want)
		}
		if !errors.Is(err, segment.ErrInvalid) {
			t.Errorf("%s: %v is not ErrInvalid", tc.json, err)
		}
	}
}

func TestTooManyConditions(t *testing.T) {
	f := segment.Filter{}
	for range 300 {
		f.Any = append(f.Any, segment.Filter{Tag: "a"})
	}
	if err := f.Validate(); err == nil || !strings.Contains(err.Error(), "too many") {
		t.Fatalf("got %v", err)
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		out  string
	}{
		{"90s", 90 * time.Second, "1m30s"},
		{"15m", 15 * time.Minute, "15m"},
		{"36h", 36 * time.Hour, "1d12h"},
		{"7d", 7 * 24 * time.Hour, "1w"},
		{"2w", 14 * 24 * time.Hour, "2w"},
		{"1d12h", 36 * time.Hour, "1d12h"},
		{" 3d ", 3 * 24 * time.Hour, "3d"},
	} {
		d, err := segment.ParseDuration(tc.in)
		if err != nil || time.Duration(d) != tc.want {
			t.Errorf("%q: %v, %v", tc.in, time.Duration(d), err)
		}
		if d.String() != tc.out {
			t.Errorf("%q: String %q, want %q", tc.in, d, tc.out)
		}
		if back, err := segment.ParseDuration(d.String()); err != nil || back != d {
			t.Errorf("%q: round trip %v, %v", tc.in, back, err)
		}
	}
	for _, bad := range []string{"", "7", "d", "7x", "-7d", "0d", "1.5h", "7dd", "99999999999w"} {
		if _, err := segment.ParseDuration(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	// JSON: a string, never a bare number (seconds? nanoseconds?).
	var f segment.Filter
	if err := json.Unmarshal([]byte(`{"followedWithin": 604800}`), &f); err == nil {
		t.Error("a number parsed as a duration")
	}
	if err := json.Unmarshal([]byte(`{"followedWithin": "7d"}`), &f); err != nil || time.Duration(f.FollowedWithin) != 7*24*time.Hour {
		t.Fatalf("%v %v", f.FollowedWithin, err)
	}
	b, _ := json.Marshal(segment.Filter{FollowedBefore: segment.Duration(36 * time.Hour)})
	if string(b) != `{"followedBefore":"1d12h"}` {
		t.Errorf("marshalled %s", b)
	}
}

const yamlFilter = `
# spring campaign: Osaka members over 30, or anyone who joined this week
any:
  - all:
      - tag: "area:osaka"
      - tag: member
      - field: {key: age, op: gte, value: 30}
      - not:
          scenario: {key: welcome, state: active}
  - followedWithin: 7d
  - all:
      - status: blocked
      - field:
          key: next_visit
          op: after
          value: -30d
`

func TestYAML(t *testing.T) {
	want := segment.Filter{Any: []segment.Filter{
		{All: []segment.Filter{
			{Tag: "area:osaka"},
			{Tag: "member"},
			{Field: &segment.FieldCond{Key: "age", Op: "gte", Value: "30"}},
			{Not: &segment.Filter{Scenario: &segment.ScenarioCond{Key: "welcome", State: "active"}}},
		}},
		{FollowedWithin: segment.Duration(7 * 24 * time.Hour)},
		{All: []segment.Filter{
			{Status: "blocked"},
			{Field: &segment.FieldCond{Key: "next_visit", Op: "after", Value: "-30d"}},
		}},
	}}
	f, err := segment.Parse([]byte(yamlFilter))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("got %+v", f)
	}
	// Plain goccy/go-yaml decoding gives the same, and so does JSON of the result.
	var plain segment.Filter
	if err := yaml.Unmarshal([]byte(yamlFilter), &plain); err != nil || !reflect.DeepEqual(plain, want) {
		t.Fatalf("yaml.Unmarshal: %+v %v", plain, err)
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	again, err := segment.Parse(b)
	if err != nil || !reflect.DeepEqual(again, want) {
		t.Fatalf("JSON %s: %+v %v", b, again, err)
	}
	out, err := yaml.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := segment.Parse(out); err != nil || !reflect.DeepEqual(again, want) {
		t.Fatalf("YAML %s: %+v %v", out, again, err)
	}

	// A misspelt key is an error, not a filter that matches every follower.
	for _, bad := range []string{"tags: member", "any:\n  - tag: a\n  - feild: {key: age, op: set}", "followedWithin: 7", "followedWithin: soon", "all: nope"} {
		if f, err := segment.Parse([]byte(bad)); err == nil {
			t.Errorf("%q parsed as %+v", bad, f)
		} else if !errors.Is(err, segment.ErrInvalid) {
			t.Errorf("%q: %v is not ErrInvalid", bad, err)
		}
	}
	if f, err := segment.Parse([]byte("{}")); err != nil || !f.IsEmpty() {
		t.Errorf("{}: %+v %v", f, err)
	}
}

func FuzzFilterJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"tag":"member"}`, `{"all":[{"tag":"a"},{"not":{"status":"blocked"}}]}`,
		`{"any":[{"field":{"key":"age","op":"gt","value":"3"}},{"followedWithin":"7d"}]}`,
		`{"scenario":{"key":"w","state":"never"}}`, `{"field":{"key":"d","op":"before","value":"-30d"}}`,
		`{"not":{"not":{"not":{}}}}`, `{"followedBefore":"1w2d3h4m5s"}`, `{"all":[]}`, `[1,2]`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var flt segment.Filter
		if err := json.Unmarshal(data, &flt); err != nil {
			return
		}
		if err := flt.Validate(); err != nil {
			if !errors.Is(err, segment.ErrInvalid) {
				t.Fatalf("%v is not ErrInvalid", err)
			}
			return
		}
		// A valid filter survives a round trip through JSON unchanged.
		b, err := json.Marshal(flt)
		if err != nil {
			t.Fatal(err)
		}
		var again segment.Filter
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if err := again.Validate(); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if b2, _ := json.Marshal(again); string(b2) != string(b) {
			t.Fatalf("round trip changed %s to %s", b, b2)
		}
	})
}

func TestParseLiteralScalars(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"field: {key: code, op: eq, value: 007}", "007"},
		{"field: {key: code, op: eq, value: 0x10}", "0x10"},
		{"field: {key: n, op: gte, value: 1.50}", "1.50"},
		{"field: {key: n, op: eq, value: 1e3}", "1e3"},
		{"field: {key: b, op: eq, value: true}", "true"},
		{"field: {key: b, op: eq, value: 'yes'}", "yes"},
		{"field: {key: d, op: before, value: 2026-11-30}", "2026-11-30"},
		{"field:\n  key: d\n  op: eq\n  value: \"12\"", "12"},
		{`{"field": {"key": "n", "op": "eq", "value": 12}}`, "12"},
	} {
		f, err := segment.Parse([]byte(tc.yaml))
		if err != nil {
			t.Errorf("%s: %v", tc.yaml, err)
			continue
		}
		if f.Field == nil || f.Field.Value != tc.want {
			t.Errorf("%s: got %+v, want value %q", tc.yaml, f.Field, tc.want)
		}
	}
	if f, err := segment.Parse([]byte("tag: 007")); err != nil || f.Tag != "007" {
		t.Errorf("tag: %+v %v", f, err)
	}
	for _, bad := range []string{"", "# nothing\n", "tag: a\n---\ntag: b", "tag: !!str a", "field: {key: n, op: eq, value: [1]}", "all: [1]", "followedWithin: 7"} {
		if f, err := segment.Parse([]byte(bad)); err == nil {
			t.Errorf("%q parsed as %+v", bad, f)
		} else if !errors.Is(err, segment.ErrInvalid) {
			t.Errorf("%q: %v is not ErrInvalid", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(yamlFilter))
	f.Add([]byte("tag: 007"))
	f.Add([]byte(`{"all": [{"tag": "a"}, {"field": {"key": "n", "op": "eq", "value": 1.5}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		flt, err := segment.Parse(data)
		if err != nil {
			return
		}
		if err := flt.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid filter: %v", err)
		}
	})
}
