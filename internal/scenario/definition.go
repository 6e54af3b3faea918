// Package scenario runs step scenarios (ステップ配信): a trigger enrols a friend, then
// each step runs at its time, checks its condition, sends its messages through the
// delivery outbox and applies its actions, until the steps run out or a stop rule ends
// the run.
//
// A step is known by its key, never its position, and an enrolment remembers the key of
// the step it waits for and of the last step it ran. That is what makes editing a
// running scenario safe (docs/scenarios.md states the rule):
//   - a friend waiting for a step keeps the time it was scheduled for, and receives the
//     step as it reads when it runs;
//   - if the step they wait for was deleted, they move on to the step that now follows
//     the last step they ran; a step inserted before that point is not sent to them;
//   - steps added after their position are received as usual.
package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/richmenu"
	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/template"
)

// Trigger types.
const (
	TriggerFollow   = "follow"   // the friend adds the account
	TriggerTag      = "tag"      // a tag is added to the friend
	TriggerField    = "field"    // a custom field is set (to any value, or to Value)
	TriggerKeyword  = "keyword"  // the friend sends a text message
	TriggerPostback = "postback" // the friend taps a postback action
	TriggerManual   = "manual"   // staff or the API start it
	// TriggerScenario: only another scenario's `start` action starts it. Any scenario can
	// be started that way; this type says it has no trigger of its own.
	TriggerScenario = "scenario"
)

// What a re-follow (following again after a block) does to a follow-triggered scenario.
const (
	RefollowRestart = "restart" // begin again at the first step
	RefollowResume  = "resume"  // continue at the step where the block stopped it
	RefollowIgnore  = "ignore"  // nothing: the friend does not get it again
)

// Re-entry: whether a friend whose run has ended can be enrolled again by the trigger.
const (
	ReentryOnce     = "once"      // never again
	ReentryAfterEnd = "after_end" // again once the previous run completed or stopped
)

// Definition is a scenario as staff write it (YAML in files, JSON in the database).
type Definition struct {
	Name    string  `json:"name,omitempty" yaml:"name,omitempty"`
	Trigger Trigger `json:"trigger" yaml:"trigger"`
	Reentry string  `json:"reentry,omitempty" yaml:"reentry,omitempty"`
	// QuietHours like "21:00-09:00": a step due inside them is postponed to their end.
	// Empty takes the account's setting; "off" sends at any hour.
	QuietHours string `json:"quiet_hours,omitempty" yaml:"quiet_hours,omitempty"`
	Stop       Stop   `json:"stop,omitzero" yaml:"stop,omitempty"`
	Steps      []Step `json:"steps" yaml:"steps"`
}

// Trigger says what enrols a friend.
type Trigger struct {
	Type     string `json:"type" yaml:"type"`
	Refollow string `json:"refollow,omitempty" yaml:"refollow,omitempty"` // follow: restart (default), resume, ignore
	Tag      string `json:"tag,omitempty" yaml:"tag,omitempty"`           // tag: its name
	Field    string `json:"field,omitempty" yaml:"field,omitempty"`       // field: its key
	// Value: for field, the value that triggers (empty: any); for keyword, the text;
	// for postback, the data.
	Value string `json:"value,omitempty" yaml:"value,omitempty"`
	// Match: for keyword, exact (default) or contains; compared after NFKC
	// normalisation and case folding, so ＡＢＣ matches abc.
	Match string `json:"match,omitempty" yaml:"match,omitempty"`
}

// Stop lists what ends a run early, besides a block (which always does).
type Stop struct {
	Tags      []string `json:"tags,omitempty" yaml:"tags,omitempty"`           // one of these tags is added
	Scenarios []string `json:"scenarios,omitempty" yaml:"scenarios,omitempty"` // one of these scenarios starts
}

// Step is one step: when it runs, whether it applies, what it sends and does.
type Step struct {
	Key      string            `json:"key" yaml:"key"`
	Timing   Timing            `json:"timing,omitzero" yaml:"timing,omitempty"`
	If       *segment.Filter   `json:"if,omitempty" yaml:"if,omitempty"`
	Messages []message.Message `json:"messages,omitempty" yaml:"messages,omitempty"`
	// Template names a saved template (internal/template) of the channel to send instead
	// of Messages. It is read when the step runs, so a friend gets the template as it
	// reads then, as with an edited step; a template in use cannot be deleted.
	Template string  `json:"template,omitempty" yaml:"template,omitempty"`
	Actions  Actions `json:"actions,omitzero" yaml:"actions,omitempty"`
}

// sends reports whether the step has messages to send.
func (st Step) sends() bool { return len(st.Messages) > 0 || st.Template != "" }

// Timing says when a step runs. At most one form:
//   - {after: 1d}: that long after the previous step ran (or after enrolment for the
//     first step); {after: 3d, from: start}: after enrolment. Empty: right away.
//   - {day: 2, at: "10:00"}: on the second day after the enrolment day (day 0 is the
//     enrolment day itself) at 10:00 in the account's time zone.
//   - {field: next_visit, days: -1, at: "10:00"}: the day before the date held in the
//     friend's next_visit field, at 10:00 (days: 3 is three days after).
type Timing struct {
	After segment.Duration `json:"after,omitempty" yaml:"after,omitempty"`
	From  string           `json:"from,omitempty" yaml:"from,omitempty"` // previous (default) | start
	Day   *int             `json:"day,omitempty" yaml:"day,omitempty"`
	Field string           `json:"field,omitempty" yaml:"field,omitempty"`
	Days  int              `json:"days,omitempty" yaml:"days,omitempty"`
	At    string           `json:"at,omitempty" yaml:"at,omitempty"` // HH:MM; default 10:00 for field timing
}

// Actions change the friend's data or other scenarios when the step runs.
type Actions struct {
	AddTags    []string          `json:"add_tags,omitempty" yaml:"add_tags,omitempty"`
	RemoveTags []string          `json:"remove_tags,omitempty" yaml:"remove_tags,omitempty"`
	SetFields  map[string]string `json:"set_fields,omitempty" yaml:"set_fields,omitempty"`
	Start      []string          `json:"start,omitempty" yaml:"start,omitempty"` // scenario keys
	Stop       []string          `json:"stop,omitempty" yaml:"stop,omitempty"`   // scenario keys
	// RichMenu links a rich menu to the friend (its ID, richmenu-...), or with
	// RichMenuDefault removes the one linked to them, so they see the account's default.
	// LINE is called after the step commits (internal/richmenu).
	RichMenu string `json:"rich_menu,omitempty" yaml:"rich_menu,omitempty"`
}

// RichMenuDefault, as Actions.RichMenu, unlinks the friend's own rich menu.
const RichMenuDefault = "default"

func (a Actions) empty() bool { return a.count() == 0 }

func (a Actions) count() int {
	n := len(a.AddTags) + len(a.RemoveTags) + len(a.SetFields) + len(a.Start) + len(a.Stop)
	if a.RichMenu != "" {
		n++
	}
	return n
}

// Limits keep one scenario something a person can read and the runner can hold.
const (
	maxSteps   = 100
	maxActions = 20
	maxDelay   = 400 * 24 * time.Hour
	maxDay     = 400
)

var keyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ValidKey reports whether s can name a scenario or a step.
func ValidKey(s string) bool { return keyPattern.MatchString(s) }

// Problem is one thing to fix in a definition, in Japanese and English.
type Problem = message.Problem

// Problems is every problem found, in the order of the definition.
type Problems = message.Problems

type checker struct{ ps Problems }

func (c *checker) add(path, ja, en string, args ...any) {
	c.ps = append(c.ps, Problem{Path: path, JA: fmt.Sprintf(ja, args...), EN: fmt.Sprintf(en, args...)})
}

// Validate checks the definition on its own (references to tags, fields and other
// scenarios are checked when it is saved). It returns nil if it is valid.
func (d Definition) Validate() Problems {
	c := &checker{}
	switch d.Trigger.Type {
	case TriggerFollow:
		switch d.Trigger.Refollow {
		case "", RefollowRestart, RefollowResume, RefollowIgnore:
		default:
			c.add("trigger.refollow", "restart、resume、ignore のいずれかにしてください", "must be restart, resume or ignore")
		}
	case TriggerTag:
		if strings.TrimSpace(d.Trigger.Tag) == "" {
			c.add("trigger.tag", "タグ名を指定してください", "name the tag")
		}
	case TriggerField:
		if d.Trigger.Field == "" {
			c.add("trigger.field", "項目のキーを指定してください", "name the field's key")
		}
	case TriggerKeyword:
		if strings.TrimSpace(d.Trigger.Value) == "" || len([]rune(d.Trigger.Value)) > 100 {
			c.add("trigger.value", "キーワードを100文字以内で指定してください", "give the keyword, at most 100 characters")
		}
		if d.Trigger.Match != "" && d.Trigger.Match != "exact" && d.Trigger.Match != "contains" {
			c.add("trigger.match", "exact か contains にしてください", "must be exact or contains")
		}
	case TriggerPostback:
		if d.Trigger.Value == "" || len(d.Trigger.Value) > 300 {
			c.add("trigger.value", "ポストバックのデータを300文字以内で指定してください", "give the postback data, at most 300 characters")
		}
	case TriggerManual, TriggerScenario:
	default:
		c.add("trigger.type", "follow、tag、field、keyword、postback、manual、scenario のいずれかにしてください",
			"must be follow, tag, field, keyword, postback, manual or scenario")
	}
	if d.Trigger.Refollow != "" && d.Trigger.Type != TriggerFollow {
		c.add("trigger.refollow", "refollow は follow トリガーでのみ使えます", "refollow applies to the follow trigger only")
	}
	switch d.Reentry {
	case "", ReentryOnce, ReentryAfterEnd:
	default:
		c.add("reentry", "once か after_end にしてください", "must be once or after_end")
	}
	if d.QuietHours != "" && d.QuietHours != "off" {
		if _, err := ParseQuietHours(d.QuietHours); err != nil {
			c.add("quiet_hours", "「21:00-09:00」の形で書いてください（off で無効）", "write it as 21:00-09:00 (off: none)")
		}
	}
	for i, t := range d.Stop.Tags {
		if strings.TrimSpace(t) == "" {
			c.add(fmt.Sprintf("stop.tags[%d]", i), "タグ名が空です", "the tag name is empty")
		}
	}
	for i, k := range d.Stop.Scenarios {
		if !ValidKey(k) {
			c.add(fmt.Sprintf("stop.scenarios[%d]", i), "シナリオのキーが正しくありません", "not a valid scenario key")
		}
	}
	switch n := len(d.Steps); {
	case n == 0:
		c.add("steps", "ステップを1つ以上入れてください", "add at least one step")
	case n > maxSteps:
		c.add("steps", "ステップは%d個までです", "at most %d steps", maxSteps)
	}
	seen := map[string]bool{}
	for i, st := range d.Steps {
		path := fmt.Sprintf("steps[%d]", i)
		if !ValidKey(st.Key) {
			c.add(path+".key", "キーは英小文字・数字・_・- で64文字以内にしてください", "the key must be lower-case letters, digits, _ and -, at most 64")
		} else if seen[st.Key] {
			c.add(path+".key", "キー「%s」が重複しています", "key %q is used twice", st.Key)
		}
		seen[st.Key] = true
		c.timing(path+".timing", st.Timing, i == 0)
		if st.If != nil {
			if err := st.If.Validate(); err != nil {
				c.add(path+".if", "条件が正しくありません: %v", "the condition is not valid: %v", err)
			}
		}
		if !st.sends() && st.Actions.empty() {
			c.add(path, "メッセージ（messages か template）かアクションを入れてください", "give messages (messages or template) or actions")
		}
		if st.Template != "" {
			switch {
			case len(st.Messages) > 0:
				c.add(path+".template", "ステップ「%s」: template と messages はどちらか一方にしてください",
					"step %q: give either template or messages, not both", st.Key)
			case !template.ValidKey(st.Template):
				c.add(path+".template", "ステップ「%s」: テンプレートのキーが正しくありません（英小文字・数字・_・- で64文字以内）",
					"step %q: not a valid template key (lower-case letters, digits, _ and -, at most 64)", st.Key)
			}
		}
		if len(st.Messages) > 0 {
			for _, p := range (message.Template{Messages: st.Messages}).Validate() {
				p.Path = path + "." + p.Path
				c.ps = append(c.ps, p)
			}
		}
		c.actions(path+".actions", st.Actions)
	}
	if len(c.ps) == 0 {
		return nil
	}
	return c.ps
}

func (c *checker) timing(path string, t Timing, first bool) {
	forms := 0
	if t.After != 0 || t.From != "" {
		forms++
	}
	if t.Day != nil {
		forms++
	}
	if t.Field != "" {
		forms++
	}
	if forms > 1 {
		c.add(path, "after・day・field のどれか1つにしてください", "use one of after, day or field")
		return
	}
	if t.From != "" && t.From != "previous" && t.From != "start" {
		c.add(path+".from", "previous か start にしてください", "must be previous or start")
	}
	if time.Duration(t.After) > maxDelay {
		c.add(path+".after", "待ち時間は400日までです", "at most 400 days")
	}
	if t.Day != nil && (*t.Day < 0 || *t.Day > maxDay) {
		c.add(path+".day", "0〜%d日目で指定してください", "must be from 0 to %d", maxDay)
	}
	if t.Days != 0 && t.Field == "" {
		c.add(path+".days", "days は field と一緒に使います", "days goes with field")
	}
	if t.Days < -maxDay || t.Days > maxDay {
		c.add(path+".days", "-%d〜%d日で指定してください", "must be from -%d to %d", maxDay, maxDay)
	}
	if t.At != "" {
		if t.Day == nil && t.Field == "" {
			c.add(path+".at", "at は day か field と一緒に使います", "at goes with day or field")
		}
		if _, err := parseClock(t.At); err != nil {
			c.add(path+".at", "「10:00」の形で書いてください", "write the time as 10:00")
		}
	} else if t.Day != nil {
		c.add(path+".at", "時刻を「10:00」の形で指定してください", "give the time, as 10:00")
	}
}

func (c *checker) actions(path string, a Actions) {
	if n := a.count(); n > maxActions {
		c.add(path, "アクションは%d個までです", "at most %d actions", maxActions)
	}
	for i, t := range append(append([]string{}, a.AddTags...), a.RemoveTags...) {
		if strings.TrimSpace(t) == "" {
			c.add(fmt.Sprintf("%s.tags[%d]", path, i), "タグ名が空です", "the tag name is empty")
		}
	}
	for k := range a.SetFields {
		if k == "" {
			c.add(path+".set_fields", "項目のキーが空です", "a field key is empty")
		}
	}
	for i, k := range append(append([]string{}, a.Start...), a.Stop...) {
		if !ValidKey(k) {
			c.add(fmt.Sprintf("%s.scenarios[%d]", path, i), "シナリオのキーが正しくありません", "not a valid scenario key")
		}
	}
	if a.RichMenu != "" && a.RichMenu != RichMenuDefault && !richmenu.ValidID(a.RichMenu) {
		c.add(path+".rich_menu",
			"リッチメニューIDは「richmenu-」に続けて32桁の英数字（0〜9・a〜f。LINE Official Account Manager や API で確認できるID）にしてください。個別のメニューを外してデフォルトに戻すときは default と書きます",
			"give a rich menu ID as LINE shows it (richmenu- and 32 hex digits), or default to remove the friend's own menu so they see the default one")
	}
}

// clockTime is a time of day in minutes after midnight.
type clockTime int

func parseClock(s string) (clockTime, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 {
		return 0, fmt.Errorf("time %q: write HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("time %q: write HH:MM between 00:00 and 23:59", s)
	}
	return clockTime(hh*60 + mm), nil
}

func (c clockTime) String() string { return fmt.Sprintf("%02d:%02d", c/60, c%60) }

// QuietHours is a daily window in which nothing is sent; From > To wraps midnight.
type QuietHours struct{ From, To clockTime }

// ParseQuietHours reads "21:00-09:00".
func ParseQuietHours(s string) (QuietHours, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return QuietHours{}, fmt.Errorf("quiet hours %q: write them as 21:00-09:00", s)
	}
	from, err := parseClock(strings.TrimSpace(a))
	if err != nil {
		return QuietHours{}, err
	}
	to, err := parseClock(strings.TrimSpace(b))
	if err != nil {
		return QuietHours{}, err
	}
	if from == to {
		return QuietHours{}, fmt.Errorf("quiet hours %q: start and end are the same", s)
	}
	return QuietHours{From: from, To: to}, nil
}

func (q QuietHours) String() string { return q.From.String() + "-" + q.To.String() }

// ParseDefinition reads a definition written in YAML or JSON; unknown keys are errors (a
// misspelt `stop:` must not silently drop a stop rule). It does not validate.
func ParseDefinition(data []byte) (d Definition, err error) {
	defer func() { // staff type this; a panic in the YAML library must not end the server
		if r := recover(); r != nil {
			d, err = Definition{}, fmt.Errorf("scenario: unreadable YAML (%v)", r)
		}
	}()
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' && json.Valid(t) {
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			return Definition{}, fmt.Errorf("scenario JSON: %w", err)
		}
		return d, nil
	}
	if err := yaml.UnmarshalWithOptions(data, &d, yaml.DisallowUnknownField()); err != nil {
		return Definition{}, fmt.Errorf("scenario YAML: %s", yaml.FormatError(err, false, true))
	}
	return d, nil
}
