package web_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/staff"
)

// The audit page shows sign-ins and role changes and filters them; its export needs a
// fresh confirmation, is itself recorded, and neutralises cells a spreadsheet would run
// as formulas. Only those with audit:read see the page.
func TestAuditPageAndExport(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	ctx := context.Background()
	owner, secret := ownerBrowser(t, h)
	// Someone tries a sign-in with a formula for a browser name.
	newBrowser(t, h.Base).do("POST", "/login", url.Values{"login": {"owner"}, "password": {"not the password"}},
		map[string]string{"User-Agent": "=HYPERLINK(\"http://evil.example\",\"click\")"})
	res, _ := owner.post("/console/staff", "/console/staff", url.Values{"name": {"佐藤"}, "login": {"sato"}, "role": {"operator"},
		"mode": {"password"}, "password": {"sunflower field in august"}})
	if res.StatusCode != 200 {
		t.Fatalf("create a member: %d", res.StatusCode)
	}
	satoID := memberID(t, h, "sato")
	res, _ = owner.post("/console/staff/"+satoID, "/console/staff/"+satoID+"/role", url.Values{"role": {"analyst"}})
	wantRedirect(t, "role change", res, "/console/staff/"+satoID+"?done=role")

	res, page := owner.get("/console/audit")
	if res.StatusCode != 200 {
		t.Fatalf("audit page: %d", res.StatusCode)
	}
	for _, want := range []string{"ログイン成功", "ログイン失敗", "役割の変更", "スタッフ追加", "変更前: オペレーター / 変更後: アナリスト", "佐藤 (staff:", "staff:" + satoID} {
		if !strings.Contains(page, want) {
			t.Errorf("the audit page does not show %q", want)
		}
	}
	if strings.Contains(page, "<a href=\"http://evil") {
		t.Errorf("a user agent reached the page unescaped")
	}
	_, filtered := owner.get("/console/audit?action=role")
	if !strings.Contains(filtered, "役割の変更") || strings.Contains(filtered, "ログイン成功") {
		t.Errorf("the action filter does not filter")
	}
	today := h.Clk.Now().In(time.FixedZone("JST", 9*3600)).Format("2006-01-02")
	if _, page := owner.get("/console/audit?from=" + today + "&to=" + today + "&actor=" + memberID(t, h, "owner")); !strings.Contains(page, "役割の変更") {
		t.Errorf("filtering by day and actor lost today's records")
	}
	if _, page := owner.get("/console/audit?to=2020-01-01"); !strings.Contains(page, "該当する記録はありません") {
		t.Errorf("filtering by an old date still shows records")
	}

	// Export: confirm first, then the CSV.
	h.Clk.Advance(staff.ReauthWindow + time.Minute)
	res, _ = owner.post("/console/audit", "/console/audit/export", url.Values{"action": {"signin"}})
	wantRedirect(t, "export without confirming", res, "/console/account/reauth?next=%2Fconsole%2Faudit%3Faction%3Dsignin")
	res, _ = owner.post("/console/account/reauth", "/console/account/reauth", url.Values{"password": {ownerPassword}, "code": {code(t, secret, h.Clk.Now())},
		"next": {"/console/audit?action=signin"}})
	wantRedirect(t, "confirmation", res, "/console/audit?action=signin")
	res, body := owner.post("/console/audit", "/console/audit/export", url.Values{"action": {"signin"}})
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(res.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %s %s", res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Content-Disposition"))
	}
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(body, "\ufeff"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 3 || rows[0][0] != "seq" {
		t.Fatalf("export has %d rows", len(rows))
	}
	var neutral bool
	for _, row := range rows[1:] {
		if !strings.HasPrefix(row[5], "signin.") {
			t.Errorf("the export ignores the filter: %s", row[5])
		}
		for _, cell := range row {
			if strings.HasPrefix(cell, "=") {
				t.Errorf("a formula cell: %q", cell)
			}
			if strings.HasPrefix(cell, "'=HYPERLINK") {
				neutral = true
			}
		}
	}
	if !neutral {
		t.Errorf("the hostile user agent is not in the export, neutralised")
	}
	exports, _ := h.Srv.Audit.Query(ctx, audit.Filter{Action: audit.AuditExport})
	if len(exports) != 1 || exports[0].Actor.Name != "owner" || exports[0].Detail["filter_action"] != "signin" {
		t.Errorf("the export is not audited: %+v", exports)
	}

	// Who may not read the log does not see it.
	sato := passwordSignIn(t, h, "sato", "sunflower field in august", "")
	for _, path := range []string{"/console/audit", "/console/logins", "/console/staff"} {
		if res, _ := sato.get(path); res.StatusCode != http.StatusForbidden {
			t.Errorf("an analyst on %s: %d", path, res.StatusCode)
		}
	}
	if res, _ := sato.post("/console/account", "/console/audit/export", nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("an analyst exports: %d", res.StatusCode)
	}

	rep, err := h.Srv.Audit.Verify(ctx)
	if err != nil || !rep.OK() {
		t.Errorf("audit verify: %+v %v", rep, err)
	}
}

// A custom role may include audit:read; a member who has it and works on one LINE
// account sees that account's records only, neither another account's nor the
// installation's own (sign-ins, staff changes), on the page and in the export.
func TestAuditReaderBoundToAChannel(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	ctx := context.Background()
	owner, _ := ownerBrowser(t, h)
	other, err := h.Srv.Channels.Add(ctx, "別の店", "other-secret", "other-token")
	if err != nil {
		t.Fatal(err)
	}
	res, _ := owner.post("/console/staff/roles", "/console/staff/roles", url.Values{"name": {"auditor"}, "label": {"監査担当"},
		"perms": {"audit:read", "audit:export"}})
	wantRedirect(t, "a custom role", res, "/console/staff/roles?done=saved")
	res, _ = owner.post("/console/staff", "/console/staff", url.Values{"name": {"森"}, "login": {"mori"}, "role": {"auditor"},
		"channels": {h.Ch}, "mode": {"password"}, "password": {"quiet harbour at dawn"}})
	if res.StatusCode != 200 {
		t.Fatalf("create a member: %d", res.StatusCode)
	}
	res, _ = owner.post("/console/staff", "/console/staff", url.Values{"name": {"別店の人"}, "login": {"elsewhere"}, "role": {"operator"},
		"channels": {other.ID}, "mode": {"password"}, "password": {"maple leaves drift slowly"}})
	if res.StatusCode != 200 {
		t.Fatalf("create a member of the other account: %d", res.StatusCode)
	}
	for _, rec := range []audit.Record{
		{Action: audit.FriendView, ChannelID: h.Ch, Subject: "friend:101"},
		{Action: audit.FriendView, ChannelID: other.ID, Subject: "friend:202"},
	} {
		rec.Actor = audit.Actor{Kind: audit.ActorSystem, Name: "test"}
		if _, err := h.Srv.Audit.Add(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}

	mori := passwordSignIn(t, h, "mori", "quiet harbour at dawn", "")
	_, page := mori.get("/console/audit")
	if !strings.Contains(page, "friend:101") {
		t.Errorf("the member does not see their account's record")
	}
	for _, hidden := range []string{"friend:202", "別の店", "ログイン成功", "スタッフ追加", "elsewhere"} {
		if strings.Contains(page, hidden) {
			t.Errorf("the member bound to one account sees %q", hidden)
		}
	}
	if _, page := mori.get("/console/audit?channel=" + other.ID); strings.Contains(page, "friend:202") {
		t.Errorf("asking for the other account's records shows them")
	}
	res, body := mori.post("/console/audit", "/console/audit/export", url.Values{})
	if res.StatusCode != 200 {
		t.Fatalf("export: %d", res.StatusCode)
	}
	if !strings.Contains(body, "friend:101") || strings.Contains(body, "friend:202") || strings.Contains(body, "signin.") {
		t.Errorf("the export is not limited to the member's account:\n%s", body)
	}

	_, page = owner.get("/console/audit")
	for _, want := range []string{"friend:101", "friend:202", "ログイン成功"} {
		if !strings.Contains(page, want) {
			t.Errorf("the owner does not see %q", want)
		}
	}
}
