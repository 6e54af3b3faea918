package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/template"
)

// The broadcast form's segment builder and message source, and segments in words.

// segForm is the segment part of the broadcast form, as typed.
type segForm struct {
	Mode      string // builder | saved | yaml
	Tags      map[string]bool
	TagMode   string // all | any
	Exclude   map[string]bool
	Fields    []segFieldRow
	Status    string // "" (followers) | blocked | unknown | any
	Within    string // followed within so many days
	Before    string // followed so many days ago or earlier
	Scenario  string
	ScnState  string
	SavedKey  string
	YAML      string
	WhenMode  string // now | later
	Date      string
	Time      string
	Name      string
	Source    string // text | template
	Template  string
	Msg       messageForm
	TagList   []friend.Tag
	FieldList []friend.Field
	Scenarios []scenario.Scenario
	Saved     []segment.Saved
	TplList   []template.Template
	// What the selects offer.
	Ops, Statuses, ScnStates []string
}

type segFieldRow struct{ Key, Op, Value string }

const segFieldRows = 3

func readSegForm(r *http.Request, lang string) segForm {
	f := segForm{Mode: r.PostFormValue("seg_mode"), Tags: map[string]bool{}, Exclude: map[string]bool{},
		TagMode: r.PostFormValue("tag_mode"), Status: r.PostFormValue("status"),
		Within: strings.TrimSpace(r.PostFormValue("within")), Before: strings.TrimSpace(r.PostFormValue("before")),
		Scenario: r.PostFormValue("scn"), ScnState: r.PostFormValue("scn_state"), SavedKey: r.PostFormValue("segment"),
		YAML: r.PostFormValue("seg_yaml"), WhenMode: r.PostFormValue("when"), Date: r.PostFormValue("date"),
		Time: r.PostFormValue("time"), Name: strings.TrimSpace(r.PostFormValue("name")),
		Source: r.PostFormValue("source"), Template: r.PostFormValue("tpl"), Msg: readMessageForm(r, lang)}
	for _, t := range r.PostForm["tag"] {
		f.Tags[t] = true
	}
	for _, t := range r.PostForm["xtag"] {
		f.Exclude[t] = true
	}
	keys, ops, vals := r.PostForm["fkey"], r.PostForm["fop"], r.PostForm["fval"]
	for i := range segFieldRows {
		var row segFieldRow
		if i < len(keys) {
			row.Key = keys[i]
		}
		if i < len(ops) {
			row.Op = ops[i]
		}
		if i < len(vals) {
			row.Value = strings.TrimSpace(vals[i])
		}
		f.Fields = append(f.Fields, row)
	}
	return f
}

// filter builds the segment the form describes.
func (f segForm) filter(r *http.Request, c *Console, q *request) (segment.Filter, []formProblem) {
	lang := q.Lang
	switch f.Mode {
	case "saved":
		s, err := segment.GetSegment(r.Context(), c.DB, q.Channel.ID, f.SavedKey)
		if err != nil {
			return segment.Filter{}, formProblemf(lang, "segment", "bc.seg.nosaved")
		}
		return s.Filter, nil
	case "yaml":
		flt, err := segment.Parse([]byte(f.YAML))
		if err != nil {
			return segment.Filter{}, formProblemf(lang, "seg_yaml", "bc.seg.bad", err.Error())
		}
		return flt, nil
	}
	var parts []segment.Filter
	var tags []segment.Filter
	for _, t := range f.TagList {
		if f.Tags[t.Name] {
			tags = append(tags, segment.Filter{Tag: t.Name})
		}
	}
	if f.TagMode == "any" && len(tags) > 1 {
		parts = append(parts, segment.Filter{Any: tags})
	} else {
		parts = append(parts, tags...)
	}
	var ex []segment.Filter
	for _, t := range f.TagList {
		if f.Exclude[t.Name] {
			ex = append(ex, segment.Filter{Tag: t.Name})
		}
	}
	switch len(ex) {
	case 0:
	case 1:
		parts = append(parts, segment.Filter{Not: &ex[0]})
	default:
		parts = append(parts, segment.Filter{Not: &segment.Filter{Any: ex}})
	}
	for _, row := range f.Fields {
		if row.Key != "" {
			parts = append(parts, segment.Filter{Field: &segment.FieldCond{Key: row.Key, Op: row.Op, Value: row.Value}})
		}
	}
	if f.Status != "" {
		parts = append(parts, segment.Filter{Status: f.Status})
	}
	for _, d := range []struct {
		text, path string
		within     bool
	}{{f.Within, "within", true}, {f.Before, "before", false}} {
		if d.text == "" {
			continue
		}
		n, err := strconv.Atoi(d.text)
		if err != nil || n <= 0 || n > 36500 {
			return segment.Filter{}, formProblemf(lang, d.path, "bc.seg.days.bad")
		}
		dur := segment.Duration(time.Duration(n) * 24 * time.Hour)
		if d.within {
			parts = append(parts, segment.Filter{FollowedWithin: dur})
		} else {
			parts = append(parts, segment.Filter{FollowedBefore: dur})
		}
	}
	if f.Scenario != "" {
		parts = append(parts, segment.Filter{Scenario: &segment.ScenarioCond{Key: f.Scenario, State: f.ScnState}})
	}
	var flt segment.Filter
	switch len(parts) {
	case 0:
	case 1:
		flt = parts[0]
	default:
		flt = segment.Filter{All: parts}
	}
	if err := flt.Validate(); err != nil {
		return segment.Filter{}, formProblemf(lang, "segment", "bc.seg.bad", err.Error())
	}
	return flt, nil
}

// choices fills the lists the builder offers.
func (c *Console) segChoices(r *http.Request, q *request, f *segForm) error {
	ctx := r.Context()
	f.Ops = []string{"eq", "ne", "contains", "prefix", "gt", "gte", "lt", "lte", "before", "after", "set", "unset"}
	f.Statuses = []string{"blocked", "unknown", "any"}
	f.ScnStates = []string{"active", "completed", "stopped", "ever", "never"}
	var err error
	if f.TagList, err = c.Friends.Tags(ctx, q.Channel.ID); err != nil {
		return err
	}
	if f.FieldList, err = c.Friends.Fields(ctx, q.Channel.ID); err != nil {
		return err
	}
	if f.Scenarios, err = c.Scenarios.List(ctx, q.Channel.ID); err != nil {
		return err
	}
	if f.Saved, err = segment.ListSegments(ctx, c.DB, q.Channel.ID); err != nil {
		return err
	}
	f.TplList, err = template.List(ctx, c.DB, q.Channel.ID)
	return err
}

// filterWords says who a segment selects, in words.
func segmentWords(lang string, f segment.Filter) string {
	if f.IsEmpty() {
		return translate(lang, "seg.everyone")
	}
	s := segNodeWords(lang, f, true)
	if !segNamesStatus(f) {
		s += translate(lang, "seg.followersonly")
	}
	return s
}

func segNamesStatus(f segment.Filter) bool {
	if f.Status != "" {
		return true
	}
	for _, sub := range append(append([]segment.Filter{}, f.All...), f.Any...) {
		if segNamesStatus(sub) {
			return true
		}
	}
	return f.Not != nil && segNamesStatus(*f.Not)
}

func segNodeWords(lang string, f segment.Filter, top bool) string {
	tr := func(key string, args ...any) string { return fmt.Sprintf(translate(lang, key), args...) }
	join := func(list []segment.Filter, sep string) string {
		parts := make([]string, len(list))
		for i, sub := range list {
			parts[i] = segNodeWords(lang, sub, false)
		}
		s := strings.Join(parts, translate(lang, sep))
		if !top && len(list) > 1 {
			s = "(" + s + ")"
		}
		return s
	}
	switch {
	case f.All != nil:
		return join(f.All, "seg.and")
	case f.Any != nil:
		return join(f.Any, "seg.or")
	case f.Not != nil:
		return tr("seg.not", segNodeWords(lang, *f.Not, false))
	case f.Tag != "":
		return tr("seg.tag", f.Tag)
	case f.Field != nil && (f.Field.Op == "set" || f.Field.Op == "unset"):
		return tr(fmt.Sprintf("seg.op.%s", f.Field.Op), f.Field.Key)
	case f.Field != nil:
		return tr(fmt.Sprintf("seg.op.%s", f.Field.Op), f.Field.Key, f.Field.Value)
	case f.Status != "":
		return keyed(lang, "seg.status.%s", f.Status)
	case f.FollowedWithin != 0:
		return tr("seg.within", spanWords(lang, f.FollowedWithin))
	case f.FollowedBefore != 0:
		return tr("seg.before", spanWords(lang, f.FollowedBefore))
	case f.Scenario != nil:
		return tr(fmt.Sprintf("seg.scn.%s", f.Scenario.State), f.Scenario.Key)
	}
	return ""
}
