package web_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// fxEachDB runs a console test on SQLite and, when LINESTEP_TEST_POSTGRES_URL is set,
// on PostgreSQL too.
func fxEachDB(t *testing.T, fn func(t *testing.T, h *servertest.Harness)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, servertest.Start(t, t.TempDir()+"/c.db")) })
	if os.Getenv(testutil.PostgresURLEnv) != "" {
		t.Run("postgres", func(t *testing.T) { fn(t, servertest.Start(t, testutil.PostgresURL(t))) })
	}
}

const fxPassword = "tsukimi-dango-kaze-42"

// fxRole saves a custom role, as the owner.
func fxRole(t *testing.T, h *servertest.Harness, name string, perms ...access.Permission) {
	t.Helper()
	ctx := context.Background()
	owner, _, err := h.Srv.Staff.EnsureOwner(ctx, "owner", "Owner")
	if err != nil {
		t.Fatal(err)
	}
	by, err := h.Srv.Access.StaffPrincipal(ctx, owner.ID, owner.Login, string(owner.Role))
	if err != nil {
		t.Fatal(err)
	}
	err = h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		return h.Srv.Access.SaveRole(ctx, tx, by, access.Role{Name: name, Label: name, Permissions: perms})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fxMember creates a member with a role, working on the harness's channel, with a
// password, and signs them in by a one-time link.
func fxMember(t *testing.T, h *servertest.Harness, login, name, role string) (*browser, staff.Member) {
	t.Helper()
	ctx := context.Background()
	owner, _, err := h.Srv.Staff.EnsureOwner(ctx, "owner", "Owner")
	if err != nil {
		t.Fatal(err)
	}
	by, err := h.Srv.Access.StaffPrincipal(ctx, owner.ID, owner.Login, string(owner.Role))
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.Srv.Staff.CreateMember(ctx, login, name, staff.Role(role), fxPassword)
	if err != nil {
		t.Fatal(err)
	}
	err = h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		return h.Srv.Access.SetChannels(ctx, tx, by, m.ID, []string{h.Ch})
	})
	if err != nil {
		t.Fatal(err)
	}
	token, err := h.Srv.Staff.IssueLoginLink(ctx, m.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, h.Base)
	b.get("/login/link/" + token)
	res, _ := b.do("POST", "/login/link", url.Values{"token": {token}}, nil)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/console/" {
		t.Fatalf("%s signs in: %d %s", login, res.StatusCode, res.Header.Get("Location"))
	}
	return b, m
}

// fxManager signs in a member whose role holds every permission (friends:read_pii,
// export, chats...) but, unlike the owner's, needs no second factor: the pages' rules
// are tested apart from how the owner signs in.
func fxManager(t *testing.T, h *servertest.Harness) (*browser, staff.Member) {
	t.Helper()
	fxRole(t, h, "manager", access.All...)
	return fxMember(t, h, "manager", "Manager", "manager")
}

// fxFriend is 山田 太郎 with a phone, an email, an area (an attribute) and a memo that
// a spreadsheet would run as a formula.
func fxFriend(t *testing.T, h *servertest.Harness) friend.Friend {
	t.Helper()
	ctx := context.Background()
	u := h.User("山田 太郎")
	h.OK(h.Emu.Follow(ctx, h.Ch, u))
	h.Eventually("the friend's profile", func() bool { return h.Friend(u).DisplayName != "" })
	f := h.Friend(u)
	for _, def := range []struct {
		key, label, value string
		sens              friend.Sensitivity
	}{
		{"phone", "電話番号", "090-1234-5678", friend.Normal},
		{"email", "メール", "Taro.Yamada@example.com", friend.Normal},
		{"area", "地域", "大阪", friend.Attribute},
		{"memo", "メモ", "=HYPERLINK(\"http://evil.example\",\"x\")", friend.Normal},
	} {
		fl, err := h.Srv.Friends.DefineField(ctx, h.Srv.DB, friend.Field{ChannelID: h.Ch, Key: def.key, Label: def.label,
			Type: friend.TextField, Purpose: "テスト", Sensitivity: def.sens})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Srv.Friends.SetField(ctx, h.Srv.DB, f.ID, fl, def.value); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// fxRecords returns the audit records of an action by one staff member.
func fxRecords(t *testing.T, h *servertest.Harness, action audit.Action, staffID int64) []audit.Record {
	t.Helper()
	recs, err := h.Srv.Audit.Query(context.Background(), audit.Filter{Action: action, ActorKind: audit.ActorStaff, ActorID: itoa(staffID)})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func fxWant(t *testing.T, what, page string, want []string, not []string) {
	t.Helper()
	for _, s := range want {
		if !strings.Contains(page, s) {
			t.Errorf("%s does not show %q", what, s)
		}
	}
	for _, s := range not {
		if strings.Contains(page, s) {
			t.Errorf("%s shows %q", what, s)
		}
	}
}

func TestFriendPagesMaskPersonalDataAndAuditUnmaskedViews(t *testing.T) {
	fxEachDB(t, func(t *testing.T, h *servertest.Harness) {
		f := fxFriend(t, h)
		mgr, mgrm := fxManager(t, h)
		mgrID := mgrm.ID
		detail := "/console/channels/" + h.Ch + "/friends/" + itoa(f.ID)

		res, page := mgr.get(detail)
		if res.StatusCode != 200 {
			t.Fatalf("manager detail: %d", res.StatusCode)
		}
		fxWant(t, "the manager's detail page", page, []string{"山田 太郎", "090-1234-5678", "Taro.Yamada@example.com", "大阪"}, []string{"山* **"})
		views := fxRecords(t, h, audit.FriendView, mgrID)
		if len(views) != 1 || views[0].Subject != audit.Subject("friend", f.ID) {
			t.Fatalf("manager's views: %+v", views)
		}
		for _, k := range []string{"display_name", "picture", "phone", "email", "memo"} {
			if !slices.Contains(views[0].Fields, k) {
				t.Errorf("the view record lacks %q: %v", k, views[0].Fields)
			}
		}
		if slices.Contains(views[0].Fields, "area") {
			t.Errorf("an attribute is recorded as personal: %v", views[0].Fields)
		}
		_, list := mgr.get("/console/channels/" + h.Ch + "/friends")
		fxWant(t, "the manager's list", list, []string{"山田 太郎"}, nil)
		if views := fxRecords(t, h, audit.FriendView, mgrID); len(views) != 2 || views[0].Detail["friends"] != itoa(f.ID) || views[0].Subject != "" {
			t.Errorf("the manager's list view is not recorded with the friends shown: %+v", views[0])
		}
		// With read_pii, the search finds a part of the name.
		_, found := mgr.get("/console/channels/" + h.Ch + "/friends?q=" + url.QueryEscape("山田"))
		fxWant(t, "the manager's partial search", found, []string{"/friends/" + itoa(f.ID) + `"`}, nil)

		op, opm := fxMember(t, h, "op", "Operator", access.Operator)
		base := "/console/channels/" + h.Ch + "/friends"
		_, list = op.get(base)
		fxWant(t, "the operator's list", list, []string{"山* **"}, []string{"山田", "profile.line-scdn.net", "friends/export"})
		res, page = op.get(detail)
		if res.StatusCode != 200 {
			t.Fatalf("operator detail: %d", res.StatusCode)
		}
		fxWant(t, "the operator's detail", page, []string{"山* **", "***-****-5678", "T**********@e******.com", "大阪"},
			[]string{"山田", "090-1234", "Taro.Yamada", "HYPERLINK", "profile.line-scdn.net", "/reveal"})
		if n := len(fxRecords(t, h, audit.FriendView, opm.ID)); n != 0 {
			t.Errorf("masked views wrote %d friend.view records", n)
		}

		// Exact values find the friend, however they are typed; the result is masked.
		for _, q := range []string{"09012345678", "０９０ １２３４ ５６７８", "(090) 1234-5678", "taro.yamada@EXAMPLE.com"} {
			_, page := op.get(base + "?q=" + url.QueryEscape(q))
			fxWant(t, "the exact search "+q, page, []string{"/friends/" + itoa(f.ID) + `"`, "山* **"}, []string{"山田", "090-1234"})
		}
		if _, page := op.get(base + "?q=" + url.QueryEscape("090-1234-5678")); !strings.Contains(page, "***-****-5678") {
			t.Errorf("the exact search does not say which value matched (masked)")
		}
		// A part of a value, a name, a short value: nothing.
		for _, q := range []string{"090-1234-567", "山田", "yamada", "5678", "example.com"} {
			_, page := op.get(base + "?q=" + url.QueryEscape(q))
			fxWant(t, "the partial search "+q, page, nil, []string{"/friends/" + itoa(f.ID) + `"`, "山田 太郎", "山* **"})
		}
		// Personal fields are no filter for them; attributes are.
		_, page = op.get(base + "?fk=phone&fv=" + url.QueryEscape("090-1234-5678"))
		fxWant(t, "a filter on a personal field", page, []string{"個人情報の項目では絞り込めません"}, []string{"/friends/" + itoa(f.ID) + `"`})
		_, page = op.get(base + "?fk=area&fv=" + url.QueryEscape("大阪"))
		fxWant(t, "a filter on an attribute", page, []string{"/friends/" + itoa(f.ID) + `"`, "大阪"}, nil)
		_, page = op.get(base + "?fk=area&fv=" + url.QueryEscape("京都"))
		fxWant(t, "a filter on another area", page, nil, []string{"/friends/" + itoa(f.ID) + `"`})
		if n := len(fxRecords(t, h, audit.FriendView, opm.ID)); n != 0 {
			t.Errorf("masked searches wrote %d friend.view records", n)
		}
	})
}

func TestFriendTagsAndFieldsAreEdited(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	ctx := context.Background()
	f := fxFriend(t, h)
	if _, err := h.Srv.Friends.CreateTag(ctx, h.Srv.DB, h.Ch, "常連"); err != nil {
		t.Fatal(err)
	}
	op, opm := fxMember(t, h, "op", "Operator", access.Operator)
	token := op.csrf()
	detail := "/console/channels/" + h.Ch + "/friends/" + itoa(f.ID)
	res, _ := op.do("POST", detail+"/tags", url.Values{"csrf": {token}, "tag": {"常連"}}, nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("add tag: %d", res.StatusCode)
	}
	tags, _ := h.Srv.Friends.FriendTags(ctx, h.Srv.DB, f.ID)
	if len(tags) != 1 || tags[0].Name != "常連" {
		t.Fatalf("tags: %+v", tags)
	}
	// An operator cannot define tags: an unknown name is refused.
	res, page := op.do("POST", detail+"/tags", url.Values{"csrf": {token}, "tag": {"新規"}}, nil)
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "そのタグはありません") {
		t.Errorf("unknown tag: %d", res.StatusCode)
	}
	// Filter by the tag.
	_, page = op.get("/console/channels/" + h.Ch + "/friends?tag=" + itoa(tags[0].ID))
	fxWant(t, "the tag filter", page, []string{"/friends/" + itoa(f.ID) + `"`}, nil)
	res, _ = op.do("POST", detail+"/tags/"+itoa(tags[0].ID)+"/remove", url.Values{"csrf": {token}}, nil)
	if tags, _ := h.Srv.Friends.FriendTags(ctx, h.Srv.DB, f.ID); res.StatusCode != http.StatusSeeOther || len(tags) != 0 {
		t.Errorf("remove tag: %d %+v", res.StatusCode, tags)
	}
	// A field is set blind (masked for them), and written to the audit log by key.
	res, _ = op.do("POST", detail+"/fields", url.Values{"csrf": {token}, "key": {"phone"}, "value": {"080-9999-0000"}}, nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("set field: %d", res.StatusCode)
	}
	values, _ := h.Srv.Friends.FieldValues(ctx, h.Srv.DB, f.ID)
	if values["phone"] != "080-9999-0000" {
		t.Errorf("phone: %q", values["phone"])
	}
	updates := fxRecords(t, h, audit.FriendUpdate, opm.ID)
	if len(updates) != 3 || !slices.Equal(updates[0].Fields, []string{"phone"}) {
		t.Errorf("updates: %+v", updates)
	}
	_, page = op.get(detail)
	fxWant(t, "the detail after the change", page, []string{"***-****-0000"}, []string{"080-9999"})
	// A value the field refuses comes back with what was typed.
	if _, err := h.Srv.Friends.DefineField(ctx, h.Srv.DB, friend.Field{ChannelID: h.Ch, Key: "visits", Label: "来店回数",
		Type: friend.NumberField, Purpose: "テスト", Sensitivity: friend.Attribute}); err != nil {
		t.Fatal(err)
	}
	res, page = op.do("POST", detail+"/fields", url.Values{"csrf": {token}, "key": {"visits"}, "value": {"たくさん"}}, nil)
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "数値を入力してください") || !strings.Contains(page, `value="たくさん"`) {
		t.Errorf("a bad number: %d", res.StatusCode)
	}
}

func TestRevealNeedsAReasonAndIsAudited(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	f := fxFriend(t, h)
	fxRole(t, h, "frontdesk", access.DashboardRead, access.FriendsRead, access.FriendsReveal)
	desk, deskm := fxMember(t, h, "desk", "Front desk", "frontdesk")
	op, _ := fxMember(t, h, "op", "Operator", access.Operator)
	detail := "/console/channels/" + h.Ch + "/friends/" + itoa(f.ID)

	_, page := desk.get(detail)
	fxWant(t, "the front desk's detail", page, []string{"***-****-5678", detail + "/reveal"}, []string{"090-1234"})
	token := desk.csrf()
	for _, reason := range []string{"", "  ", "確認", "line\nbreak"} {
		res, page := desk.do("POST", detail+"/reveal", url.Values{"csrf": {token}, "field": {"phone"}, "reason": {reason}}, nil)
		if res.StatusCode != http.StatusUnprocessableEntity || strings.Contains(page, "090-1234") {
			t.Errorf("reveal with reason %q: %d", reason, res.StatusCode)
		}
	}
	if n := len(fxRecords(t, h, audit.FriendReveal, deskm.ID)); n != 0 {
		t.Fatalf("refused reveals wrote %d records", n)
	}
	res, page := desk.do("POST", detail+"/reveal", url.Values{"csrf": {token}, "field": {"phone"}, "reason": {"予約の電話で本人確認"}}, nil)
	if res.StatusCode != 200 || !strings.Contains(page, "090-1234-5678") {
		t.Fatalf("reveal: %d", res.StatusCode)
	}
	recs := fxRecords(t, h, audit.FriendReveal, deskm.ID)
	if len(recs) != 1 || !slices.Equal(recs[0].Fields, []string{"phone"}) || recs[0].Detail["reason"] != "予約の電話で本人確認" ||
		recs[0].Subject != audit.Subject("friend", f.ID) {
		t.Errorf("reveal record: %+v", recs)
	}
	res, page = desk.do("POST", detail+"/reveal", url.Values{"csrf": {token}, "field": {"display_name"}, "reason": {"お名前の確認のため"}}, nil)
	if res.StatusCode != 200 || !strings.Contains(page, "山田 太郎") {
		t.Errorf("reveal the name: %d", res.StatusCode)
	}
	// An attribute is not masked, so there is nothing to reveal.
	if res, _ := desk.do("POST", detail+"/reveal", url.Values{"csrf": {token}, "field": {"area"}, "reason": {"地域の確認"}}, nil); res.StatusCode != 404 {
		t.Errorf("reveal an attribute: %d", res.StatusCode)
	}
	// The page stays masked afterwards: a reveal is once.
	_, page = desk.get(detail)
	fxWant(t, "the detail after a reveal", page, []string{"***-****-5678"}, []string{"090-1234"})
	// Without friends:reveal, no reveal.
	if res, _ := op.do("POST", detail+"/reveal", url.Values{"csrf": {op.csrf()}, "field": {"phone"}, "reason": {"予約の電話で本人確認"}}, nil); res.StatusCode != 403 {
		t.Errorf("an operator reveals: %d", res.StatusCode)
	}
}

func TestExportNeedsRecentPasswordAndIsSafeForSpreadsheets(t *testing.T) {
	fxEachDB(t, func(t *testing.T, h *servertest.Harness) {
		f := fxFriend(t, h)
		b, mgr := fxManager(t, h)
		export := "/console/channels/" + h.Ch + "/friends/export"
		_, list := b.get("/console/channels/" + h.Ch + "/friends")
		fxWant(t, "the manager's list", list, []string{`href="` + export + `"`}, nil)
		token := b.csrf()

		h.Clk.Advance(staff.ReauthWindow + time.Minute) // the sign-in is no longer recent
		res, page := b.get(export)
		if res.StatusCode != 200 || !strings.Contains(page, `name="password"`) || strings.Contains(page, "CSVをダウンロード") {
			t.Fatalf("the export page does not ask for the password: %d", res.StatusCode)
		}
		res, _ = b.do("POST", export, url.Values{"csrf": {token}}, nil)
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != export {
			t.Fatalf("an export without a recent password: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		res, _ = b.do("POST", export+"/reauth", url.Values{"csrf": {token}, "password": {"wrong password here"}}, nil)
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("a wrong password: %d", res.StatusCode)
		}
		res, _ = b.do("POST", export+"/reauth?status=following", url.Values{"csrf": {token}, "password": {fxPassword}}, nil)
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != export+"?status=following" {
			t.Fatalf("re-authentication: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		if _, page := b.get(export); !strings.Contains(page, "CSVをダウンロード") {
			t.Errorf("no download after re-authentication")
		}
		res, body := b.do("POST", export+"?status=following", url.Values{"csrf": {token}}, nil)
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") {
			t.Fatalf("export: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
		}
		rows := fxCSV(t, body)
		if len(rows) != 2 {
			t.Fatalf("rows: %d", len(rows))
		}
		row := fxRow(rows, 1)
		if row["id"] != itoa(f.ID) || row["display_name"] != "山田 太郎" || row["phone"] != "090-1234-5678" || row["area"] != "大阪" {
			t.Errorf("manager's row: %v", row)
		}
		if !strings.HasPrefix(row["memo"], "'=HYPERLINK") {
			t.Errorf("a formula cell is not neutralised: %q", row["memo"])
		}
		recs := fxRecords(t, h, audit.FriendsExport, mgr.ID)
		if len(recs) != 1 || recs[0].Detail["rows"] != "1" || recs[0].Detail["masked"] != "no" || recs[0].Detail["status"] != "following" ||
			!slices.Contains(recs[0].Fields, "phone") {
			t.Errorf("export record: %+v", recs)
		}

		// An exporter who may not read personal data gets masked values.
		fxRole(t, h, "exporter", access.DashboardRead, access.FriendsRead, access.FriendsExport)
		ex, exm := fxMember(t, h, "ex", "Exporter", "exporter")
		res, body = ex.do("POST", export, url.Values{"csrf": {ex.csrf()}}, nil)
		if res.StatusCode != 200 {
			t.Fatalf("masked export: %d", res.StatusCode)
		}
		row = fxRow(fxCSV(t, body), 1)
		if row["display_name"] != "山* **" || row["phone"] != "***-****-5678" || row["area"] != "大阪" || strings.Contains(body, "090-1234") ||
			strings.Contains(body, "HYPERLINK") || strings.Contains(body, f.LineUserID) || !strings.HasPrefix(row["line_user_id"], "U*") {
			t.Errorf("masked row: %v", row)
		}
		if recs := fxRecords(t, h, audit.FriendsExport, exm.ID); len(recs) != 1 || recs[0].Detail["masked"] != "yes" || len(recs[0].Fields) != 0 {
			t.Errorf("masked export record: %+v", recs)
		}

		// An operator has no export at all.
		op, _ := fxMember(t, h, "op", "Operator", access.Operator)
		if res, _ := op.get(export); res.StatusCode != 403 {
			t.Errorf("operator GET export: %d", res.StatusCode)
		}
		if res, _ := op.do("POST", export, url.Values{"csrf": {op.csrf()}}, nil); res.StatusCode != 403 {
			t.Errorf("operator POST export: %d", res.StatusCode)
		}
		if res, _ := op.do("POST", export+"/reauth", url.Values{"csrf": {op.csrf()}, "password": {fxPassword}}, nil); res.StatusCode != 403 {
			t.Errorf("operator POST reauth: %d", res.StatusCode)
		}
	})
}

// fxCSV parses an export, checking the byte order mark.
func fxCSV(t *testing.T, body string) [][]string {
	t.Helper()
	if !strings.HasPrefix(body, "\uFEFF") {
		t.Fatalf("no byte order mark: %q", body[:min(len(body), 20)])
	}
	rows, err := csv.NewReader(bytes.NewReader([]byte(strings.TrimPrefix(body, "\uFEFF")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func fxRow(rows [][]string, i int) map[string]string {
	out := map[string]string{}
	for j, k := range rows[0] {
		out[k] = rows[i][j]
	}
	return out
}
