package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/template"
)

// bcHiddenFields are the fields a confirmation carries forward, for step.
func bcHiddenFields(page, step string) url.Values {
	out := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(page, -1) {
		if m[1] != "csrf" {
			out.Add(m[1], htmlUnescape(m[2]))
		}
	}
	out.Set("step", step)
	return out
}

// A broadcast made from a saved template sends the messages the confirmation showed: a
// template edited in between is shown again for confirmation instead of being sent.
func TestBroadcastFromATemplateSendsWhatWasConfirmed(t *testing.T) {
	fxEachDB(t, func(t *testing.T, h *servertest.Harness) {
		ctx := context.Background()
		saveTpl := func(text string) {
			t.Helper()
			err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
				_, err := template.Save(ctx, tx, h.Ch, "winter", "冬のセール", message.Template{Messages: []message.Message{{Type: "text", Text: text}}})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		saveTpl("冬のセールは明日まで")
		ctFollowers(t, h, "一郎", "二郎")
		b := signIn(t, h)
		base := "/console/channels/" + h.Ch + "/broadcasts"
		ctInOrder(t, "the form", ctPage(t, b, base+"/new"), `name="source" value="template"`, `<option value="winter"`, "冬のセール", "写し取られます")

		form := url.Values{"seg_mode": {"builder"}, "source": {"template"}, "tpl": {"winter"}, "mode": {"text"}, "when": {"now"}, "step": {"confirm"}}
		res, page := ctPost(b, base, form)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("confirm: %d\n%s", res.StatusCode, page)
		}
		ctInOrder(t, "confirmation", page, `id="bc-final">2<`, "<code>winter</code>", "冬のセールは明日まで", "写し取られます", `name="tpl_sum"`)
		confirmed := bcHiddenFields(page, "send")

		// Edited after the confirmation: nothing is sent, and the new text is shown.
		saveTpl("冬のセールは本日まで")
		res, page = ctPost(b, base, confirmed)
		if res.StatusCode != http.StatusConflict {
			t.Fatalf("send after an edit: %d\n%s", res.StatusCode, page)
		}
		ctInOrder(t, "confirm again", page, "確認の後でテンプレートが変更されました", "冬のセールは本日まで", `value="send"`)
		if strings.Contains(page, "冬のセールは明日まで") {
			t.Errorf("the old text is still shown")
		}
		if bs, _ := h.Srv.Broadcasts.List(ctx, h.Ch, 10); len(bs) != 0 {
			t.Fatalf("a broadcast was created from a changed template: %+v", bs)
		}
		// Sent straight away, with no confirmation: the confirmation is shown first.
		direct := url.Values{"seg_mode": {"builder"}, "source": {"template"}, "tpl": {"winter"}, "mode": {"text"}, "when": {"now"}, "step": {"send"}}
		if res, _ := ctPost(b, base, direct); res.StatusCode != http.StatusConflict {
			t.Errorf("a template sent without confirmation: %d", res.StatusCode)
		}

		res, page = ctPost(b, base, bcHiddenFields(page, "send"))
		to := ctRedirect(t, "send as confirmed again", res, page)
		id, err := strconv.ParseInt(strings.TrimPrefix(to, base+"/"), 10, 64)
		if err != nil {
			t.Fatalf("redirect to %s", to)
		}
		bc, err := h.Srv.Broadcasts.Get(ctx, h.Ch, id)
		if err != nil || bc.TemplateKey != "winter" || len(bc.Template.Messages) != 1 || bc.Template.Messages[0].Text != "冬のセールは本日まで" {
			t.Fatalf("created: %+v %v", bc, err)
		}
		ctInOrder(t, "detail", ctPage(t, b, to), "<code>winter</code>", "冬のセールは本日まで")
		ctInOrder(t, "in English", ctPage(t, b, to+"?lang=en"), "Template", "<code>winter</code>")
	})
}
