package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/store"
)

// Helpers of the content pages' tests (scenarios, broadcasts, templates, coupons,
// auto-replies, settings, dashboard).

// ctPost posts a form with the session's form token, as the page's form would.
func ctPost(b *browser, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.csrf())
	return b.do("POST", path, form, nil)
}

// ctPage gets a page and fails unless it answers 200.
func ctPage(t *testing.T, b *browser, path string) string {
	t.Helper()
	res, page := b.get(path)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", path, res.StatusCode, page)
	}
	return page
}

// ctRedirect fails unless res is a redirect, and returns where to.
func ctRedirect(t *testing.T, what string, res *http.Response, page string) string {
	t.Helper()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("%s: %d, want a redirect\n%s", what, res.StatusCode, page)
	}
	return res.Header.Get("Location")
}

// ctInOrder fails unless every string is on the page, in that order.
func ctInOrder(t *testing.T, what, page string, want ...string) {
	t.Helper()
	at := 0
	for _, w := range want {
		i := strings.Index(page[at:], w)
		if i < 0 {
			t.Errorf("%s: %q missing (or out of order)", what, w)
			return
		}
		at += i + len(w)
	}
}

// ctFollowers makes users who follow, and returns their friends.
func ctFollowers(t *testing.T, h *servertest.Harness, names ...string) []friend.Friend {
	t.Helper()
	ctx := context.Background()
	var out []friend.Friend
	for _, n := range names {
		u := h.User(n)
		h.OK(h.Emu.Follow(ctx, h.Ch, u))
		h.Eventually("the friend "+n, func() bool { return h.Friend(u).Status == friend.Following })
		out = append(out, h.Friend(u))
	}
	return out
}

// ctTag gives friends a tag.
func ctTag(t *testing.T, h *servertest.Harness, tag string, friends ...friend.Friend) {
	t.Helper()
	ctx := context.Background()
	err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		tg, err := h.Srv.Friends.CreateTag(ctx, tx, h.Ch, tag)
		if err != nil {
			return err
		}
		for _, f := range friends {
			if _, err := h.Srv.Friends.AddTag(ctx, tx, f.ID, tg.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDashboardChartsFollowsAndBlocksAndLinksFailures(t *testing.T) {
	fxEachDB(t, func(t *testing.T, h *servertest.Harness) {
		ctx := context.Background()
		fs := ctFollowers(t, h, "一郎", "二郎", "三郎")
		u := h.User("四郎")
		h.OK(h.Emu.Follow(ctx, h.Ch, u))
		h.OK(h.Emu.Block(ctx, h.Ch, u))
		h.Eventually("the block", func() bool { return h.Friend(u).Status == friend.Blocked })
		// The emulator stamps events with the real time: the server's day is that day.
		h.Clk.Set(fs[0].FollowedAt.Add(time.Minute))
		// A failure, as the dispatcher records one, with LINE's words in it.
		now := store.Millis(h.Clk.Now())
		_, err := h.Srv.DB.ExecContext(ctx, `INSERT INTO deliveries (channel_id, friend_id, line_user_id, source, source_id, messages,
			content_hash, state, due_at, last_error, created_at) VALUES (?, ?, ?, 'broadcast', 77, '[]', 'x', 'failed', ?, ?, ?)`,
			h.Ch, fs[0].ID, fs[0].LineUserID, now, `<b>The user blocked</b>`, now)
		if err != nil {
			t.Fatal(err)
		}
		b := signIn(t, h)
		page := ctPage(t, b, "/console/")
		ctInOrder(t, "dashboard", page, "友だち追加とブロック（日別）", `class="n-follows">4<`, `class="n-blocks">1<`, "<svg", `class="follow"`, "</svg>")
		if !strings.Contains(page, "<title>"+fs[0].FollowedAt.In(tokyoZone(t)).Format("1/2")+" 友だち追加 4 / ブロック 1</title>") {
			t.Errorf("the day's numbers are not in the chart")
		}
		ctInOrder(t, "failures", page, "最近の配信失敗", `href="/console/channels/`+h.Ch+`/broadcasts/77"`, "一斉配信 #77", "&lt;b&gt;The user blocked&lt;/b&gt;")
		if strings.Contains(page, "<b>The user blocked") {
			t.Errorf("LINE's error text reached the page unescaped")
		}
		ctInOrder(t, "deliveries", page, "今日", "過去7日")
		en := ctPage(t, b, "/console/?lang=en")
		ctInOrder(t, "dashboard in English", en, "Follows and blocks per day", "Recent failed deliveries", "Broadcast #77")
		// Bars are drawn with attributes only: the CSP allows no inline style.
		if regexp.MustCompile(`<[^>]+ style=`).MatchString(page) {
			t.Errorf("the dashboard uses an inline style")
		}
	})
}

func tokyoZone(t *testing.T) *time.Location {
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
