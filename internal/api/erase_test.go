package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// Erasing a friend leaves nothing that names them in any table of the database: not
// their LINE user ID, name, field value or words, wherever they had gone (a personalised
// broadcast, a multicast shared with another friend, a coupon, a scenario run, the
// webhook events kept for deduplication). The other friend keeps all of theirs, the
// broadcasts' totals still add up, and the audit log says who erased whom, by ID.
func TestErasingAFriendLeavesNothingThatNamesThem(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		admin := token(t, h, staff.Admin, h.Ch)
		op := token(t, h, staff.Operator, h.Ch)
		ch := "/api/v1/channels/" + h.Ch
		const name, phone, words = "消去花子", "090-8765-4321", "退会したいので私の情報を消してください"
		u, id := follow(t, h, name)
		other, otherID := follow(t, h, "残る太郎")

		expect(t, call(t, h, admin, "POST", ch+"/fields", map[string]any{"key": "phone", "label": "電話", "type": "text", "purpose": "連絡"}), http.StatusCreated)
		expect(t, call(t, h, admin, "PUT", fmt.Sprintf("%s/friends/%d/fields/phone", ch, id), map[string]string{"value": phone}), http.StatusOK)
		expect(t, call(t, h, admin, "PUT", fmt.Sprintf("%s/friends/%d/tags/常連", ch, id), nil), http.StatusOK)
		h.OK(h.Emu.SendText(ctx, h.Ch, u, words))
		expect(t, call(t, h, op, "PUT", ch+"/coupons/gift", map[string]any{"title": "お礼", "code_policy": "generated"}), http.StatusCreated)
		expect(t, call(t, h, op, "POST", ch+"/coupons/gift/issues", map[string]int64{"friend_id": id}), http.StatusOK)
		expect(t, call(t, h, op, "PUT", ch+"/scenarios/later", `{"definition": {"trigger": {"type": "manual"},
			"steps": [{"key": "a", "timing": {"after": "3d"}, "messages": [{"type": "text", "text": "3日後"}]}]}, "enabled": true}`), http.StatusCreated)
		expect(t, call(t, h, op, "POST", ch+"/scenarios/later/start", map[string]int64{"friend_id": id}), http.StatusOK)
		var broadcasts []string
		for _, text := range []string{"{{display_name}}さん、こんにちは", "みなさんへのお知らせ"} {
			r := expect(t, call(t, h, op, "POST", ch+"/broadcasts", map[string]any{"segment": map[string]any{},
				"messages": []any{map[string]string{"type": "text", "text": text}}}), http.StatusCreated)
			broadcasts = append(broadcasts, fmt.Sprintf("%s/broadcasts/%v", ch, r.body["id"]))
		}
		h.Eventually("both broadcasts and the message", func() bool {
			return len(texts(t, h, u)) == 2 && len(texts(t, h, other)) == 2 && len(h.Conversation(u)) >= 1
		})
		for _, b := range broadcasts {
			h.Eventually("the broadcast recorded", func() bool {
				r := expect(t, call(t, h, op, "GET", b, nil), http.StatusOK)
				return r.body["state"] == "done" && r.body["progress"].(map[string]any)["sent"] == float64(2)
			})
		}
		traces := []string{u, name, "8765", words}
		if found := tracesIn(t, h.Srv.DB, traces); len(found) == 0 {
			t.Fatal("the scan finds nothing before erasing: it cannot tell anything after")
		}

		path := fmt.Sprintf("%s/friends/%d", ch, id)
		expect(t, call(t, h, op, "DELETE", path, nil), http.StatusForbidden)
		r := expect(t, call(t, h, admin, "DELETE", path, nil), http.StatusOK)
		if r.body["erased"] != true {
			t.Errorf("erase: %s", r.raw)
		}
		if found := tracesIn(t, h.Srv.DB, traces); len(found) > 0 {
			t.Errorf("still naming the erased friend: %s", strings.Join(found, "; "))
		}
		expect(t, call(t, h, admin, "DELETE", path, nil), http.StatusNotFound)
		expect(t, call(t, h, admin, "GET", path, nil), http.StatusNotFound)

		// The other friend keeps theirs; the broadcasts still count both.
		expect(t, call(t, h, admin, "GET", fmt.Sprintf("%s/friends/%d", ch, otherID), nil), http.StatusOK)
		if n := len(tracesIn(t, h.Srv.DB, []string{other})); n == 0 {
			t.Errorf("the other friend's data went too")
		}
		for _, b := range broadcasts {
			r := expect(t, call(t, h, op, "GET", b, nil), http.StatusOK)
			if p := r.body["progress"].(map[string]any); p["sent"] != float64(2) {
				t.Errorf("progress after erasing: %v", p)
			}
		}
		recs, err := h.Srv.Audit.Query(ctx, audit.Filter{Action: audit.FriendDelete})
		if err != nil || len(recs) != 1 || recs[0].Subject != fmt.Sprintf("friend:%d", id) || recs[0].Actor.Kind != audit.ActorToken {
			t.Errorf("audit: %+v %v", recs, err)
		}

		// Writing again, they are a new friend with nothing of before.
		h.OK(h.Emu.SendText(ctx, h.Ch, u, "こんにちは"))
		h.Eventually("a new friend", func() bool { f := h.Friend(u); return f.ID != 0 && f.ID != id })
	})
}

// tracesIn lists "table.column: trace" for every text or binary column of every table
// holding one of the traces.
func tracesIn(t *testing.T, db *store.DB, traces []string) []string {
	t.Helper()
	type column struct{ table, name, kind string }
	var cols []column
	q := `SELECT m.name, p.name, p.type FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table'`
	if db.Dialect() == store.Postgres {
		q = `SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema()`
	}
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.table, &c.name, &c.kind); err != nil {
			t.Fatal(err)
		}
		c.kind = strings.ToLower(c.kind)
		if strings.Contains(c.kind, "text") || strings.Contains(c.kind, "char") || strings.Contains(c.kind, "blob") ||
			strings.Contains(c.kind, "bytea") || strings.Contains(c.kind, "json") || c.kind == "" {
			cols = append(cols, c)
		}
	}
	rows.Close()
	var found []string
	for _, c := range cols {
		cond, like := "CAST("+c.name+" AS TEXT) LIKE ? ESCAPE '\\'", true
		if c.kind == "bytea" {
			cond, like = "position(convert_to(?, 'UTF8') IN "+c.name+") > 0", false // bytes, not text
		}
		for _, tr := range traces {
			arg := tr
			if like {
				arg = "%" + store.EscapeLike(tr) + "%"
			}
			var n int
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+c.table+" WHERE "+cond, arg).Scan(&n); err != nil {
				t.Fatalf("%s.%s: %v", c.table, c.name, err)
			}
			if n > 0 {
				found = append(found, fmt.Sprintf("%s.%s: %q", c.table, c.name, tr))
			}
		}
	}
	return found
}

// A call carrying the friend that is out (or waiting to be retried) holds the erasure
// back with 409, and nothing is erased; once the call has ended, the erasure goes
// through and takes the friend out of it.
func TestErasingWaitsForACallInFlight(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		admin := token(t, h, staff.Admin, h.Ch)
		u, id := follow(t, h, "送信中")
		var batch int64
		err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
			if err := tx.QueryRowContext(ctx, `INSERT INTO batches (channel_id, method, messages, recipients, size, state, lease_until, created_at)
				VALUES (?, 'push', '[{"type":"text","text":"送信中さん"}]', ?, 1, 'sending', ?, 0) RETURNING id`,
				h.Ch, `{"to":["`+u+`"]}`, store.Millis(h.Clk.Now().Add(time.Hour))).Scan(&batch); err != nil {
				return err
			}
			// Its delivery, as the dispatcher writes it when it forms the call.
			_, err := tx.ExecContext(ctx, `INSERT INTO deliveries (channel_id, friend_id, line_user_id, source, messages, content_hash,
				state, batch_id, due_at, created_at) VALUES (?, ?, ?, 'api', '', '', 'sending', ?, 0, 0)`, h.Ch, id, u, batch)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		path := fmt.Sprintf("/api/v1/channels/%s/friends/%d", h.Ch, id)
		if r := expect(t, call(t, h, admin, "DELETE", path, nil), http.StatusConflict); r.errCode() != "friend_busy" {
			t.Errorf("erasing during a call: %s", r.raw)
		}
		if h.Friend(u).ID != id {
			t.Fatal("the friend went although the erasure was refused")
		}
		if _, err := h.Srv.DB.ExecContext(ctx, "UPDATE batches SET state = 'sent' WHERE id = ?", batch); err != nil {
			t.Fatal(err)
		}
		expect(t, call(t, h, admin, "DELETE", path, nil), http.StatusOK)
		var recipients, messages string
		if err := h.Srv.DB.QueryRowContext(ctx, "SELECT recipients, messages FROM batches WHERE id = ?", batch).Scan(&recipients, &messages); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(recipients, u) || strings.Contains(messages, "送信中") {
			t.Errorf("the call still names them: %s %s", recipients, messages)
		}
	})
}

// On PostgreSQL, writers of deliveries that do not lock the friend's row (a broadcast
// starting or writing a chunk, a runner's batch) may be midway when the erasure begins:
// it waits for them, and then deletes what they wrote too.
func TestErasingWaitsForWritersMidway(t *testing.T) {
	h := servertest.Start(t, testutil.PostgresURL(t))
	admin := token(t, h, staff.Admin, h.Ch)
	op := token(t, h, staff.Operator, h.Ch)
	ch := "/api/v1/channels/" + h.Ch
	expect(t, call(t, h, op, "PUT", ch+"/scenarios/later", `{"definition": {"trigger": {"type": "manual"},
		"steps": [{"key": "a", "timing": {"after": "3d"}, "messages": [{"type": "text", "text": "3日後"}]}]}, "enabled": true}`), http.StatusCreated)
	r := expect(t, call(t, h, op, "POST", ch+"/broadcasts", map[string]any{"segment": map[string]any{}, "scheduled_at": "2099-01-01 10:00",
		"messages": []any{map[string]string{"type": "text", "text": "いつか"}}}), http.StatusCreated)
	broadcastID := int64(r.body["id"].(float64))

	for _, writer := range []struct {
		name string
		lock string // what the writer holds while it writes
	}{
		{"a broadcast starting", "SELECT id FROM broadcasts WHERE id = ? FOR UPDATE"},
		{"a runner's batch", "SELECT id FROM enrollments WHERE friend_id = ? FOR UPDATE"},
	} {
		t.Run(writer.name, func(t *testing.T) {
			u, id := follow(t, h, "途中")
			expect(t, call(t, h, op, "POST", ch+"/scenarios/later/start", map[string]int64{"friend_id": id}), http.StatusOK)
			arg := broadcastID
			if writer.name == "a runner's batch" {
				arg = id
			}
			locked, release, written := make(chan struct{}), make(chan struct{}), make(chan error, 1)
			go func() {
				written <- h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
					rows, err := tx.QueryContext(ctx, writer.lock, arg)
					if err != nil {
						return err
					}
					rows.Close()
					msg := []byte(`{"type":"text","text":"途中さんへ"}`)
					if _, err := h.Srv.Delivery.Enqueue(ctx, tx, delivery.Item{ChannelID: h.Ch, FriendID: id, LineUserID: u, Source: "broadcast",
						SourceID: broadcastID, Messages: []json.RawMessage{msg}, DueAt: h.Clk.Now().Add(time.Hour)}); err != nil {
						return err
					}
					close(locked)
					<-release
					return nil
				})
			}()
			<-locked
			erased := make(chan reply, 1)
			go func() { erased <- call(t, h, admin, "DELETE", fmt.Sprintf("%s/friends/%d", ch, id), nil) }()
			select {
			case r := <-erased:
				t.Fatalf("the erasure did not wait for the writer: %d %s", r.status, r.raw)
			case <-time.After(300 * time.Millisecond):
			}
			close(release)
			if err := <-written; err != nil {
				t.Fatal(err)
			}
			expect(t, <-erased, http.StatusOK)
			if found := tracesIn(t, h.Srv.DB, []string{u, "途中さんへ"}); len(found) > 0 {
				t.Errorf("left by the writer: %s", strings.Join(found, "; "))
			}
		})
	}
}
