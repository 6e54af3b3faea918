package setup

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/autoreply"
	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/template"
)

// Services are what Apply and Export read and write through; all but Coupons are
// required.
type Services struct {
	Friends     *friend.Service
	Scenarios   *scenario.Service
	AutoReplies *autoreply.Service
	Coupons     *coupon.Service // nil: a file with coupons is refused
}

// Options change what Apply does.
type Options struct {
	// Prune deletes the channel's scenarios, auto-replies, segments and templates that the
	// file does not mention. Tags, fields and coupons are never deleted: they hold
	// friends' data (values, issued codes).
	Prune bool
	// DryRun applies in a transaction that is then rolled back: the summary says what
	// applying would do, and nothing changes.
	DryRun bool
}

var errDryRun = errors.New("setup: dry run")

// Apply makes the channel hold what the file declares, creating and updating entries by
// key, in one transaction: fields, tags, templates, segments, coupons, scenarios (saved
// together, so they may refer to each other), auto-replies, then with Prune the
// deletions.
//
// Every problem of the file, on its own and in what it refers to, is collected first; if
// there is any, Apply changes nothing and returns them as message.Problems.
func Apply(ctx context.Context, db *store.DB, svc Services, channelID string, f *File, opt Options) (Summary, error) {
	var sum Summary
	err := db.WriteTx(ctx, func(tx *store.Tx) error {
		// WriteTx may run this again after a busy database: start afresh each time.
		a := &applier{ctx: ctx, tx: tx, svc: svc, ch: channelID, f: f, opt: opt, checker: f.check(svc)}
		if err := a.run(); err != nil {
			return err
		}
		if len(a.ps) > 0 {
			return a.ps
		}
		sum = a.sum
		if opt.DryRun {
			return errDryRun
		}
		return nil
	})
	if errors.Is(err, errDryRun) {
		sum.DryRun = true
		return sum, nil
	}
	if err != nil {
		return Summary{}, err
	}
	return sum, nil
}

type applier struct {
	*checker
	ctx context.Context
	tx  *store.Tx
	svc Services
	ch  string
	loc *time.Location // the channel's, for coupons' times
	f   *File
	opt Options
	sum Summary

	scenarioKeys map[string]bool // scenarios that exist once the file is applied
	deferred     []string        // segments that name a scenario: saved after scenarios
	replies      map[string]autoreply.Rule
}

func (a *applier) run() error {
	loc, err := channelZone(a.ctx, a.tx, a.ch)
	if err != nil {
		return err
	}
	a.loc = loc
	a.scenarioKeys = map[string]bool{}
	for k := range a.f.Scenarios {
		a.scenarioKeys[k] = true
	}
	if !a.opt.Prune {
		existing, err := a.svc.Scenarios.List(a.ctx, a.ch)
		if err != nil {
			return err
		}
		for _, sc := range existing {
			a.scenarioKeys[sc.Key] = true
		}
	}
	for _, step := range []func() error{a.fields, a.tags, a.templates, a.segments, a.coupons, a.couponRefs, a.scenarios, a.autoReplies, a.prune} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) fields() error {
	for i, fd := range a.f.Fields {
		if a.bad["fields."+fd.Key] {
			continue
		}
		want := friend.Field{ChannelID: a.ch, Key: fd.Key, Label: fd.Label, Type: friend.FieldType(fd.Type),
			Choices: fd.Choices, Purpose: fd.Purpose, Sensitivity: friend.Sensitivity(fd.Sensitivity), RetentionDays: fd.RetentionDays}
		if want.Sensitivity == "" {
			want.Sensitivity = friend.Normal
		}
		old, err := a.svc.Friends.FieldByKey(a.ctx, a.tx, a.ch, fd.Key)
		action := Updated
		switch {
		case errors.Is(err, store.ErrNotFound):
			action = Created
		case err != nil:
			return err
		case old.Label == want.Label && old.Type == want.Type && slices.Equal(old.Choices, want.Choices) &&
			old.Purpose == want.Purpose && old.Sensitivity == want.Sensitivity && old.RetentionDays == want.RetentionDays:
			a.sum.note(KindFields, fd.Key, Unchanged)
			continue
		}
		if _, err := a.svc.Friends.DefineField(a.ctx, a.tx, want); errors.Is(err, friend.ErrInvalid) {
			a.add(fmt.Sprintf("fields[%d]", i), "項目を保存できません: "+err.Error(), err.Error())
			continue
		} else if err != nil {
			return err
		}
		a.sum.note(KindFields, fd.Key, action)
	}
	return nil
}

func (a *applier) tags() error {
	done := map[string]bool{}
	for _, name := range a.f.Tags {
		name = strings.TrimSpace(name)
		if a.bad["tags."+name] || done[name] {
			continue
		}
		done[name] = true
		_, err := a.svc.Friends.TagByName(a.ctx, a.tx, a.ch, name)
		switch {
		case err == nil:
			a.sum.note(KindTags, name, Unchanged)
		case errors.Is(err, store.ErrNotFound):
			if _, err := a.svc.Friends.CreateTag(a.ctx, a.tx, a.ch, name); err != nil {
				return err
			}
			a.sum.note(KindTags, name, Created)
		default:
			return err
		}
	}
	return nil
}

func (a *applier) templates() error {
	for _, key := range sortedKeys(a.f.Templates) {
		path := "templates." + key
		if a.bad[path] {
			continue
		}
		t := a.f.Templates[key]
		body := message.Template{Messages: t.Messages}
		old, err := template.Get(a.ctx, a.tx, a.ch, key)
		action := Updated
		switch {
		case errors.Is(err, store.ErrNotFound):
			action = Created
		case err != nil:
			return err
		case old.Name == t.Name && canonical(old.Body) == canonical(body):
			a.sum.note(KindTemplates, key, Unchanged)
			continue
		}
		var ps message.Problems
		if _, err := template.Save(a.ctx, a.tx, a.ch, key, t.Name, body); errors.As(err, &ps) {
			a.addAll(path, ps)
			continue
		} else if err != nil {
			return err
		}
		a.sum.note(KindTemplates, key, action)
	}
	return nil
}

func (a *applier) segments() error {
	for _, key := range sortedKeys(a.f.Segments) {
		path := "segments." + key
		if a.bad[path] {
			continue
		}
		n := len(a.ps)
		filter := a.f.Segments[key].Filter.Filter
		if err := a.checkFilter(path+".filter", filter, false); err != nil {
			return err
		}
		switch {
		case len(a.ps) > n:
		case namesScenario(filter):
			a.deferred = append(a.deferred, key)
		default:
			if err := a.saveSegment(key); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *applier) saveSegment(key string) error {
	s := a.f.Segments[key]
	old, err := segment.GetSegment(a.ctx, a.tx, a.ch, key)
	action := Updated
	switch {
	case errors.Is(err, store.ErrNotFound):
		action = Created
	case err != nil:
		return err
	case old.Name == s.Name && canonical(old.Filter) == canonical(s.Filter.Filter):
		a.sum.note(KindSegments, key, Unchanged)
		return nil
	}
	_, err = segment.SaveSegment(a.ctx, a.tx, segment.Saved{ChannelID: a.ch, Key: key, Name: s.Name, Filter: s.Filter.Filter})
	var se *segment.Error
	if errors.As(err, &se) {
		a.filter("segments."+key, err)
		return nil
	}
	if err != nil {
		return err
	}
	a.sum.note(KindSegments, key, action)
	return nil
}

func (a *applier) scenarios() error {
	var changed []scenario.Scenario
	var actions []Action
	for _, key := range sortedKeys(a.f.Scenarios) {
		path := "scenarios." + key
		if a.bad[path] {
			continue
		}
		n := len(a.ps)
		sc := a.f.Scenarios[key]
		if err := a.checkScenario(path, sc.Definition); err != nil {
			return err
		}
		if len(a.ps) > n {
			continue
		}
		enabled := sc.Enabled == nil || *sc.Enabled
		old, err := a.svc.Scenarios.Get(a.ctx, a.tx, a.ch, key)
		action := Updated
		switch {
		case errors.Is(err, store.ErrNotFound):
			action = Created
		case err != nil:
			return err
		case old.Enabled == enabled && canonical(old.Definition) == canonical(sc.Definition):
			a.sum.note(KindScenarios, key, Unchanged)
			continue
		}
		changed = append(changed, scenario.Scenario{ChannelID: a.ch, Key: key, Definition: sc.Definition, Enabled: enabled})
		actions = append(actions, action)
	}
	if len(a.ps) > 0 {
		// Nothing will be kept, and SaveAll would stop at its first problem: the problems
		// found so far are the answer.
		return nil
	}
	if len(changed) > 0 {
		_, err := a.svc.Scenarios.SaveAll(a.ctx, a.tx, changed)
		if errors.Is(err, scenario.ErrInvalid) {
			a.add("scenarios", "シナリオを保存できません: "+err.Error(), err.Error())
			return nil
		}
		if err != nil {
			return err
		}
	}
	for i, sc := range changed {
		a.sum.note(KindScenarios, sc.Key, actions[i])
	}
	for _, key := range a.deferred {
		if err := a.saveSegment(key); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) autoReplies() error {
	existing, err := a.svc.AutoReplies.List(a.ctx, a.ch)
	if err != nil {
		return err
	}
	a.replies = map[string]autoreply.Rule{}
	for _, r := range existing {
		a.replies[r.Key] = r
	}
	for _, key := range sortedKeys(a.f.AutoReplies) {
		path := "autoreplies." + key
		if a.bad[path] {
			continue
		}
		r := rule(a.ch, key, a.f.AutoReplies[key])
		action := Created
		if old, ok := a.replies[key]; ok {
			if sameRule(old, r) {
				a.sum.note(KindAutoReplies, key, Unchanged)
				continue
			}
			action = Updated
		}
		var ps message.Problems
		if _, err := a.svc.AutoReplies.Save(a.ctx, a.tx, r); errors.As(err, &ps) {
			a.addAll(path, ps)
			continue
		} else if err != nil {
			return err
		}
		a.sum.note(KindAutoReplies, key, action)
	}
	return nil
}

func (a *applier) prune() error {
	if !a.opt.Prune || len(a.ps) > 0 {
		return nil
	}
	for _, key := range slices.Sorted(maps.Keys(a.replies)) {
		if _, ok := a.f.AutoReplies[key]; !ok {
			if err := a.svc.AutoReplies.Delete(a.ctx, a.tx, a.ch, key); err != nil {
				return err
			}
			a.sum.note(KindAutoReplies, key, Deleted)
		}
	}
	scs, err := a.svc.Scenarios.List(a.ctx, a.ch)
	if err != nil {
		return err
	}
	for _, sc := range scs {
		if _, ok := a.f.Scenarios[sc.Key]; !ok {
			if err := a.svc.Scenarios.Delete(a.ctx, a.tx, a.ch, sc.Key); err != nil {
				return err
			}
			a.sum.note(KindScenarios, sc.Key, Deleted)
		}
	}
	segs, err := segment.ListSegments(a.ctx, a.tx, a.ch)
	if err != nil {
		return err
	}
	for _, s := range segs {
		if _, ok := a.f.Segments[s.Key]; !ok {
			if err := segment.DeleteSegment(a.ctx, a.tx, a.ch, s.Key); err != nil {
				return err
			}
			a.sum.note(KindSegments, s.Key, Deleted)
		}
	}
	ts, err := template.List(a.ctx, a.tx, a.ch)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if _, ok := a.f.Templates[t.Key]; !ok {
			// Scenarios that send it were refused above (templateRef), so a refusal here
			// is a scenario the file does not know of: still, say it, not fail.
			var ps message.Problems
			if err := template.Delete(a.ctx, a.tx, a.ch, t.Key, a.svc.Scenarios.TemplateUsers); errors.As(err, &ps) {
				a.addAll("templates."+t.Key, ps)
				continue
			} else if err != nil {
				return err
			}
			a.sum.note(KindTemplates, t.Key, Deleted)
		}
	}
	return nil
}

// rule is the auto-reply an entry declares.
func rule(channelID, key string, e AutoReply) autoreply.Rule {
	r := autoreply.Rule{ChannelID: channelID, Key: key, Name: e.Name, Match: e.Match, Keywords: e.Keywords,
		Priority: e.Priority, Template: message.Template{Messages: e.Messages}, Enabled: e.Enabled == nil || *e.Enabled}
	if r.Match == "" {
		r.Match = autoreply.MatchExact
	}
	if e.Window != nil {
		r.Window = &autoreply.Window{Days: e.Window.Days, From: e.Window.From, To: e.Window.To}
	}
	return r
}

func sameRule(a, b autoreply.Rule) bool {
	sameWindow := (a.Window == nil) == (b.Window == nil)
	if sameWindow && a.Window != nil {
		sameWindow = slices.Equal(a.Window.Days, b.Window.Days) && a.Window.From == b.Window.From && a.Window.To == b.Window.To
	}
	return sameWindow && a.Name == b.Name && a.Match == b.Match && slices.Equal(a.Keywords, b.Keywords) &&
		a.Priority == b.Priority && a.Enabled == b.Enabled && canonical(a.Template) == canonical(b.Template)
}

// canonical is v as the database keeps it (JSON, read back and written again), so that a
// value read from a file compares equal to the same value read from the database.
func canonical[T any](v T) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "error: " + err.Error() // never equal to a stored value
	}
	var back T
	if err := json.Unmarshal(b, &back); err != nil {
		return "error: " + err.Error()
	}
	b, err = json.Marshal(back)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

// channelZone checks that the channel exists and returns its time zone.
func channelZone(ctx context.Context, q store.Querier, channelID string) (*time.Location, error) {
	var tz string
	err := q.QueryRowContext(ctx, "SELECT time_zone FROM channels WHERE id = ?", channelID).Scan(&tz)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("setup: channel %q: %w", channelID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("setup: channel: %w", err)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("setup: channel %q has time zone %q: %w", channelID, tz, err)
	}
	return loc, nil
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
