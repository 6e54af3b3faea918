package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/broadcast"
	"github.com/linestep/linestep/internal/server"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/testutil"
)

// problemAt returns the English message of the problem at path, failing when there is
// none.
func problemAt(t *testing.T, r reply, path string) string {
	t.Helper()
	e, _ := r.body["error"].(map[string]any)
	ps, _ := e["problems"].([]any)
	for _, p := range ps {
		if m := p.(map[string]any); m["path"] == path {
			return m["en"].(string)
		}
	}
	t.Fatalf("no problem at %q: %s", path, r.raw)
	return ""
}

// A broadcast to the friends of one tag, counted first, sent through the emulator, and
// what cancelling it answers before and after.
func TestBroadcastToATag(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		op := token(t, h, staff.Operator, h.Ch)
		analyst := token(t, h, staff.Analyst, "")
		ch := "/api/v1/channels/" + h.Ch
		u1, id1 := follow(t, h, "田中")
		u2, id2 := follow(t, h, "中村")
		u3, _ := follow(t, h, "小林")
		for _, id := range []int64{id1, id2} {
			expect(t, call(t, h, op, "PUT", fmt.Sprintf("%s/friends/%d/tags/vip", ch, id), nil), http.StatusOK)
		}
		vip := map[string]any{"tag": "vip"}

		r := expect(t, call(t, h, analyst, "POST", ch+"/recipients/count", map[string]any{"segment": vip}), http.StatusOK)
		if r.body["recipients"] != float64(2) {
			t.Fatalf("count: %s", r.raw)
		}
		r = expect(t, call(t, h, op, "POST", ch+"/recipients/count", map[string]any{"segment": map[string]any{}}), http.StatusOK)
		if r.body["recipients"] != float64(3) {
			t.Errorf("count of every follower: %s", r.raw)
		}
		r = expect(t, call(t, h, op, "POST", ch+"/recipients/count", map[string]any{"segment": map[string]any{"tag": "nosuch"}}), http.StatusBadRequest)
		if en := problemAt(t, r, "segment.tag"); strings.Contains(en, "nosuch") {
			t.Errorf("a value repeated: %s", r.raw)
		}
		expect(t, call(t, h, op, "POST", ch+"/recipients/count", map[string]any{}), http.StatusBadRequest)

		send := map[string]any{"name": "VIPセール", "segment": vip,
			"messages": []any{map[string]string{"type": "text", "text": "{{display_name}}さん、VIPセールです"}}}
		if r := expect(t, call(t, h, analyst, "POST", ch+"/broadcasts", send), http.StatusForbidden); r.errCode() != "forbidden" {
			t.Errorf("analyst sends: %s", r.raw)
		}
		other, err := h.Srv.Channels.Add(ctx, "Other shop", "other-secret", "other-token")
		if err != nil {
			t.Fatal(err)
		}
		expect(t, call(t, h, token(t, h, staff.Owner, other.ID), "POST", ch+"/broadcasts", send), http.StatusForbidden)
		expect(t, call(t, h, op, "GET", "/api/v1/channels/"+other.ID+"/broadcasts", nil), http.StatusForbidden)

		// Requests with problems say where, in both languages, and create nothing.
		if r := expect(t, call(t, h, op, "POST", ch+"/broadcasts", `{"segment": {"tag": "vip"}, "messages": [`), http.StatusBadRequest); r.errCode() != "invalid_json" {
			t.Errorf("malformed JSON: %s", r.raw)
		}
		r = expect(t, call(t, h, op, "POST", ch+"/broadcasts", map[string]any{"segment": map[string]any{"tag": "nosuch"},
			"messages": []any{map[string]string{"type": "text", "text": ""}}, "scheduled_at": "2020-01-01T00:00:00Z"}), http.StatusBadRequest)
		for _, path := range []string{"segment.tag", "messages[0].text", "scheduled_at"} {
			problemAt(t, r, path)
		}
		r.problems(t)
		r = expect(t, call(t, h, op, "POST", ch+"/broadcasts", map[string]any{"segment": map[string]any{"tags": "vip"},
			"messages": []any{map[string]string{"type": "txt"}}, "scheduled_at": "tomorrow"}), http.StatusBadRequest)
		if en := problemAt(t, r, "segment"); !strings.Contains(en, "tags") {
			t.Errorf("a misspelt key in the segment: %s", r.raw)
		}
		problemAt(t, r, "messages[0].type")
		problemAt(t, r, "scheduled_at")
		r = expect(t, call(t, h, op, "POST", ch+"/broadcasts", map[string]any{"messages": send["messages"]}), http.StatusBadRequest)
		if ps := r.problems(t); !slices.Equal(ps, []string{"segment"}) {
			t.Errorf("no segment: %s", r.raw)
		}
		r = expect(t, call(t, h, op, "POST", ch+"/broadcasts", map[string]any{"segment": vip, "segment_key": "x", "messages": "hi"}), http.StatusBadRequest)
		if ps := r.problems(t); !slices.Equal(ps, []string{"segment_key", "messages"}) {
			t.Errorf("both segment and key, messages as text: %s", r.raw)
		}
		r = expect(t, call(t, h, op, "POST", ch+"/broadcasts", map[string]any{"segment": vip,
			"messages": []any{map[string]string{"type": "text", "text": "{{coupon.nosuch.code}}"}}}), http.StatusBadRequest)
		problemAt(t, r, "messages")
		if r := expect(t, call(t, h, op, "GET", ch+"/broadcasts", nil), http.StatusOK); len(r.body["broadcasts"].([]any)) != 0 {
			t.Fatalf("a refused request created a broadcast: %s", r.raw)
		}

		r = expect(t, call(t, h, op, "POST", ch+"/broadcasts", send), http.StatusCreated)
		if r.body["state"] != "scheduled" || r.body["personalised"] != true || r.body["created_by"] == "" ||
			r.body["segment"].(map[string]any)["tag"] != "vip" {
			t.Errorf("created: %s", r.raw)
		}
		path := fmt.Sprintf("%s/broadcasts/%v", ch, r.body["id"])
		h.Eventually("the broadcast to be sent", func() bool {
			r := expect(t, call(t, h, analyst, "GET", path, nil), http.StatusOK)
			p := r.body["progress"].(map[string]any)
			return r.body["state"] == "done" && p["sent"] == float64(2) && p["pending"] == float64(0)
		})
		r = expect(t, call(t, h, op, "GET", path, nil), http.StatusOK)
		if r.body["recipients"] != float64(2) || r.body["skipped"] != float64(0) || r.body["finished_at"] == nil {
			t.Errorf("sent: %s", r.raw)
		}
		for u, want := range map[string][]string{u1: {"田中さん、VIPセールです"}, u2: {"中村さん、VIPセールです"}, u3: nil} {
			if got := texts(t, h, u); !slices.Equal(got, want) {
				t.Errorf("received %q, want %q", got, want)
			}
		}
		if r := expect(t, call(t, h, op, "POST", path+"/cancel", nil), http.StatusConflict); r.errCode() != "broadcast_finished" {
			t.Errorf("cancel a sent broadcast: %s", r.raw)
		}

		// A saved segment, and a broadcast at a later time, cancelled before it.
		r = expect(t, call(t, h, op, "PUT", ch+"/segments/vips", map[string]any{"name": "VIP", "filter": vip}), http.StatusCreated)
		later := h.Clk.Now().Add(time.Hour).Format(time.RFC3339)
		r = expect(t, call(t, h, op, "POST", ch+"/broadcasts", map[string]any{"segment_key": "vips", "scheduled_at": later,
			"messages": []any{map[string]string{"type": "text", "text": "明日まで"}}}), http.StatusCreated)
		if r.body["personalised"] != false || r.body["scheduled_at"] != h.Clk.Now().Add(time.Hour).UTC().Format(time.RFC3339) {
			t.Errorf("scheduled: %s", r.raw)
		}
		scheduled := fmt.Sprintf("%s/broadcasts/%v", ch, r.body["id"])
		if r := expect(t, call(t, h, analyst, "POST", scheduled+"/cancel", nil), http.StatusForbidden); r.errCode() != "forbidden" {
			t.Errorf("analyst cancels: %s", r.raw)
		}
		r = expect(t, call(t, h, op, "POST", scheduled+"/cancel", nil), http.StatusOK)
		if r.body["state"] != "cancelled" || r.body["cancelled_deliveries"] != float64(0) {
			t.Errorf("cancelled: %s", r.raw)
		}
		if r := expect(t, call(t, h, op, "POST", scheduled+"/cancel", nil), http.StatusConflict); r.errCode() != "already_cancelled" {
			t.Errorf("cancel twice: %s", r.raw)
		}
		h.Clk.Advance(time.Hour)
		r = expect(t, call(t, h, op, "GET", scheduled, nil), http.StatusOK)
		if r.body["state"] != "cancelled" || r.body["recipients"] != float64(0) {
			t.Errorf("after its time: %s", r.raw)
		}

		r = expect(t, call(t, h, analyst, "GET", ch+"/broadcasts?limit=1", nil), http.StatusOK)
		bs := r.body["broadcasts"].([]any)
		if len(bs) != 1 || bs[0].(map[string]any)["state"] != "cancelled" || bs[0].(map[string]any)["messages"] != nil || r.body["next_after"] == nil {
			t.Fatalf("first page: %s", r.raw)
		}
		r = expect(t, call(t, h, analyst, "GET", fmt.Sprintf("%s/broadcasts?limit=1&after=%v", ch, r.body["next_after"]), nil), http.StatusOK)
		if bs := r.body["broadcasts"].([]any); len(bs) != 1 || bs[0].(map[string]any)["name"] != "VIPセール" {
			t.Errorf("second page: %s", r.raw)
		}
		expect(t, call(t, h, op, "GET", ch+"/broadcasts?limit=1000", nil), http.StatusBadRequest)
		expect(t, call(t, h, op, "GET", ch+"/broadcasts/999999", nil), http.StatusNotFound)
		expect(t, call(t, h, op, "GET", ch+"/broadcasts/abc", nil), http.StatusNotFound)
		expect(t, call(t, h, op, "POST", ch+"/broadcasts/999999/cancel", nil), http.StatusNotFound)

		if logs := h.Logs.String(); strings.Contains(logs, "田中") || strings.Contains(logs, "VIPセール") {
			t.Errorf("personal data or content in the server's log")
		}
	})
}

func TestSavedSegments(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		op := token(t, h, staff.Operator, "")
		admin := token(t, h, staff.Admin, "")
		ch := "/api/v1/channels/" + h.Ch
		_, id := follow(t, h, "加藤")
		expect(t, call(t, h, op, "PUT", fmt.Sprintf("%s/friends/%d/tags/osaka", ch, id), nil), http.StatusOK)

		r := expect(t, call(t, h, op, "PUT", ch+"/segments/kansai", map[string]any{"filter": map[string]any{"any": []any{
			map[string]string{"tag": "osaka"}, map[string]string{"tag": "kobe"}}}}), http.StatusBadRequest)
		problemAt(t, r, "filter.any[1].tag")
		r = expect(t, call(t, h, op, "PUT", ch+"/segments/kansai", map[string]any{"filter": map[string]any{"followedWithin": "soon"}}), http.StatusBadRequest)
		problemAt(t, r, "filter")
		expect(t, call(t, h, op, "PUT", ch+"/segments/Bad!", map[string]any{"filter": map[string]any{}}), http.StatusBadRequest)
		expect(t, call(t, h, op, "PUT", ch+"/segments/kansai", map[string]any{"filter": "tag: osaka"}), http.StatusBadRequest)

		seg := map[string]any{"name": "関西", "filter": map[string]any{"all": []any{map[string]string{"tag": "osaka"}, map[string]string{"followedWithin": "7d"}}}}
		r = expect(t, call(t, h, op, "PUT", ch+"/segments/kansai", seg), http.StatusCreated)
		if f := r.body["filter"].(map[string]any)["all"].([]any); len(f) != 2 || f[1].(map[string]any)["followedWithin"] != "1w" {
			t.Errorf("saved: %s", r.raw)
		}
		seg["name"] = "関西の友だち"
		expect(t, call(t, h, op, "PUT", ch+"/segments/kansai", seg), http.StatusOK)
		if r := expect(t, call(t, h, op, "GET", ch+"/segments/kansai", nil), http.StatusOK); r.body["name"] != "関西の友だち" {
			t.Errorf("get: %s", r.raw)
		}
		if r := expect(t, call(t, h, op, "GET", ch+"/segments", nil), http.StatusOK); len(r.body["segments"].([]any)) != 1 {
			t.Errorf("list: %s", r.raw)
		}
		if r := expect(t, call(t, h, op, "POST", ch+"/recipients/count", map[string]string{"segment_key": "kansai"}), http.StatusOK); r.body["recipients"] != float64(1) {
			t.Errorf("count of a saved segment: %s", r.raw)
		}
		expect(t, call(t, h, op, "POST", ch+"/recipients/count", map[string]string{"segment_key": "nosuch"}), http.StatusBadRequest)
		expect(t, call(t, h, token(t, h, staff.Analyst, h.Ch), "DELETE", ch+"/segments/kansai", nil), http.StatusForbidden)
		expect(t, call(t, h, admin, "DELETE", ch+"/segments/kansai", nil), http.StatusOK)
		expect(t, call(t, h, admin, "DELETE", ch+"/segments/kansai", nil), http.StatusNotFound)
		expect(t, call(t, h, op, "GET", ch+"/segments/kansai", nil), http.StatusNotFound)
	})
}

// Cancelled after its first chunk, a broadcast reaches nobody more: what was queued is
// either sent or cancelled, never both.
func TestCancelABroadcastInFlight(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.StartWith(t, dsn, func(c *server.Config) {
			c.Broadcasts = broadcast.Config{Chunk: 1, PollInterval: time.Hour} // expanded only by the test
		})
		op := token(t, h, staff.Operator, h.Ch)
		ch := "/api/v1/channels/" + h.Ch
		var users []string
		for _, name := range []string{"一郎", "二郎", "三郎"} {
			u, _ := follow(t, h, name)
			users = append(users, u)
		}
		r := expect(t, call(t, h, op, "POST", ch+"/broadcasts", map[string]any{"segment": map[string]any{},
			"scheduled_at": h.Clk.Now().Add(time.Minute).Format(time.RFC3339),
			"messages":     []any{map[string]string{"type": "text", "text": "取り消される配信"}}}), http.StatusCreated)
		path := fmt.Sprintf("%s/broadcasts/%v", ch, r.body["id"])
		h.Clk.Advance(time.Minute)
		if more, err := h.Srv.Broadcasts.Expand(ctx); err != nil || !more {
			t.Fatalf("first chunk: %v %v", more, err)
		}
		r = expect(t, call(t, h, op, "POST", path+"/cancel", nil), http.StatusOK)
		cancelled := r.body["cancelled_deliveries"].(float64)
		if r.body["state"] != "cancelled" || r.body["recipients"] != float64(1) {
			t.Fatalf("cancelled: %s", r.raw)
		}
		h.Srv.Delivery.Notify()
		h.Eventually("the queue to settle", func() bool {
			p := expect(t, call(t, h, op, "GET", path, nil), http.StatusOK).body["progress"].(map[string]any)
			return p["pending"] == float64(0) && p["sending"] == float64(0)
		})
		if more, err := h.Srv.Broadcasts.Expand(ctx); err != nil || more {
			t.Fatalf("expanded after cancel: %v %v", more, err)
		}
		received := 0
		for _, u := range users {
			received += len(texts(t, h, u))
		}
		p := expect(t, call(t, h, op, "GET", path, nil), http.StatusOK).body["progress"].(map[string]any)
		if received+int(cancelled) != 1 || p["sent"] != float64(received) || p["cancelled"] != cancelled {
			t.Errorf("received %d, cancelled %v, progress %v", received, cancelled, p)
		}
	})
}
