package web

import (
	"fmt"
	"net/http"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/ingest"
)

// The dashboard: for each channel the member works on, its friends, follows and blocks
// per day for 30 days (an SVG drawn here: no script), what was delivered and what failed.

func (c *Console) dashboardRoutes(mux *http.ServeMux) {
	c.handle(mux, "GET", "/console/{$}", access.DashboardRead, c.dashboard)
}

const chartDays = 30

type channelSummary struct {
	channel.Channel
	Counts       map[string]int // by friend status
	WebhookURL   string
	Chart        dayChart
	Follows      int // in the chart's days
	Blocks       int
	Today, Week  delivery.Tally
	Failures     []dashFailure
	FailedEvents int
}

// dayChart is the follows-and-blocks chart, laid out for the template: coordinates in
// the SVG's own units, so the page draws it with attributes only (the CSP allows no
// inline style).
type dayChart struct {
	Bars    []dayBar
	Max     int
	Width   int
	Height  int
	Base    int // the y of the axis
	Summary string
}

type dayBar struct {
	X, FollowY, FollowH, BlockX, BlockY, BlockH int
	Label                                       string // shown under some days
	Title                                       string // the day's numbers, as a tooltip
	Date                                        string
	Follows, Blocks                             int
}

const (
	chartSlot   = 20  // width of one day
	chartHeight = 110 // height of the tallest bar
	chartTop    = 16
)

func buildChart(lang string, days []friend.Day) dayChart {
	ch := dayChart{Width: chartSlot * len(days), Base: chartTop + chartHeight, Height: chartTop + chartHeight + 18}
	for _, d := range days {
		ch.Max = max(ch.Max, d.Follows, d.Blocks)
	}
	scale := func(n int) int {
		if ch.Max == 0 || n == 0 {
			return 0
		}
		return max(1, n*chartHeight/ch.Max)
	}
	for i, d := range days {
		x := i * chartSlot
		fh, bh := scale(d.Follows), scale(d.Blocks)
		date := d.Date.Format("1/2")
		b := dayBar{X: x + 2, FollowY: ch.Base - fh, FollowH: fh, BlockX: x + 10, BlockY: ch.Base - bh, BlockH: bh,
			Date: date, Follows: d.Follows, Blocks: d.Blocks,
			Title: fmt.Sprintf(translate(lang, "dash.chart.day"), date, d.Follows, d.Blocks)}
		if (len(days)-1-i)%7 == 0 {
			b.Label = date
		}
		ch.Bars = append(ch.Bars, b)
	}
	return ch
}

// dashFailure is a failed delivery and where to look at it.
type dashFailure struct {
	At     string
	Source string
	Link   string
	Perm   access.Permission // the link is shown to those who may follow it
	Error  string
}

func (c *Console) dashboard(w http.ResponseWriter, r *http.Request, q *request) {
	ctx := r.Context()
	chans, err := c.Channels.List(ctx)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	now := c.Clock.Now()
	var out []channelSummary
	for _, ch := range chans {
		if !q.P.OnChannel(ch.ID) {
			continue
		}
		s := channelSummary{Channel: ch, WebhookURL: webhookURL(r, &ch)}
		counts, err := c.Friends.Counts(ctx, ch.ID)
		if err != nil {
			c.fail(w, r, q, err)
			return
		}
		s.Counts = map[string]int{}
		for st, n := range counts {
			s.Counts[string(st)] = n
		}
		loc := channelZone(ch.TimeZone)
		days, err := friend.Daily(ctx, c.DB, ch.ID, loc, now, chartDays)
		if err != nil {
			c.fail(w, r, q, err)
			return
		}
		for _, d := range days {
			s.Follows += d.Follows
			s.Blocks += d.Blocks
		}
		s.Chart = buildChart(q.Lang, days)
		y, m, d := now.In(loc).Date()
		midnight := time.Date(y, m, d, 0, 0, 0, 0, loc)
		if s.Today, err = c.Delivery.TallySince(ctx, ch.ID, midnight); err != nil {
			c.fail(w, r, q, err)
			return
		}
		if s.Week, err = c.Delivery.TallySince(ctx, ch.ID, midnight.AddDate(0, 0, -6)); err != nil {
			c.fail(w, r, q, err)
			return
		}
		fails, err := c.Delivery.RecentFailures(ctx, ch.ID, midnight.AddDate(0, 0, -6), 5)
		if err != nil {
			c.fail(w, r, q, err)
			return
		}
		for _, f := range fails {
			s.Failures = append(s.Failures, failureOf(q.Lang, loc, f))
		}
		if s.FailedEvents, err = ingest.FailedEvents(ctx, c.DB, ch.ID); err != nil {
			c.fail(w, r, q, err)
			return
		}
		out = append(out, s)
	}
	pending, err := c.Events.Pending(ctx)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	c.render(w, r, http.StatusOK, "dashboard", "dash.title", q, map[string]any{"Channels": out, "Pending": pending})
}

// failureOf says where a failed delivery came from and links to it: a broadcast's
// page, or the friend's (a step or an auto-reply failed for that friend).
func failureOf(lang string, loc *time.Location, f delivery.Record) dashFailure {
	out := dashFailure{At: zoneTime(lang, loc, f.DueAt), Error: f.LastError,
		Source: keyed(lang, "dash.src.%s", f.Source)}
	switch f.Source {
	case "broadcast":
		out.Source += fmt.Sprintf(" #%d", f.SourceID)
		out.Link, out.Perm = broadcastLink(f.ChannelID, f.SourceID), access.BroadcastsRead
	default:
		if f.SourceRef != "" {
			out.Source += " (" + f.SourceRef + ")"
		}
		out.Link, out.Perm = fmt.Sprintf("/console/channels/%s/friends/%d", f.ChannelID, f.FriendID), access.FriendsRead
	}
	return out
}
