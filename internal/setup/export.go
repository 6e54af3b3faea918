package setup

import (
	"context"
	"slices"
	"strings"

	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/template"
)

// Export reads what the channel is set up with as a File. Written with Marshal and
// applied to another channel, it sets that channel up the same; exported from there it
// gives the same bytes. Friends and their data are not part of it, nor are coupon codes.
func Export(ctx context.Context, db *store.DB, svc Services, channelID string) (*File, error) {
	loc, err := channelZone(ctx, db, channelID)
	if err != nil {
		return nil, err
	}
	f := &File{}

	tags, err := svc.Friends.Tags(ctx, channelID)
	if err != nil {
		return nil, err
	}
	for _, t := range tags {
		f.Tags = append(f.Tags, t.Name)
	}
	slices.Sort(f.Tags) // the engines' collations order names differently

	fields, err := svc.Friends.Fields(ctx, channelID)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(fields, func(a, b friend.Field) int { return strings.Compare(a.Key, b.Key) })
	for _, fd := range fields {
		e := Field{Key: fd.Key, Label: fd.Label, Type: string(fd.Type), Choices: fd.Choices, Purpose: fd.Purpose,
			RetentionDays: fd.RetentionDays}
		if fd.Sensitivity != friend.Normal {
			e.Sensitivity = string(fd.Sensitivity)
		}
		f.Fields = append(f.Fields, e)
	}

	ts, err := template.List(ctx, db, channelID)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		if f.Templates == nil {
			f.Templates = map[string]Template{}
		}
		f.Templates[t.Key] = Template{Name: t.Name, Messages: t.Body.Messages}
	}

	segs, err := segment.ListSegments(ctx, db, channelID)
	if err != nil {
		return nil, err
	}
	for _, s := range segs {
		if f.Segments == nil {
			f.Segments = map[string]Segment{}
		}
		f.Segments[s.Key] = Segment{Name: s.Name, Filter: Filter{Filter: s.Filter, set: true}}
	}

	if svc.Coupons != nil {
		cs, err := svc.Coupons.List(ctx, channelID)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if f.Coupons == nil {
				f.Coupons = map[string]Coupon{}
			}
			e := Coupon{Title: c.Title, Description: c.Description, CodePolicy: c.CodePolicy, SharedCode: c.SharedCode,
				ValidFrom: formatTime(c.ValidFrom, loc), ValidUntil: formatTime(c.ValidUntil, loc), Enabled: disabled(c.Enabled)}
			if c.PerFriendLimit != 1 {
				e.PerFriendLimit = c.PerFriendLimit
			}
			f.Coupons[c.Key] = e
		}
	}

	scs, err := svc.Scenarios.List(ctx, channelID)
	if err != nil {
		return nil, err
	}
	for _, sc := range scs {
		if f.Scenarios == nil {
			f.Scenarios = map[string]Scenario{}
		}
		f.Scenarios[sc.Key] = Scenario{Definition: sc.Definition, Enabled: disabled(sc.Enabled)}
	}

	rules, err := svc.AutoReplies.List(ctx, channelID)
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		if f.AutoReplies == nil {
			f.AutoReplies = map[string]AutoReply{}
		}
		e := AutoReply{Name: r.Name, Match: r.Match, Keywords: r.Keywords, Priority: r.Priority,
			Messages: r.Template.Messages, Enabled: disabled(r.Enabled)}
		if w := r.Window; w != nil {
			e.Window = &Window{Days: w.Days, From: w.From, To: w.To}
		}
		f.AutoReplies[r.Key] = e
	}
	return f, nil
}

// disabled writes enabled only when it is not the default.
func disabled(enabled bool) *bool {
	if enabled {
		return nil
	}
	return &enabled
}
