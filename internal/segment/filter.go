// Package segment selects a channel's friends by a filter that staff write in YAML or
// JSON: the recipients of a broadcast, the targets of a coupon, the condition of a step.
//
// A Filter is a tree. Every node holds exactly one condition: a combination (all, any,
// not) or a leaf (tag, field, status, followedWithin, followedBefore, scenario).
//
// The status rule: a broadcast must not go to friends who blocked the account, and a
// staff member who writes `tag: member` means the members who follow. So unless the
// filter names a status somewhere (in any node, however deeply nested), it is narrowed to
// friends whose status is following; the empty filter therefore means "every follower".
// A filter that names a status is taken exactly as written: `status: blocked` selects
// the blocked friends, and `status: any` (accepted only for this) lifts the narrowing
// without selecting anything, e.g. `all: [{status: any}, {tag: vip}]` is every vip friend
// whatever their status.
//
// Resolve checks the names against the channel and returns a Compiled filter, which
// renders as a SQL boolean expression over `friends f` with every value bound.
package segment

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrInvalid is wrapped by every error about the filter itself (syntax, unknown names,
// an op that does not fit the field), so an API can answer 400 rather than 500.
var ErrInvalid = errors.New("invalid segment")

// Error is a problem at one place of a filter. Path names the node like a staff member
// would find it in the YAML: "all[1].field.op".
type Error struct {
	Path string
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "segment: " + e.Msg
	}
	return "segment: " + e.Path + ": " + e.Msg
}

func (e *Error) Unwrap() error { return ErrInvalid }

func errAt(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Filter is one node of a segment; see the package comment.
type Filter struct {
	All            []Filter      `json:"all,omitempty" yaml:"all,omitempty"` // AND
	Any            []Filter      `json:"any,omitempty" yaml:"any,omitempty"` // OR
	Not            *Filter       `json:"not,omitempty" yaml:"not,omitempty"`
	Tag            string        `json:"tag,omitempty" yaml:"tag,omitempty"` // carries this tag (by name)
	Field          *FieldCond    `json:"field,omitempty" yaml:"field,omitempty"`
	Status         string        `json:"status,omitempty" yaml:"status,omitempty"` // following | blocked | unknown | any
	FollowedWithin Duration      `json:"followedWithin,omitempty" yaml:"followedWithin,omitempty"`
	FollowedBefore Duration      `json:"followedBefore,omitempty" yaml:"followedBefore,omitempty"`
	Scenario       *ScenarioCond `json:"scenario,omitempty" yaml:"scenario,omitempty"`
}

// FieldCond compares a custom field's value.
//
// Ops: eq, ne, contains, prefix (text); eq, ne (choice); eq, ne, gt, gte, lt, lte
// (number, compared as numbers); eq, ne, gt, gte, lt, lte, before (= lt), after (= gt)
// (date); set and unset (any type, without a value).
//
// A date value is YYYY-MM-DD, "today", or days or weeks from today like "-30d", "+7d",
// "+2w", counted in the channel's time zone when the filter is evaluated.
//
// Every comparison requires a value, except ne and unset: ne is the negation of eq, so
// friends without a value are "not equal" too (add `set` to exclude them). Comparisons
// are case-sensitive and identical on both engines; a stored value that is not a number
// (or not a date) never satisfies a numeric (date) comparison.
type FieldCond struct {
	Key   string `json:"key" yaml:"key"`
	Op    string `json:"op" yaml:"op"`
	Value string `json:"value,omitempty" yaml:"value,omitempty"`
}

// ScenarioCond tests a friend's enrolment in a scenario (by key). State is active,
// completed or stopped (the enrolment's current state), ever (enrolled at any time, in
// any state) or never (no enrolment).
type ScenarioCond struct {
	Key   string `json:"key" yaml:"key"`
	State string `json:"state" yaml:"state"`
}

// Limits keep a filter's SQL small enough to plan quickly.
const (
	maxDepth = 16
	maxNodes = 200
)

var (
	statuses       = []string{"following", "blocked", "unknown", "any"}
	scenarioStates = []string{"active", "completed", "stopped", "ever", "never"}
	fieldOps       = []string{"eq", "ne", "contains", "prefix", "gt", "gte", "lt", "lte", "before", "after", "set", "unset"}
)

func oneOf(v string, list []string) bool {
	for _, s := range list {
		if v == s {
			return true
		}
	}
	return false
}

// kinds lists the conditions a node holds; Validate wants exactly one (or none at the
// root: the empty filter).
func (f *Filter) kinds() []string {
	var k []string
	if f.All != nil {
		k = append(k, "all")
	}
	if f.Any != nil {
		k = append(k, "any")
	}
	if f.Not != nil {
		k = append(k, "not")
	}
	if f.Tag != "" {
		k = append(k, "tag")
	}
	if f.Field != nil {
		k = append(k, "field")
	}
	if f.Status != "" {
		k = append(k, "status")
	}
	if f.FollowedWithin != 0 {
		k = append(k, "followedWithin")
	}
	if f.FollowedBefore != 0 {
		k = append(k, "followedBefore")
	}
	if f.Scenario != nil {
		k = append(k, "scenario")
	}
	return k
}

// IsEmpty reports whether f is the empty filter (every follower).
func (f Filter) IsEmpty() bool { return len(f.kinds()) == 0 }

// Validate checks the filter's shape without a database: one condition per node, known
// ops and states, names present. Errors name the path of the node.
func (f Filter) Validate() error {
	if f.IsEmpty() {
		return nil
	}
	nodes := 0
	return f.validate("", 0, &nodes)
}

func join(path, elem string) string {
	if path == "" {
		return elem
	}
	return path + "." + elem
}

func (f *Filter) validate(path string, depth int, nodes *int) error {
	*nodes++
	if *nodes > maxNodes {
		return errAt(path, "too many conditions (at most %d)", maxNodes)
	}
	if depth > maxDepth {
		return errAt(path, "nested too deeply (at most %d levels)", maxDepth)
	}
	k := f.kinds()
	switch len(k) {
	case 0:
		return errAt(path, "empty condition: give one of all, any, not, tag, field, status, followedWithin, followedBefore, scenario")
	case 1:
	default:
		return errAt(path, "a condition holds exactly one of all, any, not, tag, field, status, ...; this one has %s", strings.Join(k, " and "))
	}
	switch k[0] {
	case "all", "any":
		list := f.All
		if k[0] == "any" {
			list = f.Any
		}
		if len(list) == 0 {
			return errAt(join(path, k[0]), "empty list")
		}
		for i := range list {
			if err := list[i].validate(fmt.Sprintf("%s[%d]", join(path, k[0]), i), depth+1, nodes); err != nil {
				return err
			}
		}
	case "not":
		return f.Not.validate(join(path, "not"), depth+1, nodes)
	case "tag":
		if err := checkName(f.Tag); err != nil {
			return errAt(join(path, "tag"), "%v", err)
		}
	case "field":
		return f.Field.validate(join(path, "field"))
	case "status":
		if !oneOf(f.Status, statuses) {
			return errAt(join(path, "status"), "%q is not one of %s", f.Status, strings.Join(statuses, ", "))
		}
	case "followedWithin", "followedBefore":
		d := f.FollowedWithin + f.FollowedBefore // only one is set
		if d < 0 {
			return errAt(join(path, k[0]), "must be positive")
		}
	case "scenario":
		p := join(path, "scenario")
		if err := checkName(f.Scenario.Key); err != nil {
			return errAt(join(p, "key"), "%v", err)
		}
		if !oneOf(f.Scenario.State, scenarioStates) {
			return errAt(join(p, "state"), "%q is not one of %s", f.Scenario.State, strings.Join(scenarioStates, ", "))
		}
	}
	return nil
}

func checkName(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("empty name")
	}
	if len(s) > 200 || !utf8.ValidString(s) {
		return errors.New("not a valid name")
	}
	return nil
}

func (c *FieldCond) validate(path string) error {
	if err := checkName(c.Key); err != nil {
		return errAt(join(path, "key"), "%v", err)
	}
	if !oneOf(c.Op, fieldOps) {
		return errAt(join(path, "op"), "%q is not one of %s", c.Op, strings.Join(fieldOps, ", "))
	}
	switch c.Op {
	case "set", "unset":
		if c.Value != "" {
			return errAt(join(path, "value"), "%s takes no value", c.Op)
		}
	case "ne":
		// ne "" is allowed: friends whose value is not empty (i.e. set).
	case "before", "after":
		if _, err := parseDateValue(c.Value); err != nil {
			return errAt(join(path, "value"), "%v", err)
		}
	default:
		if strings.TrimSpace(c.Value) == "" {
			return errAt(join(path, "value"), "%s needs a value", c.Op)
		}
	}
	if len(c.Value) > 1000 || !utf8.ValidString(c.Value) {
		return errAt(join(path, "value"), "not valid text of at most 1000 bytes")
	}
	return nil
}

// dateValue is a date operand: an absolute date, or a number of days from today.
type dateValue struct {
	abs      string // YYYY-MM-DD, or "" when relative
	relative int    // days from today
}

var relDate = regexp.MustCompile(`^([+-])([0-9]{1,5})([dw])$`)

func parseDateValue(s string) (dateValue, error) {
	s = strings.TrimSpace(s)
	if s == "today" {
		return dateValue{}, nil
	}
	if m := relDate.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[2])
		if m[3] == "w" {
			n *= 7
		}
		if m[1] == "-" {
			n = -n
		}
		return dateValue{relative: n}, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return dateValue{}, fmt.Errorf("%q is not a date: write YYYY-MM-DD, today, or days from today like -30d or +7d", s)
	}
	return dateValue{abs: t.Format(time.DateOnly)}, nil
}

// on returns the date as YYYY-MM-DD, taking now in loc for relative dates.
func (v dateValue) on(now time.Time, loc *time.Location) string {
	if v.abs != "" {
		return v.abs
	}
	y, m, d := now.In(loc).Date()
	return time.Date(y, m, d+v.relative, 12, 0, 0, 0, time.UTC).Format(time.DateOnly)
}

// Duration is a span of time written as "90s", "15m", "36h", "7d" or "2w" (or several,
// like "1d12h"). A day is 24 hours.
type Duration time.Duration

var durationUnits = []struct {
	suffix string
	d      time.Duration
}{
	{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second},
}

// ParseDuration parses the text form of a Duration.
func ParseDuration(s string) (Duration, error) {
	orig := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i == len(s) || i > 9 {
			return 0, fmt.Errorf("duration %q: write a whole number and a unit, like 90s, 15m, 36h, 7d, 2w", orig)
		}
		n, _ := strconv.ParseInt(s[:i], 10, 64)
		unit := time.Duration(0)
		for _, u := range durationUnits {
			if s[i:i+1] == u.suffix {
				unit = u.d
			}
		}
		if unit == 0 {
			return 0, fmt.Errorf("duration %q: unit %q is not one of s, m, h, d, w", orig, s[i:i+1])
		}
		total += time.Duration(n) * unit
		if total > 100*365*24*time.Hour {
			return 0, fmt.Errorf("duration %q: too long", orig)
		}
		s = s[i+1:]
	}
	if total <= 0 {
		return 0, fmt.Errorf("duration %q: must be positive", orig)
	}
	return Duration(total), nil
}

// String writes the duration in the largest units that fit, e.g. "7d", "1d12h".
func (d Duration) String() string {
	if d <= 0 || time.Duration(d)%time.Second != 0 {
		return time.Duration(d).String()
	}
	rest := time.Duration(d)
	var b strings.Builder
	for _, u := range durationUnits {
		if n := rest / u.d; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10))
			b.WriteString(u.suffix)
			rest -= n * u.d
		}
	}
	return b.String()
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}
