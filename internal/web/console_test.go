package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/servertest"
)

// browser is a cookie-keeping client that does not follow redirects, so tests see them.
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) do(method, path string, form url.Values, header map[string]string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res, string(raw)
}

func (b *browser) get(path string) (*http.Response, string) { return b.do("GET", path, nil, nil) }

// csrf reads the form token from a signed-in page.
func (b *browser) csrf() string {
	b.t.Helper()
	_, page := b.get("/console/")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no form token on the page:\n%s", page)
	}
	return m[1]
}

// signIn takes the first owner through their first sign-in (the one-time link, a
// password, two-step set-up) and returns their browser.
func signIn(t *testing.T, h *servertest.Harness) *browser {
	t.Helper()
	b, _ := ownerBrowser(t, h)
	return b
}

func TestConsoleNeedsASession(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	b := newBrowser(t, h.Base)
	for _, path := range []string{"/console/", "/console/channels/" + h.Ch + "/friends", "/console/channels/" + h.Ch + "/friends/1"} {
		res, _ := b.get(path)
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login" {
			t.Errorf("%s without a session: %d %s", path, res.StatusCode, res.Header.Get("Location"))
		}
	}
	b.c.Jar.SetCookies(mustURL(h.Base), []*http.Cookie{{Name: "linestep_session", Value: "forged"}})
	if res, _ := b.get("/console/"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("forged session: %d", res.StatusCode)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestLoginLinkWorksOnceAndOnlyByPost(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	link, _ := h.Srv.OwnerLoginLink(context.Background(), time.Hour)
	b := newBrowser(t, h.Base)
	// A chat app's link preview fetches the URL: that must not use the link up.
	b.get(link)
	b.get(link)
	token := strings.TrimPrefix(link, "/login/link/")
	res, _ := b.do("POST", "/login/link", url.Values{"token": {token}}, nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("first use: %d", res.StatusCode)
	}
	other := newBrowser(t, h.Base)
	res, page := other.do("POST", "/login/link", url.Values{"token": {token}}, nil)
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "無効") {
		t.Errorf("second use: %d", res.StatusCode)
	}
	res, page = other.do("POST", "/login/link?lang=en", url.Values{"token": {"nonsense"}}, nil)
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "invalid") {
		t.Errorf("bad token in English: %d\n%s", res.StatusCode, page)
	}
}

func TestCrossOriginPostIsRefused(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	b := signIn(t, h)
	token := b.csrf()
	res, _ := b.do("POST", "/logout", url.Values{"csrf": {token}}, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site logout: %d, want 403", res.StatusCode)
	}
	if res, _ := b.get("/console/"); res.StatusCode != 200 {
		t.Errorf("the session did not survive the refused request: %d", res.StatusCode)
	}
	// A same-origin post without the form token (a browser sending neither
	// Sec-Fetch-Site nor Origin would pass the first check) is refused too.
	res, _ = b.do("POST", "/logout", url.Values{}, nil)
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("logout without the form token: %d, want 403", res.StatusCode)
	}
	res, _ = b.do("POST", "/logout", url.Values{"csrf": {token}}, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if res.StatusCode != http.StatusSeeOther {
		t.Errorf("same-origin logout: %d", res.StatusCode)
	}
	if res, _ := b.get("/console/"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("after logout: %d, want a redirect to sign in", res.StatusCode)
	}
}

func TestHostileNamesAndMessagesAreEscaped(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	ctx := context.Background()
	name := `"><img src=x onerror=alert(1)>`
	msg := `<script>alert("msg")</script>`
	u := h.User(name)
	h.OK(h.Emu.Follow(ctx, h.Ch, u))
	h.OK(h.Emu.SendText(ctx, h.Ch, u, msg))
	h.OK(h.Emu.Postback(ctx, h.Ch, u, `a=<b>&c="d"`))
	h.Eventually("the conversation", func() bool { return len(h.Conversation(u)) == 2 && h.Friend(u).DisplayName != "" })
	b := signIn(t, h)

	res, list := b.get("/console/channels/" + h.Ch + "/friends")
	if res.StatusCode != 200 {
		t.Fatalf("friends: %d", res.StatusCode)
	}
	for _, header := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"} {
		if res.Header.Get(header) == "" {
			t.Errorf("no %s", header)
		}
	}
	if !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("CSP allows foreign script: %s", res.Header.Get("Content-Security-Policy"))
	}
	if strings.Contains(list, "<img src=x") || !strings.Contains(list, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("display name not escaped in the list")
	}
	_, detail := b.get("/console/channels/" + h.Ch + "/friends/" + itoa(h.Friend(u).ID))
	if strings.Contains(detail, "<script>alert") || !strings.Contains(detail, "&lt;script&gt;alert(&#34;msg&#34;)&lt;/script&gt;") {
		t.Errorf("message not escaped in the conversation")
	}
	if strings.Contains(detail, `a=<b>`) {
		t.Errorf("postback data not escaped")
	}
}

func TestConsoleSpeaksBothLanguagesAndKeepsChannelsApart(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	ctx := context.Background()
	u := h.User("佐藤")
	h.OK(h.Emu.Follow(ctx, h.Ch, u))
	h.Eventually("the friend", func() bool { return h.Friend(u).DisplayName != "" })
	other, err := h.Srv.Channels.Add(ctx, "Other shop", "s2", "t2")
	if err != nil {
		t.Fatal(err)
	}
	b := signIn(t, h)
	_, ja := b.get("/console/")
	if !strings.Contains(ja, `lang="ja"`) || !strings.Contains(ja, "ダッシュボード") {
		t.Errorf("default language is not Japanese")
	}
	_, en := b.get("/console/?lang=en")
	if !strings.Contains(en, `lang="en"`) || !strings.Contains(en, "Dashboard") {
		t.Errorf("?lang=en is not English")
	}
	if _, again := b.get("/console/"); !strings.Contains(again, `lang="en"`) {
		t.Errorf("the language choice is not remembered")
	}
	// A friend of one channel is not reachable under another's path.
	res, _ := b.get("/console/channels/" + other.ID + "/friends/" + itoa(h.Friend(u).ID))
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("friend through another channel: %d, want 404", res.StatusCode)
	}
	if res, _ := b.get("/console/channels/nochannel/friends"); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown channel: %d", res.StatusCode)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
