package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/testutil"
)

// texts lists the texts a user received from the account.
func texts(t *testing.T, h *servertest.Harness, u string) []string {
	t.Helper()
	rs, err := h.Emu.ReceivedBy(h.Ch, u)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		for _, m := range r.Messages {
			var msg struct{ Text string }
			if err := json.Unmarshal(m, &msg); err != nil {
				t.Fatal(err)
			}
			out = append(out, msg.Text)
		}
	}
	return out
}

func TestFriendsTagsAndATagTriggeredScenario(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		// An admin reads personal data; an operator sees it masked.
		tok := token(t, h, staff.Admin, h.Ch)
		masked := token(t, h, staff.Operator, h.Ch)
		ch := "/api/v1/channels/" + h.Ch
		hostile := `<script>alert("x")</script>`
		u, id := follow(t, h, hostile)
		_, other := follow(t, h, "佐藤")
		h.OK(h.Emu.SendText(ctx, h.Ch, u, "<b>予約</b> & more"))
		h.Eventually("the message", func() bool { return len(h.Conversation(u)) == 1 })

		r := expect(t, call(t, h, tok, "GET", ch+"/friends", nil), http.StatusOK)
		if bytes.Contains(r.raw, []byte("<script>")) || !bytes.Contains(r.raw, []byte(`\u003cscript\u003e`)) {
			t.Errorf("display name not escaped: %s", r.raw)
		}
		fs := r.body["friends"].([]any)
		if len(fs) != 2 || fs[0].(map[string]any)["id"] != float64(other) || fs[1].(map[string]any)["display_name"] != hostile {
			t.Fatalf("friends, newest first: %s", r.raw)
		}
		r = expect(t, call(t, h, masked, "GET", ch+"/friends", nil), http.StatusOK)
		if fs := r.body["friends"].([]any); fs[0].(map[string]any)["display_name"] != "佐*" || bytes.Contains(r.raw, []byte("script")) {
			t.Errorf("an operator's list is not masked: %s", r.raw)
		}
		r = expect(t, call(t, h, tok, "GET", ch+"/friends?limit=1", nil), http.StatusOK)
		if r.body["next_after"] != float64(other) || len(r.body["friends"].([]any)) != 1 {
			t.Errorf("first page: %s", r.raw)
		}
		r = expect(t, call(t, h, tok, "GET", fmt.Sprintf("%s/friends?limit=1&after=%d", ch, other), nil), http.StatusOK)
		if fs := r.body["friends"].([]any); len(fs) != 1 || fs[0].(map[string]any)["id"] != float64(id) {
			t.Errorf("second page: %s", r.raw)
		}
		r = expect(t, call(t, h, tok, "GET", ch+"/friends?status=asleep&limit=0", nil), http.StatusBadRequest)
		if ps := r.problems(t); !slices.Equal(ps, []string{"status", "limit"}) {
			t.Errorf("problems: %v", ps)
		}
		friendPath := fmt.Sprintf("%s/friends/%d", ch, id)
		r = expect(t, call(t, h, tok, "GET", friendPath, nil), http.StatusOK)
		if r.body["display_name"] != hostile || r.body["status"] != "following" || len(r.body["tags"].([]any)) != 0 {
			t.Errorf("friend: %s", r.raw)
		}
		expect(t, call(t, h, tok, "GET", ch+"/friends/999999", nil), http.StatusNotFound)
		expect(t, call(t, h, tok, "GET", ch+"/friends/abc", nil), http.StatusNotFound)
		r = expect(t, call(t, h, tok, "GET", friendPath+"/messages", nil), http.StatusOK)
		if ms := r.body["messages"].([]any); len(ms) != 1 || ms[0].(map[string]any)["text"] != "<b>予約</b> & more" ||
			bytes.Contains(r.raw, []byte("<b>")) {
			t.Errorf("messages: %s", r.raw)
		}

		// A scenario saved through the API starts when the API adds its tag.
		put := map[string]any{"definition": map[string]any{
			"name":    "VIP",
			"trigger": map[string]string{"type": "tag", "tag": "vip"},
			"steps": []any{map[string]any{"key": "welcome",
				"messages": []any{map[string]string{"type": "text", "text": "{{display_name}}さん、VIPへようこそ"}}}},
		}}
		r = expect(t, call(t, h, tok, "PUT", ch+"/scenarios/vip-welcome", put), http.StatusCreated)
		if r.body["enabled"] != true || r.body["version"] != float64(1) {
			t.Errorf("saved: %s", r.raw)
		}
		r = expect(t, call(t, h, tok, "PUT", friendPath+"/tags/vip", nil), http.StatusOK)
		if r.body["added"] != true {
			t.Errorf("tag: %s", r.raw)
		}
		h.Eventually("the VIP message", func() bool { return len(texts(t, h, u)) == 1 })
		if got := texts(t, h, u); got[0] != hostile+"さん、VIPへようこそ" {
			t.Errorf("received %q", got)
		}
		if r := expect(t, call(t, h, tok, "PUT", friendPath+"/tags/vip", nil), http.StatusOK); r.body["added"] != false {
			t.Errorf("tag again: %s", r.raw)
		}
		r = expect(t, call(t, h, tok, "GET", friendPath+"/enrolments", nil), http.StatusOK)
		if es := r.body["enrolments"].([]any); len(es) != 1 || es[0].(map[string]any)["scenario_key"] != "vip-welcome" ||
			es[0].(map[string]any)["state"] != "completed" {
			t.Errorf("enrolments: %s", r.raw)
		}
		h.Eventually("the delivery counted as sent", func() bool {
			r := expect(t, call(t, h, tok, "GET", ch+"/deliveries/counts", nil), http.StatusOK)
			c := r.body["counts"].(map[string]any)
			return c["sent"] == float64(1) && c["pending"] == float64(0)
		})
		r = expect(t, call(t, h, tok, "GET", friendPath+"/deliveries", nil), http.StatusOK)
		if ds := r.body["deliveries"].([]any); len(ds) != 1 || ds[0].(map[string]any)["source"] != "scenario" ||
			ds[0].(map[string]any)["state"] != "sent" {
			t.Errorf("deliveries: %s", r.raw)
		}

		r = expect(t, call(t, h, tok, "GET", ch+"/tags", nil), http.StatusOK)
		if ts := r.body["tags"].([]any); len(ts) != 1 || ts[0].(map[string]any)["name"] != "vip" || ts[0].(map[string]any)["friends"] != float64(1) {
			t.Errorf("tags: %s", r.raw)
		}
		r = expect(t, call(t, h, tok, "GET", ch+"/friends?tag=vip", nil), http.StatusOK)
		if fs := r.body["friends"].([]any); len(fs) != 1 {
			t.Errorf("friends tagged vip: %s", r.raw)
		}
		r = expect(t, call(t, h, tok, "GET", ch+"/friends?tag=nobody", nil), http.StatusOK)
		if fs := r.body["friends"].([]any); len(fs) != 0 {
			t.Errorf("friends of an unknown tag: %s", r.raw)
		}
		r = expect(t, call(t, h, tok, "GET", friendPath, nil), http.StatusOK)
		if tags := r.body["tags"].([]any); len(tags) != 1 || tags[0] != "vip" {
			t.Errorf("friend's tags: %s", r.raw)
		}
		if r := expect(t, call(t, h, tok, "DELETE", friendPath+"/tags/vip", nil), http.StatusOK); r.body["removed"] != true {
			t.Errorf("remove tag: %s", r.raw)
		}
		expect(t, call(t, h, tok, "DELETE", friendPath+"/tags/nosuch", nil), http.StatusNotFound)
		expect(t, call(t, h, tok, "PUT", friendPath+"/tags/%20", nil), http.StatusBadRequest)

		if logs := h.Logs.String(); strings.Contains(logs, hostile) || strings.Contains(logs, "予約") {
			t.Errorf("personal data in the server's log")
		}
	})
}

func TestFieldsValidateWithoutEchoingValues(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		tok := token(t, h, staff.Admin, "")
		ch := "/api/v1/channels/" + h.Ch
		_, id := follow(t, h, "山田")
		field := map[string]any{"key": "birthday", "label": "誕生日", "type": "date", "purpose": "誕生日クーポンのため"}
		r := expect(t, call(t, h, tok, "POST", ch+"/fields", field), http.StatusCreated)
		if r.body["sensitivity"] != "normal" || r.body["created_at"] == nil {
			t.Errorf("field: %s", r.raw)
		}
		field["label"] = "お誕生日"
		expect(t, call(t, h, tok, "POST", ch+"/fields", field), http.StatusOK)
		delete(field, "purpose")
		if r := expect(t, call(t, h, tok, "POST", ch+"/fields", field), http.StatusBadRequest); !strings.Contains(string(r.raw), "purpose") {
			t.Errorf("a field without a purpose: %s", r.raw)
		}
		r = expect(t, call(t, h, tok, "GET", ch+"/fields", nil), http.StatusOK)
		if fs := r.body["fields"].([]any); len(fs) != 1 || fs[0].(map[string]any)["label"] != "お誕生日" {
			t.Errorf("fields: %s", r.raw)
		}

		valuePath := fmt.Sprintf("%s/friends/%d/fields/birthday", ch, id)
		secret := "平成元年の秋ごろ-0123"
		r = expect(t, call(t, h, tok, "PUT", valuePath, map[string]string{"value": secret}), http.StatusBadRequest)
		if ps := r.problems(t); !slices.Equal(ps, []string{"value"}) || bytes.Contains(r.raw, []byte("0123")) ||
			!strings.Contains(string(r.raw), "YYYY-MM-DD") {
			t.Errorf("invalid value: %s", r.raw)
		}
		if r := expect(t, call(t, h, tok, "PUT", valuePath, map[string]any{"value": 19890101}), http.StatusBadRequest); bytes.Contains(r.raw, []byte("1989")) {
			t.Errorf("a number for a string: %s", r.raw)
		}
		r = expect(t, call(t, h, tok, "PUT", valuePath, map[string]string{"value": " 1989-10-01 "}), http.StatusOK)
		if r.body["value"] != "1989-10-01" || r.body["changed"] != true {
			t.Errorf("set: %s", r.raw)
		}
		r = expect(t, call(t, h, tok, "GET", fmt.Sprintf("%s/friends/%d", ch, id), nil), http.StatusOK)
		if f := r.body["fields"].(map[string]any); f["birthday"] != "1989-10-01" {
			t.Errorf("friend's fields: %s", r.raw)
		}
		expect(t, call(t, h, tok, "PUT", fmt.Sprintf("%s/friends/%d/fields/nosuch", ch, id), map[string]string{"value": "x"}), http.StatusNotFound)
		expect(t, call(t, h, tok, "DELETE", valuePath, nil), http.StatusOK)
		r = expect(t, call(t, h, tok, "GET", fmt.Sprintf("%s/friends/%d", ch, id), nil), http.StatusOK)
		if f := r.body["fields"].(map[string]any); len(f) != 0 {
			t.Errorf("cleared field still there: %s", r.raw)
		}
		if strings.Contains(h.Logs.String(), secret) || strings.Contains(h.Logs.String(), "1989") {
			t.Errorf("a field value in the log")
		}
	})
}

func TestScenarioProblemsAndMalformedRequests(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		tok := token(t, h, staff.Admin, "")
		ch := "/api/v1/channels/" + h.Ch
		path := ch + "/scenarios/manual-one"
		bad := `{"definition": {"trigger": {"type": "birthday"}, "steps": [{"key": "A!", "messages": [{"type": "text", "text": "x"}]},
			{"key": "b", "timing": {"day": 1, "at": "25:00"}, "messages": [{"type": "text", "text": "y"}]}]}}`
		r := expect(t, call(t, h, tok, "PUT", path, bad), http.StatusBadRequest)
		ps := r.problems(t)
		for _, want := range []string{"definition.trigger.type", "definition.steps[0].key", "definition.steps[1].timing.at"} {
			if !slices.Contains(ps, want) {
				t.Errorf("problems %v lack %s", ps, want)
			}
		}
		expect(t, call(t, h, tok, "PUT", ch+"/scenarios/Bad_Key!", `{"definition": {}}`), http.StatusBadRequest)
		r = expect(t, call(t, h, tok, "PUT", path, `{"definition": {"trigger": {"type": "manual"}, "stpes": []}}`), http.StatusBadRequest)
		if ps := r.problems(t); !slices.Equal(ps, []string{"definition"}) || !strings.Contains(string(r.raw), "stpes") {
			t.Errorf("misspelt key: %s", r.raw)
		}
		if r := expect(t, call(t, h, tok, "PUT", path, `{"definition": "trigger: manual"}`), http.StatusBadRequest); r.problems(t)[0] != "definition" {
			t.Errorf("definition as YAML text: %s", r.raw)
		}
		if r := expect(t, call(t, h, tok, "PUT", path, `{"definition": {}, "enabeld": true}`), http.StatusBadRequest); r.problems(t)[0] != "enabeld" {
			t.Errorf("unknown top-level key: %s", r.raw)
		}
		if r := expect(t, call(t, h, tok, "PUT", path, `{"definition": {`), http.StatusBadRequest); r.errCode() != "invalid_json" {
			t.Errorf("malformed JSON: %s", r.raw)
		}
		expect(t, call(t, h, tok, "PUT", path, `{} {}`), http.StatusBadRequest)
		expect(t, call(t, h, tok, "PUT", path, ""), http.StatusBadRequest)
		if r := expect(t, call(t, h, tok, "PUT", path, `{"definition": {}}`, "text/plain"), http.StatusUnsupportedMediaType); r.errCode() != "unsupported_media_type" {
			t.Errorf("wrong content type: %s", r.raw)
		}
		expect(t, call(t, h, tok, "PUT", path, `{"definition": {}}`, "application/json; charset=latin1"), http.StatusUnsupportedMediaType)
		huge := `{"definition": {"name": "` + strings.Repeat("x", 1<<20) + `"}}`
		if r := expect(t, call(t, h, tok, "PUT", path, huge), http.StatusRequestEntityTooLarge); r.errCode() != "body_too_large" {
			t.Errorf("huge body: %s", r.raw)
		}
		chunked := io.MultiReader(strings.NewReader(huge))
		if r := expect(t, call(t, h, tok, "PUT", path, chunked), http.StatusRequestEntityTooLarge); r.errCode() != "body_too_large" {
			t.Errorf("huge body of unknown length: %s", r.raw)
		}

		// Start and stop by hand.
		good := `{"definition": {"trigger": {"type": "manual"}, "steps": [{"key": "a", "messages": [{"type": "text", "text": "手動"}]},
			{"key": "b", "timing": {"after": "1d"}, "messages": [{"type": "text", "text": "翌日"}]}]}, "enabled": false}`
		r = expect(t, call(t, h, tok, "PUT", path, good), http.StatusCreated)
		if r.body["enabled"] != false {
			t.Errorf("saved disabled: %s", r.raw)
		}
		u, id := follow(t, h, "鈴木")
		start, stop := path+"/start", path+"/stop"
		if r := expect(t, call(t, h, tok, "POST", start, map[string]int64{"friend_id": id}), http.StatusConflict); r.errCode() != "scenario_disabled" {
			t.Errorf("start disabled: %s", r.raw)
		}
		r = expect(t, call(t, h, tok, "PUT", path, strings.Replace(good, `"enabled": false`, `"enabled": true`, 1)), http.StatusOK)
		if r.body["version"] != float64(2) || r.body["definition"].(map[string]any)["steps"] == nil {
			t.Errorf("saved again: %s", r.raw)
		}
		expect(t, call(t, h, tok, "POST", start, map[string]int64{"friend_id": 999999}), http.StatusNotFound)
		expect(t, call(t, h, tok, "POST", start, map[string]int64{}), http.StatusBadRequest)
		expect(t, call(t, h, tok, "POST", ch+"/scenarios/nosuch/start", map[string]int64{"friend_id": id}), http.StatusNotFound)
		if r := expect(t, call(t, h, tok, "POST", start, map[string]int64{"friend_id": id}), http.StatusOK); r.body["started"] != true {
			t.Errorf("start: %s", r.raw)
		}
		h.Eventually("the first step", func() bool { return len(texts(t, h, u)) == 1 })
		if r := expect(t, call(t, h, tok, "POST", start, map[string]int64{"friend_id": id}), http.StatusOK); r.body["started"] != false {
			t.Errorf("start twice: %s", r.raw)
		}
		if r := expect(t, call(t, h, tok, "POST", stop, map[string]int64{"friend_id": id}), http.StatusOK); r.body["stopped"] != true {
			t.Errorf("stop: %s", r.raw)
		}
		if r := expect(t, call(t, h, tok, "POST", stop, map[string]int64{"friend_id": id}), http.StatusOK); r.body["stopped"] != false {
			t.Errorf("stop twice: %s", r.raw)
		}
		r = expect(t, call(t, h, tok, "GET", ch+"/scenarios", nil), http.StatusOK)
		if scs := r.body["scenarios"].([]any); len(scs) != 1 || scs[0].(map[string]any)["key"] != "manual-one" ||
			scs[0].(map[string]any)["definition"] != nil {
			t.Errorf("scenarios: %s", r.raw)
		}
		r = expect(t, call(t, h, tok, "GET", path, nil), http.StatusOK)
		if d := r.body["definition"].(map[string]any); len(d["steps"].([]any)) != 2 {
			t.Errorf("scenario: %s", r.raw)
		}
		h.OK(h.Emu.Block(ctx, h.Ch, u))
		h.Eventually("the block", func() bool { return h.Friend(u).Status == "blocked" })
		if r := expect(t, call(t, h, tok, "POST", start, map[string]int64{"friend_id": id}), http.StatusConflict); r.errCode() != "not_following" {
			t.Errorf("start for a blocked friend: %s", r.raw)
		}
	})
}
