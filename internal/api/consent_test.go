package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/testutil"
)

// A special care-required field takes a value through the API only once the friend's
// consent is recorded; withdrawing it deletes the value; consent is refused for other
// fields and without saying how it was obtained; each change is audited.
func TestConsentToASpecialField(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		admin := token(t, h, staff.Admin, h.Ch)
		ch := "/api/v1/channels/" + h.Ch
		_, id := follow(t, h, "同意する人")
		expect(t, call(t, h, admin, "POST", ch+"/fields", map[string]any{"key": "allergy", "label": "アレルギー", "type": "text",
			"purpose": "料理の案内", "sensitivity": "special"}), http.StatusCreated)
		expect(t, call(t, h, admin, "POST", ch+"/fields", map[string]any{"key": "phone", "label": "電話", "type": "text", "purpose": "連絡"}), http.StatusCreated)
		value := fmt.Sprintf("%s/friends/%d/fields/allergy", ch, id)
		consent := fmt.Sprintf("%s/friends/%d/consents/allergy", ch, id)

		if r := expect(t, call(t, h, admin, "PUT", value, map[string]string{"value": "えび"}), http.StatusConflict); r.errCode() != "consent_required" {
			t.Errorf("a special value without consent: %s", r.raw)
		}
		if r := expect(t, call(t, h, admin, "PUT", consent, map[string]any{"granted": true}), http.StatusBadRequest); r.problems(t)[0] != "how" {
			t.Errorf("consent without how: %s", r.raw)
		}
		if r := expect(t, call(t, h, admin, "PUT", fmt.Sprintf("%s/friends/%d/consents/phone", ch, id), map[string]any{"granted": true, "how": "web form"}),
			http.StatusConflict); r.errCode() != "not_special" {
			t.Errorf("consent to a normal field: %s", r.raw)
		}
		expect(t, call(t, h, admin, "PUT", consent, map[string]any{"granted": true, "how": "web form v2"}), http.StatusOK)
		expect(t, call(t, h, admin, "PUT", value, map[string]string{"value": "えび"}), http.StatusOK)
		friendPath := fmt.Sprintf("%s/friends/%d", ch, id)
		if r := expect(t, call(t, h, admin, "GET", friendPath, nil), http.StatusOK); r.body["fields"].(map[string]any)["allergy"] != "えび" {
			t.Errorf("value kept: %s", r.raw)
		}
		expect(t, call(t, h, admin, "PUT", consent, map[string]any{"granted": false, "how": "the friend asked by phone"}), http.StatusOK)
		if r := expect(t, call(t, h, admin, "GET", friendPath, nil), http.StatusOK); r.body["fields"].(map[string]any)["allergy"] != nil {
			t.Errorf("value after withdrawal: %s", r.raw)
		}
		expect(t, call(t, h, admin, "PUT", value, map[string]string{"value": "かに"}), http.StatusConflict)
		recs, err := h.Srv.Audit.Query(ctx, audit.Filter{Action: audit.FriendUpdate, Subject: fmt.Sprintf("friend:%d", id)})
		if err != nil {
			t.Fatal(err)
		}
		var consents []string
		for _, rec := range recs {
			if v, ok := rec.Detail["consent"]; ok {
				consents = append(consents, v)
			}
		}
		if len(consents) != 2 || consents[0] != "false" || consents[1] != "true" { // newest first
			t.Errorf("audited consents: %v", consents)
		}
	})
}
