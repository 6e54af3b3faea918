package web_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

const adminPassword = "green tea ceremony at noon"

func memberID(t *testing.T, h *servertest.Harness, login string) string {
	t.Helper()
	m, err := h.Srv.Staff.GetByLogin(context.Background(), login)
	if err != nil {
		t.Fatal(err)
	}
	return itoa(m.ID)
}

// Staff and roles through the console, on both databases: an owner adds an admin and
// an operator (invited by link); the admin must set up two-step sign-in, can end the
// operator's sessions and change their role after confirming who they are, but can
// make nobody an owner, grant no permission they lack (whatever the form says) and not
// touch the owner. Every change is in the audit log, whose chain stays whole.
func TestStaffAndRoles(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		ctx := context.Background()
		owner, _ := ownerBrowser(t, h)

		res, page := owner.post("/console/staff", "/console/staff", url.Values{"name": {"秋子"}, "login": {"Akiko"}, "role": {"admin"},
			"mode": {"password"}, "password": {adminPassword}})
		if res.StatusCode != 200 || !strings.Contains(page, "秋子") {
			t.Fatalf("create an admin: %d\n%s", res.StatusCode, page)
		}
		res, page = owner.post("/console/staff", "/console/staff", url.Values{"name": {"健"}, "login": {"ken"}, "role": {"operator"},
			"channels": {h.Ch}, "mode": {"invite"}})
		invite := regexp.MustCompile(`/login/link/([A-Za-z0-9_-]+)`).FindStringSubmatch(page)
		if res.StatusCode != 200 || invite == nil {
			t.Fatalf("invite an operator: %d\n%s", res.StatusCode, page)
		}
		ken := newBrowser(t, h.Base)
		res, _ = ken.do("POST", "/login/link", url.Values{"token": {invite[1]}}, nil)
		wantRedirect(t, "invitation", res, "/login/password")
		res, _ = ken.post("/login/password", "/login/password", url.Values{"new": {"bamboo forest morning walk"}, "confirm": {"bamboo forest morning walk"}})
		wantRedirect(t, "the operator's first password", res, "/console/")
		if res, _ := ken.get("/console/channels/" + h.Ch + "/friends"); res.StatusCode != 200 {
			t.Errorf("the operator on their channel: %d", res.StatusCode)
		}
		_, list := owner.get("/console/staff")
		for _, want := range []string{"秋子", "健", "Test shop", "管理者", "オペレーター"} {
			if !strings.Contains(list, want) {
				t.Errorf("the staff list does not show %q", want)
			}
		}

		// The admin signs in with the password and must set up two-step sign-in first.
		admin := newBrowser(t, h.Base)
		res, _ = admin.do("POST", "/login", url.Values{"login": {"akiko"}, "password": {adminPassword}}, nil)
		wantRedirect(t, "admin's password", res, "/login/totp")
		adminSecret, _ := enrol(t, h, admin, "/login/totp")
		h.Clk.Advance(30 * time.Second)
		kenID := memberID(t, h, "ken")
		res, _ = admin.post("/console/staff/"+kenID, "/console/staff/"+kenID+"/end-sessions", nil)
		wantRedirect(t, "end the operator's sessions", res, "/console/staff/"+kenID+"?done=sessions")
		if res, _ := ken.get("/console/"); res.StatusCode != http.StatusSeeOther {
			t.Errorf("the operator after the admin ended their sessions: %d", res.StatusCode)
		}

		// A role change needs a recent confirmation.
		h.Clk.Advance(staff.ReauthWindow + time.Minute)
		res, _ = admin.post("/console/staff/"+kenID, "/console/staff/"+kenID+"/role", url.Values{"role": {"analyst"}})
		wantRedirect(t, "role change without confirming", res, "/console/account/reauth?next=%2Fconsole%2Fstaff%2F"+kenID)
		if m, _ := h.Srv.Staff.GetByLogin(ctx, "ken"); m.Role != staff.Operator {
			t.Fatalf("the role changed without a confirmation: %s", m.Role)
		}
		res, _ = admin.post("/console/account/reauth", "/console/account/reauth", url.Values{"password": {adminPassword}, "code": {"123456"}, "next": {"/console/staff/" + kenID}})
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("confirmation with a wrong code: %d", res.StatusCode)
		}
		res, _ = admin.post("/console/account/reauth", "/console/account/reauth", url.Values{"password": {adminPassword}, "code": {code(t, adminSecret, h.Clk.Now())}, "next": {"/console/staff/" + kenID}})
		wantRedirect(t, "confirmation", res, "/console/staff/"+kenID)

		// Nobody grants what they do not hold: not the owner role, not audit:read.
		_, form := admin.get("/console/staff/" + kenID)
		if strings.Contains(form, `value="owner"`) {
			t.Errorf("the admin is offered the owner role")
		}
		res, _ = admin.post("/console/staff/"+kenID, "/console/staff/"+kenID+"/role", url.Values{"role": {"owner"}})
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("an admin makes an owner: %d", res.StatusCode)
		}
		res, _ = admin.post("/console/staff", "/console/staff", url.Values{"name": {"X"}, "login": {"sneaky"}, "role": {"owner"}, "mode": {"invite"}})
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("an admin creates an owner: %d", res.StatusCode)
		}
		if _, err := h.Srv.Staff.GetByLogin(ctx, "sneaky"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a refused member exists: %v", err)
		}
		_, roles := admin.get("/console/staff/roles")
		if strings.Contains(roles, `value="audit:read"`) || !strings.Contains(roles, `value="roles:manage"`) {
			t.Errorf("the role form offers the wrong permissions")
		}
		res, _ = admin.post("/console/staff/roles", "/console/staff/roles", url.Values{"name": {"auditor"}, "label": {"監査"}, "perms": {"audit:read", "staff:read"}})
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("an admin creates a role with audit:read: %d", res.StatusCode)
		}
		if _, err := h.Srv.Access.Role(ctx, h.Srv.DB, "auditor"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the refused role exists: %v", err)
		}
		ownerID := memberID(t, h, "owner")
		for _, act := range []string{"disable", "end-sessions", "force-password"} {
			if res, _ := admin.post("/console/staff", "/console/staff/"+ownerID+"/"+act, nil); res.StatusCode != http.StatusUnprocessableEntity {
				t.Errorf("an admin does %s to the owner: %d", act, res.StatusCode)
			}
		}

		// What the admin may do goes through.
		res, _ = admin.post("/console/staff/"+kenID, "/console/staff/"+kenID+"/role", url.Values{"role": {"analyst"}})
		wantRedirect(t, "role change", res, "/console/staff/"+kenID+"?done=role")
		res, _ = admin.post("/console/staff/roles", "/console/staff/roles", url.Values{"name": {"reception"}, "label": {"受付"},
			"perms": {"dashboard:read", "friends:read", "chats:read", "chats:reply"}, "require_totp": {"on"}})
		wantRedirect(t, "a custom role", res, "/console/staff/roles?done=saved")
		res, _ = admin.post("/console/staff/"+kenID, "/console/staff/"+kenID+"/role", url.Values{"role": {"reception"}})
		wantRedirect(t, "a custom role given", res, "/console/staff/"+kenID+"?done=role")
		_, roles = owner.get("/console/staff/roles")
		if !strings.Contains(roles, "受付") || !strings.Contains(roles, "チャットの返信") {
			t.Errorf("the roles page does not show the custom role")
		}
		res, _ = admin.post("/console/staff/roles", "/console/staff/roles/reception/delete", nil)
		if res.StatusCode != http.StatusConflict {
			t.Errorf("delete a role in use: %d", res.StatusCode)
		}

		changes, _ := h.Srv.Audit.Query(ctx, audit.Filter{Action: audit.RoleChange})
		if len(changes) != 2 || changes[1].Detail["from"] != "operator" || changes[1].Detail["to"] != "analyst" || changes[1].Actor.Name != "akiko" {
			t.Errorf("role changes audited: %+v", changes)
		}
		for _, a := range []audit.Action{audit.StaffCreate, audit.PermissionChange, audit.SignOut, audit.TwoFactorEnable} {
			if recs, _ := h.Srv.Audit.Query(ctx, audit.Filter{Action: a}); len(recs) == 0 {
				t.Errorf("no %s in the audit log", a)
			}
		}
		rep, err := h.Srv.Audit.Verify(ctx)
		if err != nil || !rep.OK() {
			t.Errorf("audit verify: %+v %v", rep, err)
		}
	})
}
