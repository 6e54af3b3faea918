package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/testutil"
)

// A coupon with a code per friend, issued by a broadcast that shows it, redeemed at the
// till once: a retried request counts once, a second use is refused.
func TestCouponIssuedByABroadcastAndRedeemed(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		op := token(t, h, staff.Operator, h.Ch)
		analyst := token(t, h, staff.Analyst, h.Ch)
		admin := token(t, h, staff.Admin, "")
		ch := "/api/v1/channels/" + h.Ch
		u1, id1 := follow(t, h, "森")
		u2, id2 := follow(t, h, "林")
		_, id3 := follow(t, h, "池田")
		for _, id := range []int64{id1, id2} {
			expect(t, call(t, h, op, "PUT", fmt.Sprintf("%s/friends/%d/tags/member", ch, id), nil), http.StatusOK)
		}

		gift := map[string]any{"title": "会員ギフト", "code_policy": "generated", "valid_until": "2026-12-31"}
		expect(t, call(t, h, analyst, "PUT", ch+"/coupons/gift", gift), http.StatusForbidden)
		r := expect(t, call(t, h, op, "PUT", ch+"/coupons/gift", map[string]any{"title": " ", "code_policy": "shared",
			"valid_from": "someday", "per_friend_limit": 0}), http.StatusBadRequest)
		for _, path := range []string{"title", "shared_code", "valid_from", "per_friend_limit"} {
			problemAt(t, r, path)
		}
		r.problems(t)
		r = expect(t, call(t, h, op, "PUT", ch+"/coupons/gift", map[string]any{"title": "x", "code_policy": "generated",
			"valid_from": "2026-12-01", "valid_until": "2026-11-01T00:00:00+09:00"}), http.StatusBadRequest)
		problemAt(t, r, "valid_until")
		expect(t, call(t, h, op, "PUT", ch+"/coupons/Gift!", gift), http.StatusBadRequest)
		if r := expect(t, call(t, h, op, "PUT", ch+"/coupons/gift", `{"title": "x", "codepolicy": "shared"}`), http.StatusBadRequest); r.problems(t)[0] != "codepolicy" {
			t.Errorf("misspelt key: %s", r.raw)
		}
		if r := expect(t, call(t, h, op, "GET", ch+"/coupons", nil), http.StatusOK); len(r.body["coupons"].([]any)) != 0 {
			t.Fatalf("a refused request created a coupon: %s", r.raw)
		}

		r = expect(t, call(t, h, op, "PUT", ch+"/coupons/gift", gift), http.StatusCreated)
		// A date is read in the channel's time zone (Tokyo); the end is exclusive.
		if r.body["enabled"] != true || r.body["available"] != true || r.body["per_friend_limit"] != float64(1) ||
			r.body["valid_until"] != "2026-12-30T15:00:00Z" {
			t.Errorf("created: %s", r.raw)
		}
		gift["title"] = "会員限定ギフト"
		if r := expect(t, call(t, h, op, "PUT", ch+"/coupons/gift", gift), http.StatusOK); r.body["title"] != "会員限定ギフト" {
			t.Errorf("replaced: %s", r.raw)
		}

		expect(t, call(t, h, op, "POST", ch+"/broadcasts", map[string]any{"segment": map[string]string{"tag": "member"},
			"messages": []any{map[string]string{"type": "text", "text": "{{coupon.gift.title}}: {{coupon.gift.code}}"}}}), http.StatusCreated)
		h.Eventually("the coupons to be received", func() bool { return len(texts(t, h, u1)) == 1 && len(texts(t, h, u2)) == 1 })
		code1, code2 := texts(t, h, u1)[0], texts(t, h, u2)[0]
		if !strings.HasPrefix(code1, "会員限定ギフト: ") || code1 == code2 {
			t.Fatalf("received %q and %q", code1, code2)
		}
		r = expect(t, call(t, h, analyst, "GET", ch+"/coupons/gift", nil), http.StatusOK)
		if st := r.body["stats"].(map[string]any); st["issued"] != float64(2) || st["redemptions"] != float64(0) {
			t.Errorf("stats after sending: %s", r.raw)
		}
		r = expect(t, call(t, h, op, "POST", ch+"/coupons/gift/issues", map[string]int64{"friend_id": id1}), http.StatusOK)
		if "会員限定ギフト: "+r.body["code"].(string) != code1 {
			t.Errorf("issued again: %s, received %q", r.raw, code1)
		}

		redeem := ch + "/coupons/gift/redemptions"
		first := map[string]any{"friend_id": id1, "redemption_key": "receipt-0001"}
		expect(t, call(t, h, analyst, "POST", redeem, first), http.StatusForbidden)
		r = expect(t, call(t, h, op, "POST", redeem, first), http.StatusCreated)
		if r.body["number"] != float64(1) || r.body["friend_id"] != float64(id1) || !strings.HasPrefix(r.body["redeemed_by"].(string), "staff:") {
			t.Errorf("redeemed: %s", r.raw)
		}
		again := expect(t, call(t, h, op, "POST", redeem, first), http.StatusCreated)
		if again.body["id"] != r.body["id"] {
			t.Errorf("a retry made another redemption: %s then %s", r.raw, again.raw)
		}
		if r := expect(t, call(t, h, op, "POST", redeem, map[string]any{"friend_id": id1}), http.StatusConflict); r.errCode() != "limit_reached" {
			t.Errorf("second use: %s", r.raw)
		}
		if r := expect(t, call(t, h, op, "POST", redeem, map[string]any{"friend_id": id2, "redemption_key": "receipt-0001"}), http.StatusConflict); r.errCode() != "redemption_key_used" {
			t.Errorf("a key of another friend's redemption: %s", r.raw)
		}
		if r := expect(t, call(t, h, op, "POST", redeem, map[string]any{"friend_id": id3}), http.StatusConflict); r.errCode() != "not_issued" {
			t.Errorf("a friend never issued it: %s", r.raw)
		}
		expect(t, call(t, h, op, "POST", redeem, map[string]any{"friend_id": 999999}), http.StatusNotFound)
		expect(t, call(t, h, op, "POST", redeem, map[string]any{}), http.StatusBadRequest)
		expect(t, call(t, h, op, "POST", redeem, map[string]any{"friend_id": id2, "redemption_key": strings.Repeat("k", 201)}), http.StatusBadRequest)
		expect(t, call(t, h, op, "POST", ch+"/coupons/nosuch/redemptions", map[string]any{"friend_id": id1}), http.StatusNotFound)
		r = expect(t, call(t, h, op, "GET", ch+"/coupons/gift", nil), http.StatusOK)
		if st := r.body["stats"].(map[string]any); st["redemptions"] != float64(1) || st["redeemed_friends"] != float64(1) {
			t.Errorf("stats after redeeming: %s", r.raw)
		}

		// Imported codes: one bad code refuses the file, naming its index only.
		expect(t, call(t, h, op, "PUT", ch+"/coupons/lottery", map[string]any{"title": "抽選", "code_policy": "imported"}), http.StatusCreated)
		r = expect(t, call(t, h, op, "POST", ch+"/coupons/lottery/codes", map[string]any{"codes": []string{"AAA1", "bad code!", "AAA1"}}), http.StatusBadRequest)
		problemAt(t, r, "codes[1]")
		if strings.Contains(string(r.raw), "bad code") {
			t.Errorf("a code repeated: %s", r.raw)
		}
		r = expect(t, call(t, h, op, "POST", ch+"/coupons/lottery/codes", map[string]any{"codes": []string{"AAA1", " BBB2 ", "AAA1", ""}}), http.StatusOK)
		if r.body["added"] != float64(2) || r.body["duplicates"] != float64(1) || r.body["codes_left"] != float64(2) {
			t.Errorf("imported: %s", r.raw)
		}
		if r := expect(t, call(t, h, op, "POST", ch+"/coupons/gift/codes", map[string]any{"codes": []string{"CCC3"}}), http.StatusConflict); r.errCode() != "not_imported_policy" {
			t.Errorf("codes for a generated coupon: %s", r.raw)
		}
		r = expect(t, call(t, h, op, "PUT", ch+"/coupons/lottery", map[string]any{"title": "抽選", "code_policy": "shared", "shared_code": "X"}), http.StatusBadRequest)
		problemAt(t, r, "code_policy")
		r = expect(t, call(t, h, op, "POST", ch+"/coupons/lottery/issues", map[string]int64{"friend_id": id3}), http.StatusOK)
		if r.body["code"] != "AAA1" {
			t.Errorf("first imported code: %s", r.raw)
		}
		expect(t, call(t, h, op, "POST", ch+"/coupons/lottery/issues", map[string]int64{"friend_id": id2}), http.StatusOK)
		if r := expect(t, call(t, h, op, "POST", ch+"/coupons/lottery/issues", map[string]int64{"friend_id": id1}), http.StatusConflict); r.errCode() != "codes_exhausted" {
			t.Errorf("no code left: %s", r.raw)
		}
		off := map[string]any{"title": "抽選", "code_policy": "imported", "enabled": false}
		if r := expect(t, call(t, h, op, "PUT", ch+"/coupons/lottery", off), http.StatusOK); r.body["available"] != false {
			t.Errorf("turned off: %s", r.raw)
		}
		if r := expect(t, call(t, h, op, "POST", ch+"/coupons/lottery/redemptions", map[string]any{"friend_id": id3}), http.StatusConflict); r.errCode() != "coupon_not_available" {
			t.Errorf("redeem a coupon turned off: %s", r.raw)
		}

		expect(t, call(t, h, token(t, h, staff.Analyst, h.Ch), "DELETE", ch+"/coupons/gift", nil), http.StatusForbidden)
		expect(t, call(t, h, admin, "DELETE", ch+"/coupons/gift", nil), http.StatusOK)
		expect(t, call(t, h, admin, "DELETE", ch+"/coupons/gift", nil), http.StatusNotFound)
		expect(t, call(t, h, op, "GET", ch+"/coupons/gift", nil), http.StatusNotFound)
		if r := expect(t, call(t, h, analyst, "GET", ch+"/coupons", nil), http.StatusOK); len(r.body["coupons"].([]any)) != 1 {
			t.Errorf("coupons: %s", r.raw)
		}
		if logs := h.Logs.String(); strings.Contains(logs, strings.TrimPrefix(code1, "会員限定ギフト: ")) || strings.Contains(logs, "receipt-0001") {
			t.Errorf("a code or a redemption key in the log")
		}
	})
}
