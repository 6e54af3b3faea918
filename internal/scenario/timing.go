package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// account is what timing needs from the account: its time zone and quiet hours.
type account struct {
	loc   *time.Location
	quiet *QuietHours // nil: none
}

// loadAccount reads the channel's time zone and quiet hours; the scenario's own quiet
// hours, when set, take precedence.
func loadAccount(ctx context.Context, q store.Querier, channelID string) (account, error) {
	var tz, quiet string
	if err := q.QueryRowContext(ctx, "SELECT time_zone, quiet_hours FROM channels WHERE id = ?", channelID).Scan(&tz, &quiet); err != nil {
		return account{}, fmt.Errorf("scenario: channel settings: %w", err)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		loc = tokyo // a zone the system no longer knows: Japan is the safe guess
	}
	a := account{loc: loc}
	if quiet != "" {
		if qh, err := ParseQuietHours(quiet); err == nil {
			a.quiet = &qh
		}
	}
	return a, nil
}

var tokyo = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		return time.FixedZone("JST", 9*60*60)
	}
	return loc
}()

// forScenario applies the scenario's own quiet-hours setting.
func (a account) forScenario(d *Definition) account {
	switch d.QuietHours {
	case "":
	case "off":
		a.quiet = nil
	default:
		if qh, err := ParseQuietHours(d.QuietHours); err == nil {
			a.quiet = &qh
		}
	}
	return a
}

// stepTime says when a step runs. anchor is the enrolment, prev when the previous step
// ran (zero for the first step), field the friend's value of the timing's field. skip
// reports a step that cannot run for this friend: its field is empty or not a date, or
// its date has passed.
func (a account) stepTime(t Timing, anchor, prev time.Time, field string, now time.Time) (due time.Time, skip bool) {
	switch {
	case t.Day != nil:
		y, m, d := anchor.In(a.loc).Date()
		at, _ := parseClock(t.At)
		due = time.Date(y, m, d+*t.Day, 0, int(at), 0, 0, a.loc)
	case t.Field != "":
		date, err := time.ParseInLocation(time.DateOnly, field, a.loc)
		if err != nil {
			return time.Time{}, true
		}
		at := clockTime(10 * 60)
		if t.At != "" {
			at, _ = parseClock(t.At)
		}
		due = time.Date(date.Year(), date.Month(), date.Day()+t.Days, 0, int(at), 0, 0, a.loc)
		// A reminder whose time has passed still goes out while its date is today or
		// ahead (the friend booked late); for a date gone by it would only confuse.
		if due.Before(now) {
			y, m, d := now.In(a.loc).Date()
			if date.Before(time.Date(y, m, d, 0, 0, 0, 0, a.loc)) {
				return time.Time{}, true
			}
		}
	default:
		base := prev
		if t.From == "start" || base.IsZero() {
			base = anchor
		}
		due = base.Add(time.Duration(t.After))
	}
	if due.Before(now) {
		due = now // late (day 0 at 10:00 for a friend enrolled at 15:00): run now
	}
	return a.outsideQuiet(due), false
}

// outsideQuiet moves a time inside the quiet hours to their end.
func (a account) outsideQuiet(t time.Time) time.Time {
	if a.quiet == nil {
		return t
	}
	lt := t.In(a.loc)
	y, m, d := lt.Date()
	mins := clockTime(lt.Hour()*60 + lt.Minute())
	from, to := a.quiet.From, a.quiet.To
	end := func(dayOffset int) time.Time { return time.Date(y, m, d+dayOffset, 0, int(to), 0, 0, a.loc) }
	switch {
	case from < to && mins >= from && mins < to:
		return end(0)
	case from > to && mins >= from:
		return end(1)
	case from > to && mins < to:
		return end(0)
	}
	return t
}
