package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/servertest"
)

func TestAutoreplyFormSavesSwitchesAndDeletes(t *testing.T) {
	fxEachDB(t, func(t *testing.T, h *servertest.Harness) {
		ctx := context.Background()
		b := signIn(t, h)
		base := "/console/channels/" + h.Ch + "/autoreplies"
		ctPage(t, b, base+"/new")
		res, page := ctPost(b, base, url.Values{"key": {"hours"}, "name": {"<営業時間>"}, "match": {"regex"}, "keywords": {"営業(時間"},
			"priority": {"5"}, "mode": {"text"}, "text": {"10時から19時です"}, "enabled": {"1"}})
		if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "keywords[0]") || !strings.Contains(page, "営業(時間") {
			t.Fatalf("a bad pattern: %d", res.StatusCode)
		}
		res, page = ctPost(b, base, url.Values{"key": {"hours"}, "name": {"<営業時間>"}, "match": {"contains"}, "keywords": {"営業時間\r\n何時"},
			"priority": {"5"}, "day": {"mon", "fri"}, "from": {"09:00"}, "to": {"18:00"}, "mode": {"text"}, "text": {"10時から19時です"}, "enabled": {"1"}})
		ctRedirect(t, "save", res, page)
		ru, err := h.Srv.Replies.Get(ctx, h.Ch, "hours")
		if err != nil || len(ru.Keywords) != 2 || ru.Window == nil || strings.Join(ru.Window.Days, ",") != "mon,fri" || !ru.Enabled {
			t.Fatalf("saved: %+v %v", ru, err)
		}
		ctInOrder(t, "list", ctPage(t, b, base), "&lt;営業時間&gt;", "部分一致", "営業時間", "何時", ">5<", "月・金 09:00〜18:00", "10時から19時です", "有効")

		// Without its window it answers at any time: a friend's message is answered, and
		// the hit is counted.
		res, page = ctPost(b, base+"/hours", url.Values{"name": {"<営業時間>"}, "match": {"contains"}, "keywords": {"営業時間"},
			"priority": {"5"}, "mode": {"text"}, "text": {"10時から19時です"}, "enabled": {"1"}})
		ctRedirect(t, "save without the window", res, page)
		ctInOrder(t, "any time", ctPage(t, b, base), "いつでも")
		u := h.User("客")
		h.OK(h.Emu.Follow(ctx, h.Ch, u))
		h.OK(h.Emu.SendText(ctx, h.Ch, u, "営業時間は？"))
		h.Eventually("the answer", func() bool { ru, _ := h.Srv.Replies.Get(ctx, h.Ch, "hours"); return ru.Hits == 1 })
		ctInOrder(t, "hits", ctPage(t, b, base+"/hours"), "応答回数: 1", "10時から19時です")
		res, page = ctPost(b, base+"/hours/enabled", url.Values{"on": {"0"}})
		ctRedirect(t, "switch off", res, page)
		if ru, _ := h.Srv.Replies.Get(ctx, h.Ch, "hours"); ru.Enabled {
			t.Errorf("still on")
		}
		if res, _ := b.do("POST", base+"/hours/delete", url.Values{}, nil); res.StatusCode != http.StatusForbidden {
			t.Errorf("delete without the token: %d", res.StatusCode)
		}
		res, page = ctPost(b, base+"/hours/delete", nil)
		ctRedirect(t, "delete", res, page)
		if _, err := h.Srv.Replies.Get(ctx, h.Ch, "hours"); err == nil {
			t.Errorf("not deleted")
		}
		ctInOrder(t, "English", ctPage(t, b, base+"?lang=en"), "Auto-replies", "No auto-replies yet.")
	})
}

// A reply naming a coupon the channel does not have is refused with the form kept; one
// whose coupon was deleted since can be switched off, and switching it on says why not.
func TestAutoreplyFormChecksCoupons(t *testing.T) {
	fxEachDB(t, func(t *testing.T, h *servertest.Harness) {
		ctx := context.Background()
		b := signIn(t, h)
		base := "/console/channels/" + h.Ch + "/autoreplies"
		ctInOrder(t, "the form", ctPage(t, b, base+"/new"), "{{coupon.キー.code|ご利用済みです}}")
		rule := url.Values{"key": {"gift"}, "match": {"exact"}, "keywords": {"クーポン"}, "mode": {"text"},
			"text": {"コード: {{coupon.gift.code|ご利用済みです}}"}, "enabled": {"1"}}
		res, page := ctPost(b, base, rule)
		if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "クーポン「gift」はありません") || !strings.Contains(page, "{{coupon.gift.code|ご利用済みです}}") {
			t.Fatalf("an unknown coupon: %d\n%s", res.StatusCode, page)
		}
		if _, err := h.Srv.Coupons.Save(ctx, h.Srv.DB, coupon.Coupon{ChannelID: h.Ch, Key: "gift", Title: "ギフト",
			CodePolicy: coupon.PolicyShared, SharedCode: "GIFT", ValidFrom: h.Clk.Now(), Enabled: true}); err != nil {
			t.Fatal(err)
		}
		res, page = ctPost(b, base, rule)
		ctRedirect(t, "save", res, page)

		if err := h.Srv.Coupons.Delete(ctx, h.Srv.DB, h.Ch, "gift"); err != nil {
			t.Fatal(err)
		}
		res, page = ctPost(b, base+"/gift/enabled", url.Values{"on": {"0"}})
		ctRedirect(t, "switch off", res, page)
		res, page = ctPost(b, base+"/gift/enabled?lang=en", url.Values{"on": {"1"}})
		if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `there is no coupon &#34;gift&#34;`) {
			t.Fatalf("switch on naming a deleted coupon: %d\n%s", res.StatusCode, page)
		}
		if ru, _ := h.Srv.Replies.Get(ctx, h.Ch, "gift"); ru.Enabled {
			t.Errorf("switched on")
		}
	})
}
