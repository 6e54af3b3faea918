package web_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/staff"
)

// ownerPassword is the password the tests' first owner chooses.
const ownerPassword = "kitchen window seventeen lanterns"

// tokenOn reads the form token from a page of the browser's session.
func (b *browser) tokenOn(path string) string {
	b.t.Helper()
	_, page := b.get(path)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no form token on %s:\n%s", path, page)
	}
	return m[1]
}

// post sends a form with the token of the page it is on.
func (b *browser) post(page, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.tokenOn(page))
	return b.do("POST", path, form, nil)
}

func (b *browser) session() string {
	for _, ck := range b.c.Jar.Cookies(mustURL(b.base)) {
		if ck.Name == "linestep_session" {
			return ck.Value
		}
	}
	return ""
}

func wantRedirect(t *testing.T, what string, res *http.Response, to string) {
	t.Helper()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != to {
		t.Fatalf("%s: %d %q, want a redirect to %s", what, res.StatusCode, res.Header.Get("Location"), to)
	}
}

func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var secretOnPage = regexp.MustCompile(`data-secret="([A-Z2-7]+)"`)

// enrol sets up two-step sign-in on the page at path (/login/totp when forced), with a
// code computed from the secret the page shows, and returns the secret and the recovery
// codes shown.
func enrol(t *testing.T, h *servertest.Harness, b *browser, path string) (string, []string) {
	t.Helper()
	_, page := b.get(path)
	m := secretOnPage.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no secret on %s:\n%s", path, page)
	}
	res, done := b.post(path, path, url.Values{"code": {code(t, m[1], h.Clk.Now())}})
	if res.StatusCode != 200 || !strings.Contains(done, "recovery-codes") {
		t.Fatalf("confirm the set-up: %d\n%s", res.StatusCode, done)
	}
	codes := regexp.MustCompile(`<li><code>([a-z2-7-]+)</code></li>`).FindAllStringSubmatch(done, -1)
	var out []string
	for _, c := range codes {
		out = append(out, c[1])
	}
	return m[1], out
}

// ownerBrowser signs the first owner in as a new installation does: the one-time link,
// a password of their own (ownerPassword, unless they have one already), then two-step
// set-up (owners must have it). It returns the signed-in browser and the owner's TOTP
// secret. The clock then moves past the code used, so that the next code is a new one.
// It is what signIn (console_test.go) has to become now that the link applies the
// password and two-step requirements.
func ownerBrowser(t *testing.T, h *servertest.Harness) (*browser, string) {
	t.Helper()
	link, err := h.Srv.OwnerLoginLink(context.Background(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, h.Base)
	res, _ := b.do("POST", "/login/link", url.Values{"token": {strings.TrimPrefix(link, "/login/link/")}}, nil)
	if res.Header.Get("Location") == "/login/password" {
		res, _ = b.post("/login/password", "/login/password", url.Values{"new": {ownerPassword}, "confirm": {ownerPassword}})
	}
	wantRedirect(t, "owner link", res, "/login/totp")
	secret, _ := enrol(t, h, b, "/login/totp")
	h.Clk.Advance(30 * time.Second)
	if res, _ := b.get("/console/"); res.StatusCode != 200 {
		t.Fatalf("owner after set-up: %d", res.StatusCode)
	}
	return b, secret
}

// passwordSignIn signs in with a login and password and, when asked, a code.
func passwordSignIn(t *testing.T, h *servertest.Harness, login, password, secret string) *browser {
	t.Helper()
	b := newBrowser(t, h.Base)
	res, page := b.do("POST", "/login", url.Values{"login": {login}, "password": {password}}, nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in as %s: %d\n%s", login, res.StatusCode, page)
	}
	if res.Header.Get("Location") == "/login/code" {
		res, _ = b.do("POST", "/login/code", url.Values{"code": {code(t, secret, h.Clk.Now())}}, nil)
		h.Clk.Advance(30 * time.Second)
	}
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in as %s: %d", login, res.StatusCode)
	}
	return b
}

func TestOwnerSignsInWithPasswordAndTOTP(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	link, _ := h.Srv.OwnerLoginLink(context.Background(), time.Hour)
	b := newBrowser(t, h.Base)
	res, _ := b.do("POST", "/login/link", url.Values{"token": {strings.TrimPrefix(link, "/login/link/")}}, nil)
	wantRedirect(t, "owner link", res, "/login/password")
	first := b.session()

	// A restricted session reaches its own page only.
	for _, path := range []string{"/console/", "/console/account", "/console/staff", "/login/totp"} {
		res, _ := b.get(path)
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") == path {
			t.Errorf("%s with a password-change session: %d %s", path, res.StatusCode, res.Header.Get("Location"))
		}
	}
	res, _ = b.get("/login")
	wantRedirect(t, "the sign-in page with an unfinished sign-in", res, "/login/password")
	res, page := b.post("/login/password", "/login/password", url.Values{"new": {"password"}, "confirm": {"password"}})
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "12") {
		t.Errorf("a weak password: %d", res.StatusCode)
	}
	res, _ = b.post("/login/password", "/login/password", url.Values{"new": {ownerPassword}, "confirm": {ownerPassword}})
	wantRedirect(t, "first password", res, "/login/totp")
	if res, _ := b.get("/console/account"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("account page before two-step set-up: %d", res.StatusCode)
	}
	_, page = b.get("/login/totp")
	secret := secretOnPage.FindStringSubmatch(page)[1]
	res, png := b.get("/login/totp/qr.png")
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(png, "\x89PNG") {
		t.Errorf("QR code: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if _, again := b.get("/login/totp"); secretOnPage.FindStringSubmatch(again)[1] != secret {
		t.Errorf("reloading the set-up page changed the secret the app may have scanned")
	}
	res, _ = b.post("/login/totp", "/login/totp", url.Values{"code": {"000000"}})
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("wrong set-up code: %d", res.StatusCode)
	}
	secret, recovery := enrol(t, h, b, "/login/totp")
	enrolled := code(t, secret, h.Clk.Now())
	if len(recovery) != staff.RecoveryCodeCount {
		t.Fatalf("%d recovery codes shown", len(recovery))
	}
	if res, _ := b.get("/console/"); res.StatusCode != 200 {
		t.Fatalf("console after set-up: %d", res.StatusCode)
	}
	if b.session() == first {
		t.Errorf("the session token did not change")
	}
	_, account := b.get("/console/account")
	if strings.Contains(account, recovery[0]) {
		t.Errorf("recovery codes shown again")
	}
	b.post("/console/account", "/logout", nil)

	// Password, then the code: the very code of the set-up is not accepted twice.
	b = newBrowser(t, h.Base)
	res, _ = b.do("POST", "/login", url.Values{"login": {"owner"}, "password": {ownerPassword}}, nil)
	wantRedirect(t, "password", res, "/login/code")
	res, _ = b.do("POST", "/login/code", url.Values{"code": {enrolled}}, nil)
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("replayed code: %d, want 401", res.StatusCode)
	}
	h.Clk.Advance(30 * time.Second)
	fresh := code(t, secret, h.Clk.Now())
	res, _ = b.do("POST", "/login/code", url.Values{"code": {fresh}}, nil)
	wantRedirect(t, "fresh code", res, "/console/")
	b.post("/console/account", "/logout", nil)
	b = newBrowser(t, h.Base)
	b.do("POST", "/login", url.Values{"login": {"owner"}, "password": {ownerPassword}}, nil)
	if res, _ := b.do("POST", "/login/code", url.Values{"code": {fresh}}, nil); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("a code used for a sign-in, again: %d", res.StatusCode)
	}

	// A recovery code works once.
	for i, want := range []int{http.StatusSeeOther, http.StatusUnauthorized} {
		b := newBrowser(t, h.Base)
		b.do("POST", "/login", url.Values{"login": {"owner"}, "password": {ownerPassword}}, nil)
		res, _ := b.do("POST", "/login/code", url.Values{"code": {strings.ToUpper(recovery[3])}}, nil)
		if res.StatusCode != want {
			t.Errorf("recovery code, use %d: %d, want %d", i+1, res.StatusCode, want)
		}
	}

	// The link works no more, and a used one says so.
	res, page = newBrowser(t, h.Base).do("POST", "/login/link", url.Values{"token": {strings.TrimPrefix(link, "/login/link/")}}, nil)
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "無効") {
		t.Errorf("used link: %d", res.StatusCode)
	}

	// Sign-ins are in the audit log; a link sign-in of a member with two-step sign-in
	// asks for the code.
	recs, err := h.Srv.Audit.Query(context.Background(), audit.Filter{Action: audit.SignInSuccess})
	if err != nil || len(recs) < 3 {
		t.Errorf("audited sign-ins: %d %v", len(recs), err)
	}
	link, _ = h.Srv.OwnerLoginLink(context.Background(), time.Hour)
	res, _ = newBrowser(t, h.Base).do("POST", "/login/link", url.Values{"token": {strings.TrimPrefix(link, "/login/link/")}}, nil)
	wantRedirect(t, "link of an owner with two-step sign-in", res, "/login/code")
}

// Over TLS the session cookie is __Host- prefixed, Secure, HttpOnly and SameSite=Lax.
func TestSessionCookieOverTLS(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	ts := httptest.NewTLSServer(h.Srv.Handler())
	defer ts.Close()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	link, _ := h.Srv.OwnerLoginLink(context.Background(), time.Hour)
	res, err := client.PostForm(ts.URL+"/login/link", url.Values{"token": {strings.TrimPrefix(link, "/login/link/")}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var set string
	for _, c := range res.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "__Host-linestep_session=") && !strings.Contains(c, "Max-Age=0") {
			set = c
		}
	}
	for _, attr := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(set, attr) {
			t.Errorf("session cookie %q lacks %s", set, attr)
		}
	}
	if strings.Contains(set, "Domain=") {
		t.Errorf("session cookie has a domain: %q", set)
	}
}

// Wrong passwords lock the login; the answer is the same as for a login that does not
// exist, and the owner sees the lock among the sign-ins to check.
func TestRepeatedFailuresLockAndAreFlagged(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	owner, _ := ownerBrowser(t, h)
	ctx := context.Background()
	if _, err := h.Srv.Staff.CreateMember(ctx, "hanako", "山田花子", staff.Operator, "plum blossom river stones"); err != nil {
		t.Fatal(err)
	}
	answer := func(login, password string) (int, string) {
		res, page := newBrowser(t, h.Base).do("POST", "/login", url.Values{"login": {login}, "password": {password}}, nil)
		return res.StatusCode, regexp.MustCompile(`<p class="error">[^<]*</p>`).FindString(page)
	}
	unknownStatus, unknown := answer("nobody-here", "whatever it is")
	for range staff.LockThreshold {
		if status, msg := answer("hanako", "wrong password!!"); status != unknownStatus || msg != unknown || msg == "" {
			t.Fatalf("wrong password: %d %q, unknown login: %d %q", status, msg, unknownStatus, unknown)
		}
	}
	if status, msg := answer("hanako", "plum blossom river stones"); status != unknownStatus || msg != unknown {
		t.Errorf("right password on a locked login: %d %q", status, msg)
	}
	_, page := owner.get("/console/logins")
	if !strings.Contains(page, "失敗が続いたためロック") || !strings.Contains(page, "山田花子") {
		t.Errorf("the lock is not among the sign-ins to check:\n%s", page)
	}
	// The unknown login is not kept, in the history nor in the audit log.
	if strings.Contains(page, "nobody-here") {
		t.Errorf("an unknown login is shown")
	}
	recs, _ := h.Srv.Audit.Query(ctx, audit.Filter{Action: audit.SignInFailure})
	if len(recs) != staff.LockThreshold+2 {
		t.Errorf("%d failures audited, want %d", len(recs), staff.LockThreshold+2)
	}
	for _, r := range recs {
		if strings.Contains(r.Actor.Name+r.Subject+detail(r), "nobody") {
			t.Errorf("audit record %d keeps the unknown login", r.Seq)
		}
	}
	// The lock ends in time.
	h.Clk.Advance(staff.LockDuration + time.Minute)
	if status, _ := answer("hanako", "plum blossom river stones"); status != http.StatusSeeOther {
		t.Errorf("after the lock: %d", status)
	}
}

func detail(r audit.Record) string {
	var b bytes.Buffer
	for k, v := range r.Detail {
		b.WriteString(k + "=" + v + " ")
	}
	return b.String()
}
