package scenario

import "testing"

// Definitions are typed by staff and uploaded in files: no input may panic the parser or
// the validator, and whatever validates must survive a round trip through storage.
func FuzzParseDefinition(f *testing.F) {
	for _, s := range []string{
		"trigger: {type: follow}\nsteps: [{key: a, messages: [{type: text, text: hi}]}]",
		`{"trigger":{"type":"manual"},"steps":[{"key":"a","timing":{"day":1,"at":"10:00"},"actions":{"add_tags":["x"]}}]}`,
		"trigger: {type: keyword, value: ｸｰﾎﾟﾝ}\nquiet_hours: 21:00-09:00\nsteps: [{key: a, timing: {field: d, days: -1}, if: {not: {tag: t}}, messages: [{type: sticker, packageId: '1', stickerId: '2'}]}]",
		"steps: [", "{", "trigger: &a [*a]", "- - - -",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDefinition(data)
		if err != nil {
			return
		}
		if d.Validate() != nil {
			return
		}
		for i, st := range d.Steps {
			a := account{loc: tokyo, quiet: &QuietHours{From: 21 * 60, To: 9 * 60}}
			if _, skip := a.stepTime(st.Timing, tokyo0, tokyo0, "2026-12-01", tokyo0); skip && st.Timing.Field == "" {
				t.Fatalf("step %d without a field timing was skipped", i)
			}
		}
	})
}
