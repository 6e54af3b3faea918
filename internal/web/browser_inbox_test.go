package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/servertest"
)

// An operator, who may not read personal data, works the friend list and the inbox in a
// real browser: names are masked, a reply goes out, the export is closed to them.
func TestBrowserOperatorWorksMaskedFriendsAndChats(t *testing.T) {
	ctx, dialogs := chrome(t)
	h := servertest.Start(t, t.TempDir()+"/c.db")
	// The emulator stamps events with the wall clock: the server's clock follows it, so
	// that the conversation reads in order in the screenshots.
	h.Clk.Set(time.Now())
	bctx := context.Background()
	f := fxFriend(t, h)
	h.OK(h.Emu.SendText(bctx, h.Ch, f.LineUserID, "明日10時に予約できますか?\n2名です。"))
	h.Eventually("the conversation", func() bool {
		_, err := h.Srv.Inbox.Get(bctx, h.Ch, f.ID)
		return err == nil
	})
	_, opm := fxMember(t, h, "op", "田中 花子", access.Operator)
	token, err := h.Srv.Staff.IssueLoginLink(bctx, opm.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	base := h.Base + "/console/channels/" + h.Ch

	must(t, chromedp.Do(ctx,
		chromedp.Navigate(h.Base+"/login/link/"+token),
		chromedp.Click(`button[type=submit]`),
		chromedp.WaitVisible(`form[action="/logout"]`),
		chromedp.Navigate(base+"/friends"),
		chromedp.WaitVisible(`table.friends`),
	))
	screenshot(t, ctx, "friends-operator")
	if name := run(t, ctx, chromedp.Text(`table.friends td.who .name`)); name != "山* **" {
		t.Errorf("the list shows %q to an operator", name)
	}
	if n := run(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('a[href*="/friends/export"]').length`)); n != 0 {
		t.Errorf("an operator sees %d export links", n)
	}
	must(t, chromedp.Do(ctx, chromedp.Click(`table.friends td.who a`), chromedp.WaitVisible(`section.profile`)))
	screenshot(t, ctx, "friend-operator")
	if body := run(t, ctx, chromedp.Text(`main`)); strings.Contains(body, "090-1234") || !strings.Contains(body, "***-****-5678") {
		t.Errorf("the detail page shows the phone unmasked or not at all")
	}

	must(t, chromedp.Do(ctx, chromedp.Navigate(base+"/inbox"), chromedp.WaitVisible(`ul.convs`)))
	screenshot(t, ctx, "inbox")
	if name := run(t, ctx, chromedp.Text(`ul.convs .name`)); name != "山* **" {
		t.Errorf("the inbox shows %q to an operator", name)
	}
	must(t, chromedp.Do(ctx,
		chromedp.Click(`ul.convs a`),
		chromedp.WaitVisible(`#replytext`),
		chromedp.SendKeys(`#replytext`, "はい、10時にお待ちしております。"),
		chromedp.Click(`form.reply button[type=submit]`),
		chromedp.WaitVisible(`#done`),
	))
	screenshot(t, ctx, "chat")
	if notice := run(t, ctx, chromedp.Text(`#done`)); !strings.Contains(notice, "送信しました") {
		t.Errorf("after the reply: %q", notice)
	}
	if head := run(t, ctx, chromedp.Text(`.chathead h2`)); head != "山* **" {
		t.Errorf("the chat header shows %q", head)
	}
	if said := run(t, ctx, chromedp.Text(`.chat li.in .bubble`)); said != "明日10時に予約できますか?\n2名です。" {
		t.Errorf("the friend's message shows as %q", said)
	}
	h.Eventually("the reply at the friend", func() bool { return len(fxReceived(t, h, f.LineUserID)) == 1 })

	must(t, chromedp.Do(ctx, chromedp.Navigate(base+"/friends/export"), chromedp.WaitVisible(`p.error`)))
	screenshot(t, ctx, "export-operator")
	if msg := run(t, ctx, chromedp.Text(`p.error`)); !strings.Contains(msg, "許可されていません") {
		t.Errorf("the export page for an operator says %q", msg)
	}
	if n := dialogs.Load(); n != 0 {
		t.Errorf("%d script dialogs opened", n)
	}

	// The view of a member who may read personal data, for the screenshots: unmasked,
	// with the export.
	_, mgr := fxManager(t, h)
	token, err = h.Srv.Staff.IssueLoginLink(bctx, mgr.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	must(t, chromedp.Do(ctx,
		chromedp.Navigate(h.Base+"/login/link/"+token),
		chromedp.Click(`button[type=submit]`),
		chromedp.WaitVisible(`form[action="/logout"]`),
		chromedp.Navigate(base+"/friends/"+itoa(f.ID)),
		chromedp.WaitVisible(`section.profile`),
	))
	screenshot(t, ctx, "friend-manager")
	if name := run(t, ctx, chromedp.Text(`section.profile h2`)); name != "山田 太郎" {
		t.Errorf("the owner sees %q", name)
	}
	must(t, chromedp.Do(ctx, chromedp.Navigate(base+"/inbox/"+itoa(f.ID)), chromedp.WaitVisible(`#thread`)))
	screenshot(t, ctx, "chat-manager")
	must(t, chromedp.Do(ctx, chromedp.Navigate(base+"/friends/export"), chromedp.WaitVisible(`main form`)))
	screenshot(t, ctx, "export-manager")
	h.Clk.Advance(10 * time.Minute) // the sign-in is no longer recent
	must(t, chromedp.Do(ctx, chromedp.Navigate(base+"/friends/export"), chromedp.WaitVisible(`input[name=password]`)))
	screenshot(t, ctx, "export-reauth")

	// A front desk that may reveal one value, with a reason.
	fxRole(t, h, "frontdesk", access.DashboardRead, access.FriendsRead, access.FriendsReveal)
	_, desk := fxMember(t, h, "desk", "受付", "frontdesk")
	token, err = h.Srv.Staff.IssueLoginLink(bctx, desk.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	must(t, chromedp.Do(ctx,
		chromedp.Navigate(h.Base+"/login/link/"+token),
		chromedp.Click(`button[type=submit]`),
		chromedp.WaitVisible(`form[action="/logout"]`),
		chromedp.Navigate(base+"/friends/"+itoa(f.ID)),
		chromedp.WaitVisible(`section.profile`),
		chromedp.Click(`table.fields details.reveal summary`),
		chromedp.WaitVisible(`table.fields details.reveal input[name=reason]`),
	))
	screenshot(t, ctx, "friend-reveal")
	must(t, chromedp.Do(ctx,
		chromedp.SendKeys(`table.fields details.reveal input[name=reason]`, "メールの宛先確認のため"),
		chromedp.Click(`table.fields details.reveal button[type=submit]`),
		chromedp.WaitVisible(`.revealed`),
	))
	screenshot(t, ctx, "reveal")
	if v := run(t, ctx, chromedp.Text(`.revealed .value`)); v != "Taro.Yamada@example.com" {
		t.Errorf("revealed %q", v)
	}
}
