package web_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/linestep/linestep/internal/servertest"
)

// chrome starts a headless Chromium for one test, or skips the test saying why. The
// flags keep it from reaching for Google's services, which a closed network refuses.
// It counts JavaScript dialogs: a hostile display name that ran alert() shows up there.
func chrome(t *testing.T) (context.Context, *atomic.Int32) {
	t.Helper()
	bin := os.Getenv("LINESTEP_CHROMIUM")
	if bin == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				bin = p
				break
			}
		}
	}
	if bin == "" {
		t.Skip("SKIP: no Chromium found (install Debian's chromium package, or set LINESTEP_CHROMIUM): the browser tests did not run")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", bin, err)
	}
	dialogs := &atomic.Int32{}
	opened := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range opened {
			if err != nil {
				return
			}
			dialogs.Add(1)
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return ctx, dialogs
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// screenshot keeps a full-page PNG of what the browser shows, as a test artefact:
// under $LINESTEP_SCREENSHOTS if set, else a directory in the system's temp folder
// whose path the test log gives.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("LINESTEP_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "linestep-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// A display name and a message written as HTML/JS payloads show as plain text in a
// real browser and run nothing.
func TestBrowserShowsHostileContentInert(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	bctx := context.Background()
	name := `<img src=x onerror="alert(1);document.title='pwned'">`
	msg := `<script>alert("msg")</script><b onmouseover=alert(2)>hi</b>`
	u := h.User(name)
	h.OK(h.Emu.Follow(bctx, h.Ch, u))
	h.OK(h.Emu.SendText(bctx, h.Ch, u, msg))
	h.Eventually("the conversation", func() bool { return len(h.Conversation(u)) == 1 && h.Friend(u).DisplayName != "" })
	ctx, dialogs := chrome(t)
	browserOwnerSignIn(t, ctx, h)
	must(t, chromedp.Do(ctx, chromedp.Navigate(h.Base+"/console/channels/"+h.Ch+"/friends")))
	listed := run(t, ctx, chromedp.Text(`table tbody tr td a`))
	screenshot(t, ctx, "friends-hostile")
	if listed != name {
		t.Errorf("the list shows %q, want the name as plain text", listed)
	}
	must(t, chromedp.Do(ctx, chromedp.Click(`table tbody tr td a`), chromedp.WaitVisible(`.chat`)))
	said := run(t, ctx, chromedp.Text(`.chat .bubble`))
	title := run(t, ctx, chromedp.Title())
	screenshot(t, ctx, "friend-hostile")
	if said != msg {
		t.Errorf("the conversation shows %q, want the message as plain text", said)
	}
	if n := dialogs.Load(); n != 0 || title == "pwned" {
		t.Errorf("friend-written content ran script: %d dialogs, title %q", n, title)
	}
}
