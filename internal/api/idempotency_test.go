package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/api"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/testutil"
)

// A client that sends the same broadcast again with its Idempotency-Key (after a timeout,
// say) gets the first answer back and its friends get the message once; the key used
// for another request is refused; concurrent repeats create one broadcast; a day later
// the key is forgotten.
func TestBroadcastIdempotencyKey(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		op := token(t, h, staff.Operator, h.Ch)
		ch := "/api/v1/channels/" + h.Ch
		u, _ := follow(t, h, "田中")
		send := map[string]any{"segment": map[string]any{}, "messages": []any{map[string]string{"type": "text", "text": "年末セール"}}}
		withKey := func(key string) http.Header { return http.Header{api.IdempotencyHeader: {key}} }
		countBroadcasts := func() int {
			return len(expect(t, call(t, h, op, "GET", ch+"/broadcasts", nil), http.StatusOK).body["broadcasts"].([]any))
		}

		first := expect(t, callWith(t, h, op, "POST", ch+"/broadcasts", send, withKey("sale-2026-12")), http.StatusCreated)
		if first.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("a first request marked as replayed")
		}
		again := expect(t, callWith(t, h, op, "POST", ch+"/broadcasts", send, withKey("sale-2026-12")), http.StatusCreated)
		if again.header.Get("Idempotent-Replayed") != "true" || string(again.raw) != string(first.raw) {
			t.Errorf("repeat: replayed %q, body\n%s\nwant\n%s", again.header.Get("Idempotent-Replayed"), again.raw, first.raw)
		}
		if n := countBroadcasts(); n != 1 {
			t.Fatalf("%d broadcasts after a repeated request, want 1", n)
		}
		h.Eventually("the broadcast to be sent", func() bool { return len(texts(t, h, u)) > 0 })

		// The same key with another body, or on another route, is a mistake to report.
		other := map[string]any{"segment": map[string]any{}, "messages": []any{map[string]string{"type": "text", "text": "別の内容"}}}
		if r := expect(t, callWith(t, h, op, "POST", ch+"/broadcasts", other, withKey("sale-2026-12")), http.StatusUnprocessableEntity); r.errCode() != "idempotency_key_reused" {
			t.Errorf("key reused for another body: %s", r.raw)
		}
		for _, bad := range []string{"has space", strings.Repeat("k", 256), "キー"} {
			if r := expect(t, callWith(t, h, op, "POST", ch+"/broadcasts", send, withKey(bad)), http.StatusBadRequest); r.errCode() != "invalid_idempotency_key" {
				t.Errorf("key %q: %s", bad, r.raw)
			}
		}
		// A refused request leaves its key unused: corrected, it goes through.
		invalid := map[string]any{"segment": map[string]any{"tag": "nosuch"}, "messages": send["messages"]}
		expect(t, callWith(t, h, op, "POST", ch+"/broadcasts", invalid, withKey("fixed-later")), http.StatusBadRequest)
		expect(t, callWith(t, h, op, "POST", ch+"/broadcasts", send, withKey("fixed-later")), http.StatusCreated)

		// Repeats racing the first create one broadcast, and all get its answer.
		const racers = 6
		ids := make([]any, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				r := callWith(t, h, op, "POST", ch+"/broadcasts", send, withKey("race"))
				if r.status != http.StatusCreated {
					t.Errorf("racer %d: %d %s", i, r.status, r.raw)
				}
				ids[i] = r.body["id"]
			})
		}
		wg.Wait()
		if slices.IndexFunc(ids, func(id any) bool { return id != ids[0] }) >= 0 {
			t.Errorf("racing repeats answered different broadcasts: %v", ids)
		}
		if n := countBroadcasts(); n != 3 {
			t.Fatalf("%d broadcasts, want 3 (one per key)", n)
		}

		// Another token's key of the same name is its own.
		op2 := token(t, h, staff.Operator, h.Ch)
		r := expect(t, callWith(t, h, op2, "POST", ch+"/broadcasts", send, withKey("sale-2026-12")), http.StatusCreated)
		if r.header.Get("Idempotent-Replayed") != "" || fmt.Sprint(r.body["id"]) == fmt.Sprint(first.body["id"]) {
			t.Errorf("another token's key answered with the first token's broadcast: %s", r.raw)
		}

		// A day later the key is forgotten: the same request makes a new broadcast.
		h.Clk.Advance(25 * time.Hour)
		r = expect(t, callWith(t, h, op, "POST", ch+"/broadcasts", send, withKey("sale-2026-12")), http.StatusCreated)
		if r.header.Get("Idempotent-Replayed") != "" || fmt.Sprint(r.body["id"]) == fmt.Sprint(first.body["id"]) {
			t.Errorf("a key older than a day was replayed: %s", r.raw)
		}
	})
}

// Starting a scenario that may be entered again once it ended: a repeat with the same
// Idempotency-Key answers the first start and the friend is greeted once; a second
// request without a key enrols them again, as asked.
func TestScenarioStartIdempotencyKey(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		op := token(t, h, staff.Operator, h.Ch)
		path := "/api/v1/channels/" + h.Ch + "/scenarios/welcome"
		expect(t, call(t, h, op, "PUT", path, `{"definition": {"trigger": {"type": "manual"}, "reentry": "after_end",
			"steps": [{"key": "a", "messages": [{"type": "text", "text": "ご来店ありがとうございます"}]}]}, "enabled": true}`), http.StatusCreated)
		u, id := follow(t, h, "山本")
		body := map[string]int64{"friend_id": id}
		withKey := http.Header{api.IdempotencyHeader: {"visit-2026-12-08-yamamoto"}}

		first := expect(t, callWith(t, h, op, "POST", path+"/start", body, withKey), http.StatusOK)
		if first.body["started"] != true {
			t.Fatalf("start: %s", first.raw)
		}
		h.Eventually("the step, and the run's end", func() bool {
			c, err := h.Srv.Scenarios.Censuses(ctx, h.Ch)
			return err == nil && c["welcome"].Completed == 1 && len(texts(t, h, u)) == 1
		})
		again := expect(t, callWith(t, h, op, "POST", path+"/start", body, withKey), http.StatusOK)
		if again.header.Get("Idempotent-Replayed") != "true" || string(again.raw) != string(first.raw) {
			t.Errorf("repeat: replayed %q, %s", again.header.Get("Idempotent-Replayed"), again.raw)
		}
		_, other := follow(t, h, "佐々木")
		if r := expect(t, callWith(t, h, op, "POST", path+"/start", map[string]int64{"friend_id": other}, withKey),
			http.StatusUnprocessableEntity); r.errCode() != "idempotency_key_reused" {
			t.Errorf("the key for another friend: %s", r.raw)
		}

		if r := expect(t, call(t, h, op, "POST", path+"/start", body), http.StatusOK); r.body["started"] != true {
			t.Errorf("a new start without a key: %s", r.raw)
		}
		h.Eventually("the second greeting", func() bool { return len(texts(t, h, u)) == 2 })
	})
}
