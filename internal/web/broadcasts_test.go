package web_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/broadcast"
	"github.com/linestep/linestep/internal/servertest"
)

// ctCount asks the live count endpoint as segment.js does: the form's fields, the token
// in a header.
func ctCount(t *testing.T, b *browser, h *servertest.Harness, form url.Values) (int, map[string]any) {
	t.Helper()
	res, body := b.do("POST", "/console/channels/"+h.Ch+"/broadcasts/count", form, map[string]string{"X-CSRF-Token": b.csrf()})
	var ans map[string]any
	if err := json.Unmarshal([]byte(body), &ans); err != nil {
		t.Fatalf("count: %d %q", res.StatusCode, body)
	}
	return res.StatusCode, ans
}

func TestBroadcastLiveCountFollowsTheBuilder(t *testing.T) {
	fxEachDB(t, func(t *testing.T, h *servertest.Harness) {
		fs := ctFollowers(t, h, "一郎", "二郎", "三郎")
		ctTag(t, h, "vip", fs[0], fs[1])
		ctTag(t, h, "optout", fs[1])
		ctTag(t, h, "osaka", fs[2])
		b := signIn(t, h)
		for _, c := range []struct {
			what string
			form url.Values
			want int
		}{
			{"everyone", url.Values{"seg_mode": {"builder"}}, 3},
			{"vip", url.Values{"seg_mode": {"builder"}, "tag": {"vip"}}, 2},
			{"vip and osaka", url.Values{"seg_mode": {"builder"}, "tag": {"vip", "osaka"}, "tag_mode": {"all"}}, 0},
			{"vip or osaka", url.Values{"seg_mode": {"builder"}, "tag": {"vip", "osaka"}, "tag_mode": {"any"}}, 3},
			{"vip, not optout", url.Values{"seg_mode": {"builder"}, "tag": {"vip"}, "xtag": {"optout"}}, 1},
			{"followed within 7 days", url.Values{"seg_mode": {"builder"}, "within": {"7"}}, 3},
			{"yaml", url.Values{"seg_mode": {"yaml"}, "seg_yaml": {"any: [{tag: osaka}, {tag: optout}]"}}, 2},
		} {
			status, ans := ctCount(t, b, h, c.form)
			if status != 200 || ans["count"] != float64(c.want) {
				t.Errorf("%s: %d %v, want %d", c.what, status, ans, c.want)
			}
		}
		_, ans := ctCount(t, b, h, url.Values{"seg_mode": {"builder"}, "tag": {"vip"}, "xtag": {"optout"}})
		if ans["text"] != "1人" || !strings.Contains(ans["audience"].(string), "タグ「vip」 かつ タグ「optout」 ではない") {
			t.Errorf("count in words: %v", ans)
		}
		if status, ans := ctCount(t, b, h, url.Values{"seg_mode": {"yaml"}, "seg_yaml": {"tags: [vip]"}}); status != http.StatusUnprocessableEntity || ans["error"] == nil {
			t.Errorf("a misspelt filter: %d %v", status, ans)
		}
		// The endpoint is a POST of the console: without the token it is refused.
		res, _ := b.do("POST", "/console/channels/"+h.Ch+"/broadcasts/count", url.Values{"tag": {"vip"}}, nil)
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("count without the token: %d", res.StatusCode)
		}
	})
}

func TestBroadcastFormConfirmsQueuesAndCancels(t *testing.T) {
	fxEachDB(t, func(t *testing.T, h *servertest.Harness) {
		ctx := context.Background()
		fs := ctFollowers(t, h, "一郎", "二郎", "三郎")
		ctTag(t, h, "vip", fs[0], fs[1])
		b := signIn(t, h)
		base := "/console/channels/" + h.Ch + "/broadcasts"
		form := ctPage(t, b, base+"/new")
		ctInOrder(t, "the form", form, `src="/static/segment.js"`, `data-count-url="`+base+`/count"`, `name="tag" value="vip"`, `name="when" value="later"`)

		tomorrow := h.Clk.Now().In(tokyoZone(t)).AddDate(0, 0, 1).Format("2006-01-02")
		fields := url.Values{"name": {"<b>冬のセール</b>"}, "seg_mode": {"builder"}, "tag": {"vip"}, "source": {"text"}, "mode": {"text"},
			"text": {"{{display_name|お客様}}さん、セールです <script>x</script>"}, "when": {"later"}, "date": {tomorrow}, "time": {"10:00"},
			"step": {"confirm"}}
		res, page := ctPost(b, base, fields)
		if res.StatusCode != 200 {
			t.Fatalf("confirm: %d\n%s", res.StatusCode, page)
		}
		ctInOrder(t, "confirmation", page, `id="bc-final">2<`, "タグ「vip」", "10:00", "さん、セールです &lt;script&gt;x&lt;/script&gt;", `value="send"`)
		if strings.Contains(page, "<b>冬のセール") || strings.Contains(page, "<script>x") {
			t.Errorf("the confirmation shows user text unescaped")
		}
		if n, _ := h.Srv.Broadcasts.List(ctx, h.Ch, 10); len(n) != 0 {
			t.Fatalf("the confirmation created a broadcast")
		}
		// The confirmation's form carries every field forward.
		hidden := url.Values{}
		for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(page, -1) {
			if m[1] != "csrf" {
				hidden.Add(m[1], htmlUnescape(m[2]))
			}
		}
		hidden.Set("step", "send")
		res, page = ctPost(b, base, hidden)
		to := ctRedirect(t, "send", res, page)
		id, err := strconv.ParseInt(strings.TrimPrefix(to, base+"/"), 10, 64)
		if err != nil {
			t.Fatalf("redirect to %s", to)
		}
		bc, err := h.Srv.Broadcasts.Get(ctx, h.Ch, id)
		if err != nil || bc.State != broadcast.Scheduled || bc.Name != "<b>冬のセール</b>" || bc.Segment.Tag != "vip" {
			t.Fatalf("queued: %+v %v", bc, err)
		}
		// Pressed twice, or sent again by the browser: the same broadcast, not a second.
		res, page = ctPost(b, base, hidden)
		if again := ctRedirect(t, "send again", res, page); again != to {
			t.Errorf("the confirmation sent again led to %s, want the first broadcast %s", again, to)
		}
		if list, _ := h.Srv.Broadcasts.List(ctx, h.Ch, 10); len(list) != 1 {
			t.Fatalf("%d broadcasts after sending one confirmation twice, want 1", len(list))
		}
		// The confirmation's key with other content (a form altered by hand) sends nothing.
		altered := maps.Clone(hidden)
		altered.Set("text", "別の内容")
		res, page = ctPost(b, base, altered)
		if res.StatusCode != http.StatusConflict || !strings.Contains(page, "この確認画面は別の内容の配信に使われています") {
			t.Errorf("an altered form with a used key: %d", res.StatusCode)
		}
		if list, _ := h.Srv.Broadcasts.List(ctx, h.Ch, 10); len(list) != 1 {
			t.Fatalf("%d broadcasts after an altered resend, want 1", len(list))
		}
		if want := tomorrow + " 10:00"; bc.ScheduledAt.In(tokyoZone(t)).Format("2006-01-02 15:04") != want {
			t.Errorf("scheduled at %s, want %s JST", bc.ScheduledAt, want)
		}
		detail := ctPage(t, b, to)
		ctInOrder(t, "detail", detail, "&lt;b&gt;冬のセール&lt;/b&gt;", "予約済み", "タグ「vip」", "送信済み", "この配信を取り消す")
		if res, _ := b.do("POST", to+"/cancel", url.Values{}, nil); res.StatusCode != http.StatusForbidden {
			t.Errorf("cancel without the token: %d", res.StatusCode)
		}
		res, page = ctPost(b, to+"/cancel", nil)
		cancelled := ctRedirect(t, "cancel", res, page)
		if bc, _ := h.Srv.Broadcasts.Get(ctx, h.Ch, id); bc.State != broadcast.Cancelled {
			t.Errorf("after cancel: %s", bc.State)
		}
		if recs, err := h.Srv.Audit.Query(ctx, audit.Filter{Action: "broadcast.cancel"}); err != nil || len(recs) != 1 ||
			recs[0].Subject != audit.Subject("broadcast", id) || recs[0].Actor.Kind != audit.ActorStaff {
			t.Errorf("audit records of the cancel: %+v %v", recs, err)
		}
		after := ctPage(t, b, cancelled)
		if !strings.Contains(after, "取り消しました") || strings.Contains(after, "この配信を取り消す") {
			t.Errorf("the cancelled broadcast still offers Cancel:\n%s", after)
		}

		// Sent now, it reaches the two vip friends.
		now := url.Values{"seg_mode": {"builder"}, "tag": {"vip"}, "source": {"text"}, "mode": {"text"}, "text": {"本日限り"}, "name": {"本日限りのお知らせ"},
			"when": {"now"}, "step": {"send"}}
		res, page = ctPost(b, base, now)
		to = ctRedirect(t, "send now", res, page)
		id, _ = strconv.ParseInt(strings.TrimPrefix(to, base+"/"), 10, 64)
		h.Eventually("the broadcast sent", func() bool {
			p, _ := h.Srv.Broadcasts.Progress(ctx, id)
			return p["sent"] == 2
		})
		ctInOrder(t, "list", ctPage(t, b, base), "本日限りのお知らせ", "配信済み", "冬のセール", "取り消し")
	})
}

func TestBroadcastFormKeepsInputOnProblems(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	b := signIn(t, h)
	base := "/console/channels/" + h.Ch + "/broadcasts"
	long := strings.Repeat("あ", 5001)
	res, page := ctPost(b, base, url.Values{"seg_mode": {"builder"}, "source": {"text"}, "mode": {"text"}, "text": {long}, "when": {"now"}, "step": {"confirm"}})
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "messages[0].text") || !strings.Contains(page, long) {
		t.Errorf("an over-long text: %d", res.StatusCode)
	}
	past := h.Clk.Now().Add(-48 * time.Hour).In(tokyoZone(t)).Format("2006-01-02")
	res, page = ctPost(b, base, url.Values{"seg_mode": {"builder"}, "source": {"text"}, "mode": {"text"}, "text": {"hi"}, "when": {"later"},
		"date": {past}, "time": {"10:00"}, "step": {"confirm"}})
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "配信日時が過去です") || !strings.Contains(page, `value="`+past+`"`) {
		t.Errorf("a time in the past: %d", res.StatusCode)
	}
	// An analyst sees broadcasts but is offered no form, and cannot post one.
	a, _ := fxMember(t, h, "analyst1", "Analyst", "analyst")
	if page := ctPage(t, a, base); strings.Contains(page, base+"/new") {
		t.Errorf("an analyst is offered a new broadcast")
	}
	if res, _ := ctPost(a, base, url.Values{"step": {"send"}, "text": {"x"}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("an analyst posts a broadcast: %d", res.StatusCode)
	}
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&amp;", "&", "&#43;", "+").Replace(s)
}

// In a real browser, the builder's count follows the ticks (segment.js, under the CSP),
// the no-script count works, and the pages render as a person sees them (screenshots
// kept as artefacts).
func TestBrowserLiveCountAndTimeline(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	ctx := context.Background()
	fs := ctFollowers(t, h, "一郎", "二郎", "三郎")
	ctTag(t, h, "vip", fs[0], fs[1])
	ctScenario(t, h, "welcome", ctWelcome, true)
	b, m := fxMember(t, h, "operator1", "Operator", "operator")
	token, err := h.Srv.Staff.IssueLoginLink(ctx, m.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bctx, dialogs := chrome(t)
	base := h.Base + "/console/channels/" + h.Ch
	count := func() string { return run(t, bctx, chromedp.Text(`#bc-count`)) }
	must(t, chromedp.Do(bctx,
		chromedp.Navigate(h.Base+"/login/link/"+token),
		chromedp.Click(`button[type=submit]`),
		chromedp.WaitVisible(`form[action="/logout"]`),
		chromedp.Navigate(base+"/broadcasts/new"),
		chromedp.Click(`input[name=tag][value=vip]`),
		chromedp.Click(`button[name=step][value=count]`),
	))
	// The form posts to /broadcasts: wait for that page, not the one the click left
	// (whose count the live script may still be changing, or which may be torn down
	// while it is read). Reading the page fails while it navigates: try again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ready, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`location.pathname.endsWith("/broadcasts") && document.readyState === "complete"`))
		if err == nil && ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the count's page did not load: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	run(t, bctx, chromedp.WaitVisible(`#bc-count`))
	if got := count(); got != "2人" {
		t.Errorf("the count without script: %q, want 2人", got)
	}
	// The live count needs fetch() to the console itself, which the CSP must allow.
	res, _ := b.get("/console/")
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("the CSP blocks segment.js's fetch (and inbox.js's): SecurityHeaders needs connect-src 'self'; it says %q", csp)
	} else {
		must(t, chromedp.Do(bctx,
			chromedp.Navigate(base+"/broadcasts/new"),
			chromedp.Poll[chromedp.Void](`document.getElementById("bc-count").textContent === "3人"`, chromedp.WithPollingTimeout(10*time.Second)),
			chromedp.Click(`input[name=tag][value=vip]`),
			chromedp.Poll[chromedp.Void](`document.getElementById("bc-count").textContent === "2人"`, chromedp.WithPollingTimeout(10*time.Second)),
		))
		if audience := run(t, bctx, chromedp.Text(`#bc-audience`)); !strings.Contains(audience, "タグ「vip」") {
			t.Errorf("the audience in words: %q", audience)
		}
	}
	screenshot(t, bctx, "broadcast-new")
	must(t, chromedp.Do(bctx, chromedp.Navigate(base+"/scenarios/welcome"), chromedp.WaitVisible(`ol.steps`)))
	screenshot(t, bctx, "scenario-timeline")
	must(t, chromedp.Do(bctx, chromedp.Navigate(h.Base+"/console/"), chromedp.WaitVisible(`svg.daychart`)))
	screenshot(t, bctx, "dashboard")
	if n := dialogs.Load(); n != 0 {
		t.Errorf("%d script dialogs opened", n)
	}
}
