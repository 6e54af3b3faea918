package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/template"
)

func TestTemplateFormChecksLINELimitsAndPreviewsVariables(t *testing.T) {
	fxEachDB(t, func(t *testing.T, h *servertest.Harness) {
		ctx := context.Background()
		b := signIn(t, h)
		base := "/console/channels/" + h.Ch + "/templates"
		ctInOrder(t, "new form", ctPage(t, b, base+"/new"), `name="key"`, `name="text"`, `name="yaml"`)

		long := strings.Repeat("長", 5001)
		res, page := ctPost(b, base, url.Values{"key": {"sale"}, "name": {"セール"}, "mode": {"text"}, "text": {long}})
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("an over-long text: %d", res.StatusCode)
		}
		ctInOrder(t, "the problem", page, "messages[0].text", "本文が5,001文字です。LINE の上限は5,000文字です", `value="sale"`, long)
		if _, err := template.Get(ctx, h.Srv.DB, h.Ch, "sale"); err == nil {
			t.Errorf("the over-long template was saved")
		}
		res, page = ctPost(b, base+"?lang=en", url.Values{"key": {"sale"}, "mode": {"yaml"}, "yaml": {"messages: [{type: txt, text: hi}]"}})
		if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "messages[0].type") || !strings.Contains(page, "type: txt") {
			t.Errorf("an unknown message type in English: %d", res.StatusCode)
		}

		text := "{{display_name|お客様}}さん、{{field.area|お近く}}の店でお待ちしています"
		res, page = ctPost(b, base+"?lang=ja", url.Values{"key": {"sale"}, "name": {"<セール>"}, "mode": {"text"}, "text": {text}})
		to := ctRedirect(t, "save", res, page)
		detail := ctPage(t, b, to)
		ctInOrder(t, "preview with fallbacks", detail, "保存しました", "&lt;セール&gt;", "お客様さん、お近くの店でお待ちしています", `name="v.display_name"`, `name="v.field.area"`)
		tried := ctPage(t, b, base+"/sale?v.display_name="+url.QueryEscape("<b>佐藤</b>"))
		ctInOrder(t, "preview with a value", tried, "&lt;b&gt;佐藤&lt;/b&gt;さん、お近くの店")
		if strings.Contains(tried, "<b>佐藤") {
			t.Errorf("a tried value reached the page unescaped")
		}
		if res, _ := ctPost(b, base, url.Values{"key": {"sale"}, "mode": {"text"}, "text": {"x"}}); res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("a second template of the same key: %d", res.StatusCode)
		}
		if res, _ := b.do("POST", base+"/sale", url.Values{"mode": {"text"}, "text": {"x"}}, nil); res.StatusCode != http.StatusForbidden {
			t.Errorf("an edit without the token: %d", res.StatusCode)
		}
		ctInOrder(t, "list", ctPage(t, b, base), "sale", "&lt;セール&gt;", "{{display_name|お客様}}さん")
		res, page = ctPost(b, base+"/sale/delete", nil)
		ctRedirect(t, "delete", res, page)
		if _, err := template.Get(ctx, h.Srv.DB, h.Ch, "sale"); err == nil {
			t.Errorf("not deleted")
		}
	})
}
