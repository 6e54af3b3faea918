package scenario

import (
	"testing"
	"time"

	"github.com/linestep/linestep/internal/segment"
)

func TestStepTime(t *testing.T) {
	jst := tokyo
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, jst)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	day := func(n int) *int { return &n }
	night := QuietHours{From: 21 * 60, To: 9 * 60}
	lunch := QuietHours{From: 12 * 60, To: 13 * 60}
	anchor := at("2026-11-23 15:00")
	cases := []struct {
		name      string
		quiet     *QuietHours
		timing    Timing
		prev, now time.Time
		field     string
		want      string // "" = skipped
	}{
		{"right away", nil, Timing{}, time.Time{}, anchor, "", "2026-11-23 15:00"},
		{"after the previous step", nil, Timing{After: segment.Duration(2 * time.Hour)}, at("2026-11-24 10:00"), anchor, "", "2026-11-24 12:00"},
		{"after enrolment", nil, Timing{After: segment.Duration(2 * time.Hour), From: "start"}, at("2026-11-24 10:00"), anchor, "", "2026-11-23 17:00"},
		{"day 2 at 10:00", nil, Timing{Day: day(2), At: "10:00"}, time.Time{}, anchor, "", "2026-11-25 10:00"},
		{"day 0 at 10:00, enrolled at 15:00: now", nil, Timing{Day: day(0), At: "10:00"}, time.Time{}, anchor, "", "2026-11-23 15:00"},
		{"into the night: next morning", &night, Timing{After: segment.Duration(7 * time.Hour)}, anchor, anchor, "", "2026-11-24 09:00"},
		{"after midnight: same morning", &night, Timing{After: segment.Duration(12 * time.Hour)}, anchor, anchor, "", "2026-11-24 09:00"},
		{"quiet end itself is allowed", &night, Timing{After: segment.Duration(18 * time.Hour)}, anchor, anchor, "", "2026-11-24 09:00"},
		{"before the night", &night, Timing{After: segment.Duration(5*time.Hour + 59*time.Minute)}, anchor, anchor, "", "2026-11-23 20:59"},
		{"a daytime window", &lunch, Timing{Day: day(1), At: "12:30"}, time.Time{}, anchor, "", "2026-11-24 13:00"},
		{"field: the day before", nil, Timing{Field: "visit", Days: -1, At: "18:00"}, time.Time{}, anchor, "2026-11-30", "2026-11-29 18:00"},
		{"field: default 10:00", nil, Timing{Field: "visit", Days: 3}, time.Time{}, anchor, "2026-11-30", "2026-12-03 10:00"},
		{"field: late but the date is ahead", nil, Timing{Field: "visit", Days: -1}, time.Time{}, anchor, "2026-11-24", "2026-11-23 15:00"},
		{"field: the date has passed", nil, Timing{Field: "visit", Days: 1}, time.Time{}, anchor, "2026-11-20", ""},
		{"field: empty", nil, Timing{Field: "visit"}, time.Time{}, anchor, "", ""},
		{"field: not a date", nil, Timing{Field: "visit"}, time.Time{}, anchor, "soon", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := account{loc: jst, quiet: c.quiet}
			due, skip := a.stepTime(c.timing, anchor, c.prev, c.field, c.now)
			got := ""
			if !skip {
				got = due.In(jst).Format("2006-01-02 15:04")
			}
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

var tokyo0 = time.Date(2026, 11, 23, 15, 0, 0, 0, tokyo)
