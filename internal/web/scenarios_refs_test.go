package web_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/template"
)

const ctMenu = "richmenu-0123456789abcdef0123456789abcdef"

// The timeline shows the template a step sends (as it reads now) and its rich menu
// action; the template cannot be deleted while the step sends it.
func TestScenarioTimelineShowsTemplatesAndRichMenus(t *testing.T) {
	fxEachDB(t, func(t *testing.T, h *servertest.Harness) {
		ctx := context.Background()
		body := message.Template{Messages: []message.Message{{Type: "text", Text: "<b>{{display_name|お客様}}</b>さん、ようこそ"}}}
		if _, err := template.Save(ctx, h.Srv.DB, h.Ch, "greeting", "", body); err != nil {
			t.Fatal(err)
		}
		ctScenario(t, h, "welcome", `
trigger: {type: follow}
steps:
  - {key: greet, template: greeting, actions: {rich_menu: `+ctMenu+`}}
  - {key: later, timing: {after: 1d}, actions: {rich_menu: default}}
`, true)
		b := signIn(t, h)
		base := "/console/channels/" + h.Ch
		ctInOrder(t, "timeline in Japanese", ctPage(t, b, base+"/scenarios/welcome"),
			"greet", "テンプレート「greeting」を送信", "&lt;b&gt;{{display_name|お客様}}&lt;/b&gt;さん、ようこそ", "リッチメニューを切り替え: "+ctMenu,
			"later", "リッチメニューをデフォルトに戻す")
		ctInOrder(t, "timeline in English", ctPage(t, b, base+"/scenarios/welcome?lang=en"),
			"Sends template greeting", "Link rich menu: "+ctMenu, "Back to the default rich menu")

		res, page := ctPost(b, base+"/templates/greeting/delete?lang=ja", nil)
		if res.StatusCode != http.StatusConflict {
			t.Fatalf("delete of a template in use: %d", res.StatusCode)
		}
		ctInOrder(t, "the refusal", page, "テンプレート「greeting」はシナリオ「welcome」のステップで使われているため削除できません")
		if _, err := template.Get(ctx, h.Srv.DB, h.Ch, "greeting"); err != nil {
			t.Errorf("the template in use was deleted: %v", err)
		}
		res, page = ctPost(b, base+"/templates/greeting/delete?lang=en", nil)
		if res.StatusCode != http.StatusConflict {
			t.Fatalf("delete of a template in use, in English: %d", res.StatusCode)
		}
		ctInOrder(t, "the refusal in English", page, "template &#34;greeting&#34; is sent by steps of scenarios welcome")
	})
}
