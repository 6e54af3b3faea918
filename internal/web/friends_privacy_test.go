package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
)

// Erasing a friend from the console: only those with friends:erase see the form and
// may post it; it asks for the box "cannot be undone" to be ticked and for a recent
// confirmation of who the member is; then the friend is gone, the list says so, and the
// audit log has who erased whom.
func TestEraseAFriendFromTheConsole(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	ctx := context.Background()
	owner, secret := ownerBrowser(t, h)
	u, id := followed(t, h, "消える人")
	page := fmt.Sprintf("/console/channels/%s/friends/%d", h.Ch, id)

	res, _ := owner.post("/console/staff", "/console/staff", url.Values{"name": {"佐藤"}, "login": {"sato"}, "role": {"operator"},
		"channels": {h.Ch}, "mode": {"password"}, "password": {"sunflower field in august"}})
	if res.StatusCode != 200 {
		t.Fatalf("create an operator: %d", res.StatusCode)
	}
	sato := passwordSignIn(t, h, "sato", "sunflower field in august", "")
	if _, body := sato.get(page); strings.Contains(body, "/erase") {
		t.Errorf("an operator sees the erase form")
	}
	if res, _ := sato.post(page, page+"/erase", url.Values{"confirm": {"yes"}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("an operator erases: %d", res.StatusCode)
	}

	if _, body := owner.get(page); !strings.Contains(body, "個人データを削除") {
		t.Fatalf("the owner does not see the erase form")
	}
	res, body := owner.post(page, page+"/erase", nil)
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "チェックを入れてください") {
		t.Errorf("without the box ticked: %d", res.StatusCode)
	}
	h.Clk.Advance(staff.ReauthWindow + time.Minute)
	res, _ = owner.post(page, page+"/erase", url.Values{"confirm": {"yes"}})
	wantRedirect(t, "erasing without a recent confirmation", res, "/console/account/reauth?next="+url.QueryEscape(page))
	if h.Friend(u).ID != id {
		t.Fatal("erased before the member confirmed who they are")
	}
	res, _ = owner.post("/console/account/reauth", "/console/account/reauth", url.Values{"password": {ownerPassword},
		"code": {code(t, secret, h.Clk.Now())}, "next": {page}})
	wantRedirect(t, "confirmation", res, page)
	res, _ = owner.post(page, page+"/erase", url.Values{"confirm": {"yes"}})
	wantRedirect(t, "erase", res, "/console/channels/"+h.Ch+"/friends?done=erased")
	if _, body := owner.get("/console/channels/" + h.Ch + "/friends?done=erased"); !strings.Contains(body, "削除しました") || strings.Contains(body, "消える人") {
		t.Errorf("the list after erasing")
	}
	if h.Friend(u).ID != 0 {
		t.Errorf("the friend is still there")
	}
	if res, _ := owner.get(page); res.StatusCode != http.StatusNotFound {
		t.Errorf("the erased friend's page: %d", res.StatusCode)
	}
	recs, err := h.Srv.Audit.Query(ctx, audit.Filter{Action: audit.FriendDelete})
	if err != nil || len(recs) != 1 || recs[0].Actor.Name != "owner" || recs[0].Subject != fmt.Sprintf("friend:%d", id) || recs[0].ChannelID != h.Ch {
		t.Errorf("audit: %+v %v", recs, err)
	}
}

// A special care-required field on the friend's page: its value is refused until a
// member records the friend's consent (how it was obtained), then kept; the page says
// where the consent stands; recording a withdrawal deletes the value.
func TestConsentFromTheConsole(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	ctx := context.Background()
	owner, _ := ownerBrowser(t, h)
	_, id := followed(t, h, "同意さん")
	if _, err := h.Srv.Friends.DefineField(ctx, h.Srv.DB, friend.Field{ChannelID: h.Ch, Key: "allergy", Label: "アレルギー",
		Type: friend.TextField, Purpose: "料理の案内", Sensitivity: friend.Special}); err != nil {
		t.Fatal(err)
	}
	page := fmt.Sprintf("/console/channels/%s/friends/%d", h.Ch, id)
	if _, body := owner.get(page); !strings.Contains(body, "同意なし") {
		t.Errorf("the page does not say there is no consent")
	}
	res, body := owner.post(page, page+"/fields", url.Values{"key": {"allergy"}, "value": {"えび"}})
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "先に本人の同意を記録してください") {
		t.Errorf("a special value without consent: %d", res.StatusCode)
	}
	if res, _ := owner.post(page, page+"/consent", url.Values{"key": {"allergy"}, "granted": {"yes"}, "how": {"telepathy"}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("consent obtained in an unknown way: %d", res.StatusCode)
	}
	res, _ = owner.post(page, page+"/consent", url.Values{"key": {"allergy"}, "granted": {"yes"}, "how": {"paper"}})
	wantRedirect(t, "consent", res, page+"?done=consent")
	res, _ = owner.post(page, page+"/fields", url.Values{"key": {"allergy"}, "value": {"えび"}})
	wantRedirect(t, "value", res, page+"?done=field")
	if _, body := owner.get(page); !strings.Contains(body, "同意あり") || !strings.Contains(body, "スタッフが記録") || !strings.Contains(body, "えび") {
		t.Errorf("the page after consent")
	}
	res, _ = owner.post(page, page+"/consent", url.Values{"key": {"allergy"}, "granted": {"no"}, "how": {"in_person"}})
	wantRedirect(t, "withdrawal", res, page+"?done=consent")
	if _, body := owner.get(page); !strings.Contains(body, "同意撤回") || strings.Contains(body, "えび") {
		t.Errorf("the page after withdrawal")
	}
}

// The privacy notice is public, made from the account's field catalogue and retention
// settings (a field's label and purpose escaped), in Japanese and English, and shows
// nobody's data; an unknown account is not found.
func TestPrivacyNotice(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	ctx := context.Background()
	u, id := followed(t, h, "見えてはいけない名前")
	for _, f := range []friend.Field{
		{ChannelID: h.Ch, Key: "allergy", Label: "アレルギー<script>", Type: friend.TextField, Purpose: "料理をご案内するため", Sensitivity: friend.Special, RetentionDays: 90},
		{ChannelID: h.Ch, Key: "area", Label: "お住まいの地域", Type: friend.TextField, Purpose: "地域のお知らせのため", Sensitivity: friend.Attribute},
	} {
		fl, err := h.Srv.Friends.DefineField(ctx, h.Srv.DB, f)
		if err != nil {
			t.Fatal(err)
		}
		if f.Key == "area" {
			if _, err := h.Srv.Friends.SetField(ctx, h.Srv.DB, id, fl, "大阪市北区"); err != nil {
				t.Fatal(err)
			}
		}
	}
	anon := newBrowser(t, h.Base)
	res, body := anon.get("/privacy/" + h.Ch)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("privacy notice: %d", res.StatusCode)
	}
	for _, want := range []string{"個人情報の取り扱い", "アレルギー&lt;script&gt;", "料理をご案内するため", "最後に変更してから90日", "お住まいの地域",
		"同意をいただいた場合のみ保存", "730日", "180日"} {
		if !strings.Contains(body, want) {
			t.Errorf("the notice does not say %q", want)
		}
	}
	for _, never := range []string{"見えてはいけない名前", "大阪市北区", u, "<script>", `href="/console/`} {
		if strings.Contains(body, never) {
			t.Errorf("the notice shows %q", never)
		}
	}
	if _, body := anon.get("/privacy/" + h.Ch + "?lang=en"); !strings.Contains(body, "How your personal data is handled") || !strings.Contains(body, "90 days after it was last changed") {
		t.Errorf("the English notice")
	}
	if res, _ := anon.get("/privacy/nosuch"); res.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown account: %d", res.StatusCode)
	}
}

// The disclosure file holds everything kept about the friend (their name, a field value
// with its purpose, their words, what was sent to them, their consent), is refused to a
// member who may not read personal data, needs a recent confirmation, and is audited.
func TestDisclosureOfAFriendsData(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	ctx := context.Background()
	owner, secret := ownerBrowser(t, h)
	u := h.User("開示さん")
	h.OK(h.Emu.Follow(ctx, h.Ch, u))
	h.OK(h.Emu.SendText(ctx, h.Ch, u, "私のデータを見せてください"))
	h.Eventually("the friend and the message", func() bool { return h.Friend(u).DisplayName != "" && len(h.Conversation(u)) == 1 })
	id := h.Friend(u).ID
	allergy, err := h.Srv.Friends.DefineField(ctx, h.Srv.DB, friend.Field{ChannelID: h.Ch, Key: "allergy", Label: "アレルギー",
		Type: friend.TextField, Purpose: "料理をご案内するため", Sensitivity: friend.Special})
	if err != nil {
		t.Fatal(err)
	}
	err = h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		if err := h.Srv.Friends.RecordConsent(ctx, tx, id, allergy, true, friend.ConsentByStaff, "staff:1 paper", h.Clk.Now()); err != nil {
			return err
		}
		if _, err := h.Srv.Friends.SetField(ctx, tx, id, allergy, "えび"); err != nil {
			return err
		}
		_, err := h.Srv.Delivery.Enqueue(ctx, tx, delivery.Item{ChannelID: h.Ch, FriendID: id, LineUserID: u, Source: "api",
			Messages: []json.RawMessage{json.RawMessage(`{"type":"text","text":"ご予約を承りました"}`)}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Eventually("the message sent", func() bool { r, _ := h.Emu.ReceivedBy(h.Ch, u); return len(r) > 0 })
	page := fmt.Sprintf("/console/channels/%s/friends/%d", h.Ch, id)

	res, _ := owner.post("/console/staff", "/console/staff", url.Values{"name": {"分析"}, "login": {"ana"}, "role": {"analyst"},
		"channels": {h.Ch}, "mode": {"password"}, "password": {"sunflower field in august"}})
	if res.StatusCode != 200 {
		t.Fatalf("create an analyst: %d", res.StatusCode)
	}
	ana := passwordSignIn(t, h, "ana", "sunflower field in august", "")
	if res, _ := ana.post(page, page+"/disclosure", nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("an analyst discloses: %d", res.StatusCode)
	}

	h.Clk.Advance(staff.ReauthWindow + time.Minute)
	res, _ = owner.post(page, page+"/disclosure", nil)
	wantRedirect(t, "disclosure without a recent confirmation", res, "/console/account/reauth?next="+url.QueryEscape(page))
	res, _ = owner.post("/console/account/reauth", "/console/account/reauth", url.Values{"password": {ownerPassword},
		"code": {code(t, secret, h.Clk.Now())}, "next": {page}})
	wantRedirect(t, "confirmation", res, page)
	res, body := owner.post(page, page+"/disclosure", nil)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") ||
		!strings.Contains(res.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("disclosure: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	var d struct {
		Friend struct {
			LineUserID  string `json:"line_user_id"`
			DisplayName string `json:"display_name"`
		}
		Fields       []struct{ Key, Purpose, Value string }
		Consents     map[string][]struct{ Granted bool }
		Conversation []struct{ Direction, Text string }
		Sent         []struct{ Messages json.RawMessage } `json:"messages_sent"`
	}
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if d.Friend.LineUserID != u || d.Friend.DisplayName != "開示さん" || len(d.Fields) != 1 || d.Fields[0].Value != "えび" ||
		d.Fields[0].Purpose != "料理をご案内するため" || len(d.Consents["allergy"]) != 1 || !d.Consents["allergy"][0].Granted {
		t.Errorf("disclosure: %s", body)
	}
	var words, sent bool
	for _, m := range d.Conversation {
		words = words || m.Direction == "in" && m.Text == "私のデータを見せてください"
	}
	for _, s := range d.Sent {
		sent = sent || strings.Contains(string(s.Messages), "ご予約を承りました")
	}
	if !words || !sent {
		t.Errorf("the friend's words (%v) or what was sent to them (%v) are not disclosed: %s", words, sent, body)
	}
	recs, err := h.Srv.Audit.Query(ctx, audit.Filter{Action: audit.FriendsExport, Subject: fmt.Sprintf("friend:%d", id)})
	if err != nil || len(recs) != 1 || recs[0].Detail["kind"] != "disclosure" || recs[0].Actor.Name != "owner" {
		t.Errorf("audit: %+v %v", recs, err)
	}
}

// followed makes a user who follows the account, and returns them once their profile
// (their name) is stored.
func followed(t *testing.T, h *servertest.Harness, name string) (string, int64) {
	t.Helper()
	u := h.User(name)
	h.OK(h.Emu.Follow(context.Background(), h.Ch, u))
	h.Eventually("the friend "+name, func() bool { return h.Friend(u).DisplayName != "" })
	return u, h.Friend(u).ID
}
