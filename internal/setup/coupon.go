package setup

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/message"
)

// Coupon is an offer of the channel (coupon.Coupon). Imported codes are not part of a
// file: they are imported separately, and stay when the file is applied again.
type Coupon struct {
	Title       string `yaml:"title"`
	Description string `yaml:"description,omitempty"`
	CodePolicy  string `yaml:"code_policy"` // shared | generated | imported
	SharedCode  string `yaml:"shared_code,omitempty"`
	// ValidFrom and ValidUntil are in the account's time zone: "2026-12-01" (midnight),
	// "2026-12-01 10:00", or with an offset (RFC 3339). ValidUntil is exclusive: the
	// coupon can be used until the moment before it.
	ValidFrom      string `yaml:"valid_from"`
	ValidUntil     string `yaml:"valid_until,omitempty"`
	PerFriendLimit int    `yaml:"per_friend_limit,omitempty"` // default 1
	Enabled        *bool  `yaml:"enabled,omitempty"`
}

var timeLayouts = []string{time.DateOnly, "2006-01-02 15:04", "2006-01-02 15:04:05"}

// parseTime reads a time of a coupon in loc; "" is the zero time.
func parseTime(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("not a time")
}

// formatTime writes t in loc in the shortest of parseTime's forms that reads back as t.
func formatTime(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	t = t.In(loc)
	switch {
	case t.Nanosecond() != 0:
		return t.Format(time.RFC3339Nano)
	case t.Second() != 0:
		return t.Format(timeLayouts[2])
	case t.Hour() != 0 || t.Minute() != 0:
		return t.Format(timeLayouts[1])
	}
	return t.Format(time.DateOnly)
}

// couponOf is the coupon an entry declares, its times read in loc.
func couponOf(channelID, key string, e Coupon, loc *time.Location) (coupon.Coupon, message.Problems) {
	var ps message.Problems
	from, err := parseTime(e.ValidFrom, loc)
	if err != nil {
		ps = append(ps, timeProblem("valid_from"))
	}
	until, err := parseTime(e.ValidUntil, loc)
	if err != nil {
		ps = append(ps, timeProblem("valid_until"))
	}
	// The database keeps milliseconds: finer times would never compare unchanged.
	from, until = from.Truncate(time.Millisecond), until.Truncate(time.Millisecond)
	c := coupon.Coupon{ChannelID: channelID, Key: key, Title: e.Title, Description: e.Description,
		CodePolicy: e.CodePolicy, SharedCode: e.SharedCode, ValidFrom: from, ValidUntil: until,
		PerFriendLimit: e.PerFriendLimit, Enabled: e.Enabled == nil || *e.Enabled}
	if c.PerFriendLimit == 0 {
		c.PerFriendLimit = 1 // as coupon.Save takes it
	}
	return c, ps
}

func timeProblem(path string) message.Problem {
	return message.Problem{Path: path,
		JA: "日時は「2026-12-01」「2026-12-01 10:00」のように書いてください（アカウントのタイムゾーン）",
		EN: `write the time as 2026-12-01 or 2026-12-01 10:00 (in the account's time zone)`}
}

func (c *checker) coupon(path, key string, e Coupon) {
	cp, ps := couponOf("-", key, e, time.UTC) // the zone does not change what is valid
	if err := coupon.Validate(cp); err != nil {
		var vps message.Problems
		if !errors.As(err, &vps) {
			vps = message.Problems{{JA: err.Error(), EN: err.Error()}}
		}
		for _, p := range vps {
			switch {
			case p.Path == "key":
				p.Path = ""
			case len(ps) > 0 && (p.Path == "valid_from" || p.Path == "valid_until"):
				continue // the time could not be read: said once
			}
			ps = append(ps, p)
		}
	}
	c.addAll(path, ps)
}

func sameCoupon(a, b coupon.Coupon) bool {
	return a.Title == b.Title && a.Description == b.Description && a.CodePolicy == b.CodePolicy &&
		a.SharedCode == b.SharedCode && a.ValidFrom.Equal(b.ValidFrom) && a.ValidUntil.Equal(b.ValidUntil) &&
		a.PerFriendLimit == b.PerFriendLimit && a.Enabled == b.Enabled
}

func (a *applier) coupons() error {
	if len(a.f.Coupons) == 0 {
		return nil
	}
	if a.svc.Coupons == nil {
		a.add("coupons", "ここではクーポンを設定できません", "coupons cannot be set up here")
		return nil
	}
	existing, err := a.svc.Coupons.List(a.ctx, a.ch)
	if err != nil {
		return err
	}
	old := map[string]coupon.Coupon{}
	for _, c := range existing {
		old[c.Key] = c
	}
	for _, key := range sortedKeys(a.f.Coupons) {
		path := "coupons." + key
		if a.bad[path] {
			continue
		}
		c, ps := couponOf(a.ch, key, a.f.Coupons[key], a.loc)
		if ps != nil {
			a.addAll(path, ps)
			continue
		}
		action := Created
		if o, ok := old[key]; ok {
			if sameCoupon(o, c) {
				a.sum.note(KindCoupons, key, Unchanged)
				continue
			}
			action = Updated
		}
		if _, err := a.svc.Coupons.Save(a.ctx, a.tx, c); errors.As(err, &ps) {
			a.addAll(path, ps)
			continue
		} else if err != nil {
			return err
		}
		a.sum.note(KindCoupons, key, action)
	}
	return nil
}

// couponRefs checks the coupon variables of every message of the file against the
// coupons of the channel, which by now include the file's.
func (a *applier) couponRefs() error {
	if a.svc.Coupons == nil {
		return nil
	}
	check := func(path string, msgs []message.Message) error {
		names := message.Template{Messages: msgs}.Variables()
		err := a.svc.Coupons.ValidateReferences(a.ctx, a.tx, a.ch, names)
		var ps message.Problems
		if !errors.As(err, &ps) {
			return err
		}
		for _, p := range ps {
			if key, _, _ := strings.Cut(strings.TrimPrefix(p.Path, "coupon."), "."); !a.bad["coupons."+key] {
				a.add(path, p.JA, p.EN)
			}
		}
		return nil
	}
	for _, key := range sortedKeys(a.f.Templates) {
		if err := check("templates."+key+".messages", a.f.Templates[key].Messages); err != nil {
			return err
		}
	}
	for _, key := range sortedKeys(a.f.Scenarios) {
		for i, st := range a.f.Scenarios[key].Steps {
			if err := check(fmt.Sprintf("scenarios.%s.steps[%d].messages", key, i), st.Messages); err != nil {
				return err
			}
		}
	}
	for _, key := range sortedKeys(a.f.AutoReplies) {
		if err := check("autoreplies."+key+".messages", a.f.AutoReplies[key].Messages); err != nil {
			return err
		}
	}
	return nil
}
