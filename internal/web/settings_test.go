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
		ctInOrder(t, "settings", page, "暗号化して保管しています", `name="name" value="Test shop"`, `name="time_zone" value="Asia/Tokyo"`)
		for _, secret := range []string{"channel-secret", "channel-token"} {
			if strings.Contains(page, secret) {
				t.Errorf("the settings page shows the %s", secret)
			}
		}
		res, page := ctPost(b, path, url.Values{"name": {"<b>本店</b>"}, "time_zone": {"America/New_York"}, "quiet_from": {"21:00"}, "quiet_to": {"9:00"}})
		ctRedirect(t, "save", res, page)
		st, err := h.Srv.Channels.Settings(ctx, h.Ch)
		if err != nil || st.TimeZone != "America/New_York" || st.QuietHours != "21:00-09:00" || st.Name != "<b>本店</b>" {
			t.Fatalf("saved: %+v %v", st, err)
		}
		ctInOrder(t, "saved", ctPage(t, b, path+"?saved=1"), "保存しました", "&lt;b&gt;本店&lt;/b&gt;", `value="America/New_York"`)

		res, page = ctPost(b, path, url.Values{"name": {"本店"}, "time_zone": {"Mars/Olympus"}, "quiet_from": {"21:00"}, "quiet_to": {"21:00"}})
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("invalid settings: %d", res.StatusCode)
		}
		ctInOrder(t, "problems", page, "time_zone", "IANA", "quiet_hours", `value="Mars/Olympus"`)
		if st, _ := h.Srv.Channels.Settings(ctx, h.Ch); st.TimeZone != "America/New_York" || st.Name != "<b>本店</b>" {
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
