package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/linestep/linestep/internal/servertest"
)

func TestSettingsChangeTheTimeZoneAndRefuseAnInvalidOne(t *testing.T) {
	fxEachDB(t, func(t *testing.T, h *servertest.Harness) {
		ctx := context.Background()
		b := signIn(t, h)
		path := "/console/channels/" + h.Ch + "/settings"
		page := ctPage(t, b, path)
		// A new channel keeps deliveries 180 days and conversations two years.
		ctInOrder(t, "settings", page, "暗号化して保管しています", `name="name" value="Test shop"`, `name="time_zone" value="Asia/Tokyo"`,
			`name="delivery_retention_days" value="180"`, `name="conversation_retention_days" value="730"`)
		for _, secret := range []string{"channel-secret", "channel-token"} {
			if strings.Contains(page, secret) {
				t.Errorf("the settings page shows the %s", secret)
			}
		}
		res, page := ctPost(b, path, url.Values{"name": {"<b>本店</b>"}, "time_zone": {"America/New_York"}, "quiet_from": {"21:00"}, "quiet_to": {"9:00"},
			"delivery_retention_days": {"90"}, "conversation_retention_days": {"0"}})
		ctRedirect(t, "save", res, page)
		st, err := h.Srv.Channels.Settings(ctx, h.Ch)
		if err != nil || st.TimeZone != "America/New_York" || st.QuietHours != "21:00-09:00" || st.Name != "<b>本店</b>" ||
			st.DeliveryRetentionDays != 90 || st.ConversationRetentionDays != 0 {
			t.Fatalf("saved: %+v %v", st, err)
		}
		ctInOrder(t, "saved", ctPage(t, b, path+"?saved=1"), "保存しました", "&lt;b&gt;本店&lt;/b&gt;", `value="America/New_York"`)

		res, page = ctPost(b, path, url.Values{"name": {"本店"}, "time_zone": {"Mars/Olympus"}, "quiet_from": {"21:00"}, "quiet_to": {"21:00"},
			"delivery_retention_days": {"7"}, "conversation_retention_days": {"two years"}})
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("invalid settings: %d", res.StatusCode)
		}
		// A week would delete what the dashboard still counts; the other is not a number.
		ctInOrder(t, "problems", page, "conversation_retention_days", "日数（整数）", "time_zone", "IANA", "quiet_hours",
			"delivery_retention_days", "30日から3650日", `value="Mars/Olympus"`)
		if st, _ := h.Srv.Channels.Settings(ctx, h.Ch); st.TimeZone != "America/New_York" || st.Name != "<b>本店</b>" || st.DeliveryRetentionDays != 90 {
			t.Errorf("invalid settings changed the channel: %+v", st)
		}
		if res, _ := b.do("POST", path, url.Values{"name": {"x"}, "time_zone": {"UTC"}}, nil); res.StatusCode != http.StatusForbidden {
			t.Errorf("settings without the token: %d", res.StatusCode)
		}
		// An operator reads the settings but is offered no form and may not post one.
		op, _ := fxMember(t, h, "operator1", "Operator", "operator")
		if page := ctPage(t, op, path); strings.Contains(page, `name="time_zone"`) {
			t.Errorf("an operator is offered the settings form")
		}
		if res, _ := ctPost(op, path, url.Values{"name": {"x"}, "time_zone": {"UTC"}}); res.StatusCode != http.StatusForbidden {
			t.Errorf("an operator changes the settings: %d", res.StatusCode)
		}
	})
}
