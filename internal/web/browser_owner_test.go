package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/linestep/linestep/internal/servertest"
)

// browserOwnerSignIn takes the first owner through their first sign-in in a real
// browser: the one-time link, a password of their own, and two-step set-up by typing the
// code computed from the secret the page shows. It returns the TOTP secret.
func browserOwnerSignIn(t *testing.T, ctx context.Context, h *servertest.Harness) string {
	t.Helper()
	link, err := h.Srv.OwnerLoginLink(context.Background(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	must(t, chromedp.Do(ctx,
		chromedp.Navigate(h.Base+link),
		chromedp.Click(`button[type=submit]`),
		chromedp.WaitVisible(`input[name=new]`),
		chromedp.SendKeys(`input[name=new]`, ownerPassword),
		chromedp.SendKeys(`input[name=confirm]`, ownerPassword),
		chromedp.Click(`button.primary`),
		chromedp.WaitVisible(`#totp-secret`),
	))
	secret := strings.ReplaceAll(run(t, ctx, chromedp.Text(`#totp-secret`)), " ", "")
	screenshot(t, ctx, "totp-enrol")
	must(t, chromedp.Do(ctx,
		chromedp.SendKeys(`input[name=code]`, code(t, secret, h.Clk.Now())),
		chromedp.Click(`button.primary`),
		chromedp.WaitVisible(`#recovery-codes`),
	))
	screenshot(t, ctx, "totp-codes")
	must(t, chromedp.Do(ctx, chromedp.Click(`main a`), chromedp.WaitVisible(`form[action="/logout"]`)))
	h.Clk.Advance(30 * time.Second)
	return secret
}

// An owner sets up two-step sign-in and signs in with it in a real browser, adds an
// operator with a password, and signs out; the operator signs in with the password,
// sees the friend masked in the list and the inbox, answers the chat, and cannot open
// the export.
func TestBrowserOwnerAddsOperator(t *testing.T) {
	ctx, dialogs := chrome(t)
	h := servertest.Start(t, t.TempDir()+"/c.db")
	h.Clk.Set(time.Now()) // the emulator stamps events with the wall clock
	f := fxFriend(t, h)
	h.OK(h.Emu.SendText(context.Background(), h.Ch, f.LineUserID, "明日10時に予約できますか?"))
	h.Eventually("the conversation", func() bool {
		_, err := h.Srv.Inbox.Get(context.Background(), h.Ch, f.ID)
		return err == nil
	})
	secret := browserOwnerSignIn(t, ctx, h)

	// Out, and in again with the password and a code.
	must(t, chromedp.Do(ctx,
		chromedp.Click(`form[action="/logout"] button`),
		chromedp.WaitVisible(`input[name=login]`),
	))
	screenshot(t, ctx, "login")
	must(t, chromedp.Do(ctx,
		chromedp.SendKeys(`input[name=login]`, "owner"),
		chromedp.SendKeys(`input[name=password]`, ownerPassword),
		chromedp.Click(`button.primary`),
		chromedp.WaitVisible(`input[name=code]`),
	))
	screenshot(t, ctx, "signin-code")
	must(t, chromedp.Do(ctx,
		chromedp.SendKeys(`input[name=code]`, code(t, secret, h.Clk.Now())),
		chromedp.Click(`button.primary`),
		chromedp.WaitVisible(`form[action="/logout"]`),
	))
	if loc := run(t, ctx, chromedp.Location()); loc != h.Base+"/console/" {
		t.Fatalf("the owner is at %s after signing in", loc)
	}

	// An operator, with a password the owner tells them.
	const opPassword = "morning market fresh fish"
	must(t, chromedp.Do(ctx,
		chromedp.Click(`header a[href="/console/staff"]`),
		chromedp.WaitVisible(`#new`),
		chromedp.SendKeys(`#new input[name=name]`, "鈴木 一郎"),
		chromedp.SendKeys(`#new input[name=login]`, "ichiro"),
		chromedp.SetValue(`#new select[name=role]`, "operator"),
		chromedp.Click(`#new input[name=channels][value="`+h.Ch+`"]`),
		chromedp.SendKeys(`#new input[name=password]`, opPassword),
		chromedp.Click(`#new input[name=must_change]`),
		chromedp.Click(`#new button.primary`),
		chromedp.WaitVisible(`#created`),
		chromedp.Navigate(h.Base+"/console/staff"),
		chromedp.WaitVisible(`table`),
	))
	screenshot(t, ctx, "staff")
	if list := run(t, ctx, chromedp.Text(`table`)); !strings.Contains(list, "鈴木 一郎") || !strings.Contains(list, "Test shop") {
		t.Errorf("the staff list does not show the operator on the shop:\n%s", list)
	}
	for _, page := range []struct{ path, name string }{
		{"/console/staff/roles", "roles"}, {"/console/account", "account"}, {"/console/audit", "audit"}, {"/console/logins", "logins"},
	} {
		must(t, chromedp.Do(ctx, chromedp.Navigate(h.Base+page.path), chromedp.WaitVisible(`main h1`)))
		screenshot(t, ctx, page.name)
		if page.name != "audit" {
			continue
		}
		if log := run(t, ctx, chromedp.Text(`table`)); !strings.Contains(log, "スタッフ追加") || !strings.Contains(log, "ログイン成功") {
			t.Errorf("the audit page does not show the sign-in and the new member")
		}
	}
	must(t, chromedp.Do(ctx,
		chromedp.Click(`form[action="/logout"] button`),
		chromedp.WaitVisible(`input[name=login]`),
		chromedp.SendKeys(`input[name=login]`, "ichiro"),
		chromedp.SendKeys(`input[name=password]`, opPassword),
		chromedp.Click(`button.primary`),
		chromedp.WaitVisible(`form[action="/logout"]`),
	))
	if loc := run(t, ctx, chromedp.Location()); loc != h.Base+"/console/" {
		t.Errorf("the operator is at %s after signing in", loc)
	}
	if who := run(t, ctx, chromedp.Text(`.who`)); who != "鈴木 一郎" {
		t.Errorf("signed in as %q", who)
	}
	screenshot(t, ctx, "operator-dashboard")

	base := h.Base + "/console/channels/" + h.Ch
	must(t, chromedp.Do(ctx, chromedp.Navigate(base+"/friends"), chromedp.WaitVisible(`table.friends`)))
	if name := run(t, ctx, chromedp.Text(`table.friends td.who .name`)); name != "山* **" {
		t.Errorf("the operator's friend list shows %q, want it masked", name)
	}
	must(t, chromedp.Do(ctx, chromedp.Navigate(base+"/inbox"), chromedp.WaitVisible(`ul.convs`)))
	if name := run(t, ctx, chromedp.Text(`ul.convs .name`)); name != "山* **" {
		t.Errorf("the operator's inbox shows %q, want it masked", name)
	}
	must(t, chromedp.Do(ctx,
		chromedp.Click(`ul.convs a`),
		chromedp.WaitVisible(`#replytext`),
		chromedp.SendKeys(`#replytext`, "はい、お待ちしております。"),
		chromedp.Click(`form.reply button[type=submit]`),
		chromedp.WaitVisible(`#done`),
	))
	h.Eventually("the answer on the friend's phone", func() bool {
		rs, _ := h.Emu.ReceivedBy(h.Ch, f.LineUserID)
		for _, r := range rs {
			if strings.Contains(string(r.Messages[0]), "お待ちしております") {
				return true
			}
		}
		return false
	})
	must(t, chromedp.Do(ctx, chromedp.Navigate(base+"/friends/export"), chromedp.WaitVisible(`p.error`)))
	if msg := run(t, ctx, chromedp.Text(`p.error`)); !strings.Contains(msg, "許可されていません") {
		t.Errorf("the operator opened the export: %q", msg)
	}
	if n := dialogs.Load(); n != 0 {
		t.Errorf("%d JavaScript dialogs", n)
	}
}
