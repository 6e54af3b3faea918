package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/staff"
)

// "Sign out everywhere" ends every session of the member: a cookie kept from before no
// longer opens anything. One session can be ended from another.
func TestSignOutEverywhere(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	first, secret := ownerBrowser(t, h)
	second := passwordSignIn(t, h, "owner", ownerPassword, secret)
	third := passwordSignIn(t, h, "owner", ownerPassword, secret)
	kept := first.session()

	_, page := second.get("/console/account")
	if n := strings.Count(page, "/end\""); n != 2 {
		t.Errorf("the account page offers to end %d sessions, want the 2 others", n)
	}
	if !strings.Contains(page, "この端末") {
		t.Errorf("the current session is not marked")
	}
	// End the third session from the second.
	ids := regexp.MustCompile(`/console/account/sessions/([0-9a-f]+)/end`).FindAllStringSubmatch(page, -1)
	var ended bool
	for _, id := range ids {
		res, _ := second.post("/console/account", "/console/account/sessions/"+id[1]+"/end", nil)
		wantRedirect(t, "end one session", res, "/console/account?done=session")
		if res, _ := third.get("/console/"); res.StatusCode == http.StatusSeeOther {
			ended = true
			break
		}
	}
	if !ended {
		t.Errorf("ending the third session from the second did not sign it out")
	}

	res, _ := second.post("/console/account", "/console/account/sessions/end-all", nil)
	wantRedirect(t, "sign out everywhere", res, "/login")
	for name, b := range map[string]*browser{"first": first, "second": second} {
		if res, _ := b.get("/console/"); res.StatusCode != http.StatusSeeOther {
			t.Errorf("%s browser after signing out everywhere: %d", name, res.StatusCode)
		}
	}
	thief := newBrowser(t, h.Base)
	thief.c.Jar.SetCookies(mustURL(h.Base), []*http.Cookie{{Name: "linestep_session", Value: kept}})
	if res, _ := thief.get("/console/account"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("an old session cookie still works: %d", res.StatusCode)
	}
	recs, _ := h.Srv.Audit.Query(context.Background(), audit.Filter{Action: audit.SignOut})
	if len(recs) != 2 {
		t.Errorf("%d sign-outs audited, want 2", len(recs))
	}
}

// The account page: a suspicious sign-in shows as a banner until acknowledged; the
// password changes (other sessions end); two-step sign-in cannot be turned off where the
// role requires it, and new recovery codes need a fresh confirmation.
func TestAccountPage(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	b, secret := ownerBrowser(t, h)
	other := newBrowser(t, h.Base)
	// A sign-in from another browser and address is flagged as a new device.
	res, _ := other.do("POST", "/login", url.Values{"login": {"owner"}, "password": {ownerPassword}}, map[string]string{"User-Agent": "Strange/1.0"})
	wantRedirect(t, "password", res, "/login/code")
	res, _ = other.do("POST", "/login/code", url.Values{"code": {code(t, secret, h.Clk.Now())}}, map[string]string{"User-Agent": "Strange/1.0"})
	wantRedirect(t, "code", res, "/console/")
	h.Clk.Advance(30 * time.Second)

	_, page := b.get("/console/account")
	if !strings.Contains(page, "確認が必要なログイン") || !strings.Contains(page, "Strange/1.0") {
		t.Fatalf("no banner for the new device:\n%s", page)
	}
	ack := regexp.MustCompile(`/console/account/flags/(\d+)/ack`).FindStringSubmatch(page)
	res, _ = b.post("/console/account", ack[0], nil)
	wantRedirect(t, "acknowledge", res, "/console/account?done=flag")
	if _, page := b.get("/console/account"); strings.Contains(page, "確認が必要なログインがあります") {
		t.Errorf("the banner stays after acknowledging")
	}

	res, _ = b.post("/console/account", "/console/account/totp/disable", nil)
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("an owner turns two-step sign-in off: %d", res.StatusCode)
	}
	h.Clk.Advance(staff.ReauthWindow + time.Minute)
	res, _ = b.post("/console/account", "/console/account/recovery", nil)
	wantRedirect(t, "new recovery codes without a fresh confirmation", res, "/console/account/reauth?next=%2Fconsole%2Faccount")
	res, _ = b.post("/console/account/reauth", "/console/account/reauth", url.Values{"password": {ownerPassword}, "code": {code(t, secret, h.Clk.Now())}, "next": {"https://evil.example/"}})
	wantRedirect(t, "confirmation with a foreign next", res, "/console/account")
	res, page = b.post("/console/account", "/console/account/recovery", nil)
	if res.StatusCode != 200 || strings.Count(page, "<li><code>") != staff.RecoveryCodeCount {
		t.Errorf("new recovery codes: %d", res.StatusCode)
	}

	const next = "a completely different passphrase"
	res, page = b.post("/console/account", "/console/account/password", url.Values{"current": {"wrong one, surely"}, "new": {next}, "confirm": {next}})
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "今のパスワードが違います") {
		t.Errorf("wrong current password: %d", res.StatusCode)
	}
	res, _ = b.post("/console/account", "/console/account/password", url.Values{"current": {ownerPassword}, "new": {next}, "confirm": {next}})
	wantRedirect(t, "password change", res, "/console/account?done=password")
	if res, _ := b.get("/console/account"); res.StatusCode != 200 {
		t.Errorf("this session after the change: %d", res.StatusCode)
	}
	if res, _ := other.get("/console/account"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("the other session after the change: %d", res.StatusCode)
	}
	recs, _ := h.Srv.Audit.Query(context.Background(), audit.Filter{Action: audit.PasswordChange})
	if len(recs) != 2 { // the first password, and this change
		t.Errorf("%d password changes audited, want 2", len(recs))
	}
}
