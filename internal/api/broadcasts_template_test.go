package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/template"
	"github.com/linestep/linestep/internal/testutil"
)

func saveTemplate(t *testing.T, h *servertest.Harness, key, text string) {
	t.Helper()
	body := message.Template{Messages: []message.Message{{Type: "text", Text: text}}}
	err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		_, err := template.Save(ctx, tx, h.Ch, key, "", body)
		return err
	})
	if err != nil {
		t.Fatalf("template %s: %v", key, err)
	}
}

// A broadcast named by a saved template's key sends a copy of its messages taken when
// it was created: editing the template afterwards changes nothing that is scheduled.
func TestBroadcastFromASavedTemplate(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		op := token(t, h, staff.Operator, h.Ch)
		ch := "/api/v1/channels/" + h.Ch
		u1, _ := follow(t, h, "田中")
		saveTemplate(t, h, "winter-sale", "{{display_name|お客様}}さん、冬のセールです")

		later := h.Clk.Now().Add(time.Hour).Format(time.RFC3339)
		r := expect(t, call(t, h, op, "POST", ch+"/broadcasts", map[string]any{"segment": map[string]any{},
			"template_key": "winter-sale", "scheduled_at": later}), http.StatusCreated)
		msgs, _ := r.body["messages"].([]any)
		if r.body["template_key"] != "winter-sale" || r.body["personalised"] != true || len(msgs) != 1 ||
			msgs[0].(map[string]any)["text"] != "{{display_name|お客様}}さん、冬のセールです" {
			t.Fatalf("created: %s", r.raw)
		}
		path := fmt.Sprintf("%s/broadcasts/%v", ch, r.body["id"])

		// Edited before the broadcast's time: what was scheduled goes, as GET shows it.
		saveTemplate(t, h, "winter-sale", "内容を変えました")
		r = expect(t, call(t, h, op, "GET", path, nil), http.StatusOK)
		if m := r.body["messages"].([]any)[0].(map[string]any); m["text"] != "{{display_name|お客様}}さん、冬のセールです" || r.body["template_key"] != "winter-sale" {
			t.Fatalf("after the template changed: %s", r.raw)
		}
		if r := expect(t, call(t, h, op, "GET", ch+"/broadcasts", nil), http.StatusOK); r.body["broadcasts"].([]any)[0].(map[string]any)["template_key"] != "winter-sale" {
			t.Errorf("the list leaves out where the messages came from: %s", r.raw)
		}
		h.Clk.Advance(time.Hour)
		h.Srv.Broadcasts.Notify()
		h.Eventually("the broadcast to be sent", func() bool {
			p := expect(t, call(t, h, op, "GET", path, nil), http.StatusOK).body["progress"].(map[string]any)
			return p["sent"] == float64(1)
		})
		if got := texts(t, h, u1); !slices.Equal(got, []string{"田中さん、冬のセールです"}) {
			t.Errorf("received %q", got)
		}

		// Messages given in the body keep no template key.
		r = expect(t, call(t, h, op, "POST", ch+"/broadcasts", map[string]any{"segment": map[string]any{}, "scheduled_at": later,
			"messages": []any{map[string]string{"type": "text", "text": "手書き"}}}), http.StatusCreated)
		if _, ok := r.body["template_key"]; ok {
			t.Errorf("a broadcast with its own messages names a template: %s", r.raw)
		}
	})
}

func TestBroadcastTemplateKeyProblems(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		op := token(t, h, staff.Operator, h.Ch)
		ch := "/api/v1/channels/" + h.Ch
		saveTemplate(t, h, "hello", "こんにちは")
		saveTemplate(t, h, "gift", "{{coupon.gift.code|-}}") // no coupon "gift": a broadcast cannot send it
		every := map[string]any{}
		for _, c := range []struct {
			what string
			body map[string]any
			want []string
		}{
			{"both", map[string]any{"segment": every, "template_key": "hello", "messages": []any{map[string]string{"type": "text", "text": "x"}}}, []string{"template_key"}},
			{"neither", map[string]any{"segment": every}, []string{"messages"}},
			{"unknown key", map[string]any{"segment": every, "template_key": "nosuch"}, []string{"template_key"}},
			{"not a key", map[string]any{"segment": every, "template_key": "Bad Key!"}, []string{"template_key"}},
			{"unknown coupon in the template", map[string]any{"segment": every, "template_key": "gift"}, []string{"template_key"}},
			{"every problem at once", map[string]any{"segment": map[string]any{"tag": "nosuch"}, "template_key": "nosuch"}, []string{"template_key", "segment.tag"}},
		} {
			r := expect(t, call(t, h, op, "POST", ch+"/broadcasts", c.body), http.StatusBadRequest)
			if got := r.problems(t); !slices.Equal(got, c.want) {
				t.Errorf("%s: problems at %q, want %q: %s", c.what, got, c.want, r.raw)
			}
		}
		if r := expect(t, call(t, h, op, "GET", ch+"/broadcasts", nil), http.StatusOK); len(r.body["broadcasts"].([]any)) != 0 {
			t.Fatalf("a refused request created a broadcast: %s", r.raw)
		}
	})
}
