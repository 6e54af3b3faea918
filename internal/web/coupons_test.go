package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/servertest"
)

func TestCouponFormCreatesImportsAndRedeems(t *testing.T) {
	fxEachDB(t, func(t *testing.T, h *servertest.Harness) {
		ctx := context.Background()
		fs := ctFollowers(t, h, "一郎")
		b := signIn(t, h)
		base := "/console/channels/" + h.Ch + "/coupons"
		ctInOrder(t, "new form", ctPage(t, b, base+"/new"), `name="key"`, `name="code_policy" value="shared"`, `name="last_day"`)

		res, page := ctPost(b, base, url.Values{"key": {"osaka10"}, "title": {"<大阪店> 10%オフ"}, "code_policy": {"shared"},
			"shared_code": {"OSAKA 10"}, "from_date": {"2026-11-01"}, "from_time": {"00:00"}, "per_friend_limit": {"2"}, "enabled": {"1"}})
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("a code with a space: %d", res.StatusCode)
		}
		ctInOrder(t, "problem", page, "shared_code", "共通コードは英数字", `value="osaka10"`, `value="OSAKA 10"`)
		res, page = ctPost(b, base, url.Values{"key": {"osaka10"}, "title": {"<大阪店> 10%オフ"}, "code_policy": {"shared"},
			"shared_code": {"OSAKA10"}, "from_date": {"2026-11-01"}, "from_time": {"00:00"}, "last_day": {"2026-12-31"},
			"per_friend_limit": {"2"}, "enabled": {"1"}})
		ctRedirect(t, "create", res, page)
		cp, err := h.Srv.Coupons.Get(ctx, h.Ch, "osaka10")
		if err != nil || cp.PerFriendLimit != 2 || coupon.LastDay(cp.ValidUntil, tokyoZone(t)) != "2026-12-31" {
			t.Fatalf("created: %+v %v", cp, err)
		}
		list := ctPage(t, b, base)
		ctInOrder(t, "list with stats", list, "&lt;大阪店&gt; 10%オフ", "全員に同じコード", "2026-12-31", ">0<", ">0", "制限なし", "利用できます")

		// Issued to a friend (a message showed it), then redeemed at the till.
		if _, err := h.Srv.Coupons.Issue(ctx, h.Srv.DB, h.Ch, fs[0].ID, "osaka10", h.Clk.Now()); err != nil {
			t.Fatal(err)
		}
		detail := ctPage(t, b, base+"/osaka10")
		rkey := regexp.MustCompile(`name="rkey" value="([^"]+)"`).FindStringSubmatch(detail)
		if rkey == nil {
			t.Fatalf("no redeem form:\n%s", detail)
		}
		form := url.Values{"friend": {itoa(fs[0].ID)}, "rkey": {rkey[1]}}
		res, page = ctPost(b, base+"/osaka10/redeem", form)
		if to := ctRedirect(t, "redeem", res, page); !strings.Contains(to, "redeemed=1") {
			t.Errorf("redeem: %s", to)
		}
		res, page = ctPost(b, base+"/osaka10/redeem", form) // a double click counts once
		ctRedirect(t, "redeem again", res, page)
		if st, _ := h.Srv.Coupons.Stats(ctx, h.Ch, "osaka10"); st.Issued != 1 || st.Redemptions != 1 {
			t.Errorf("stats: %+v", st)
		}
		res, page = ctPost(b, base+"/osaka10/redeem", url.Values{"friend": {"99999"}, "rkey": {"other"}})
		if to := ctRedirect(t, "redeem a stranger", res, page); !strings.Contains(to, "refused=notissued") {
			t.Errorf("redeem a stranger: %s", to)
		}
		ctInOrder(t, "refusal", ctPage(t, b, base+"/osaka10?refused=notissued"), "配布されていません")

		// Imported codes: a bad line refuses the import, naming the line, input kept.
		res, page = ctPost(b, base, url.Values{"key": {"gift"}, "title": {"ギフト"}, "code_policy": {"imported"},
			"from_date": {"2026-11-01"}, "from_time": {"00:00"}, "enabled": {"1"}})
		ctRedirect(t, "create imported", res, page)
		res, page = ctPost(b, base+"/gift/codes", url.Values{"codes": {"AAA111\nBAD CODE!\nCCC333"}})
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("a bad import: %d", res.StatusCode)
		}
		ctInOrder(t, "import problem", page, "2行目", "BAD CODE!")
		res, page = ctPost(b, base+"/gift/codes", url.Values{"codes": {"AAA111\r\nBBB222\r\nAAA111\r\n\r\nCCC333"}})
		to := ctRedirect(t, "import", res, page)
		ctInOrder(t, "imported", ctPage(t, b, to), "3件を取り込みました（重複1件", ">3<")
		if st, _ := h.Srv.Coupons.Stats(ctx, h.Ch, "gift"); st.CodesLeft != 3 {
			t.Errorf("codes left: %+v", st)
		}
		if res, _ := b.do("POST", base+"/gift/codes", url.Values{"codes": {"DDD444"}}, nil); res.StatusCode != http.StatusForbidden {
			t.Errorf("an import without the token: %d", res.StatusCode)
		}
		ctInOrder(t, "English", ctPage(t, b, base+"?lang=en"), "Coupons", "Issued", "Friends who used it", "Left")
	})
}
