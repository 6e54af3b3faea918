package autoreply_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/autoreply"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/ingest"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/metrics"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

const (
	userA = "U0123456789abcdef0123456789abcdef"
	userB = "Ufedcba9876543210fedcba9876543210"
)

// deliver stores raw events as the webhook handler would and processes them, failing
// the test unless every event is applied.
func (f *fixture) deliver(t *testing.T, events ...string) {
	t.Helper()
	f.deliverAny(t, events...)
	var failed int
	if err := f.db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM webhook_events WHERE state <> 'done'").Scan(&failed); err != nil || failed != 0 {
		t.Fatalf("%d events not done (%v)", failed, err)
	}
}

// deliverAny is deliver for events that may fail.
func (f *fixture) deliverAny(t *testing.T, events ...string) {
	t.Helper()
	ctx := context.Background()
	var raws []line.RawEvent
	for _, e := range events {
		hook, err := line.ParseWebhook([]byte(`{"destination":"U1","events":[` + e + `]}`))
		if err != nil {
			t.Fatalf("parse %s: %v", e, err)
		}
		raws = append(raws, hook.Events...)
	}
	com := ingest.NewCommitter(f.db, metrics.New(), slog.New(slog.DiscardHandler), nil)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { com.Run(runCtx); close(done) }()
	if _, err := com.Store(ctx, ch, raws, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	for {
		n, err := f.proc.ProcessBatch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
}

// ev is a webhook event from user (none: from a group) in mode active or standby.
func (f *fixture) ev(typ, mode, user string, extra string) string {
	f.seq++
	source := fmt.Sprintf(`{"type":"user","userId":%q}`, user)
	if user == "" {
		source = `{"type":"group","groupId":"C0123456789abcdef0123456789abcdef"}`
	}
	return fmt.Sprintf(`{"type":%q,"mode":%q,"timestamp":%d,"source":%s,"webhookEventId":"EV%06d","deliveryContext":{"isRedelivery":false}%s}`,
		typ, mode, f.clk.Now().UnixMilli(), source, f.seq, extra)
}

func (f *fixture) follow(user string) string {
	return f.ev("follow", "active", user, `,"replyToken":"rf"`)
}

func (f *fixture) text(mode, user, replyToken, text string) string {
	f.seq++ // a distinct message ID
	b, _ := json.Marshal(text)
	return f.ev("message", mode, user, fmt.Sprintf(`,"replyToken":%q,"message":{"type":"text","id":"m%d","quoteToken":"q","text":%s}`,
		replyToken, f.seq, b))
}

type outboxRow struct {
	friendID              int64
	lineUserID, source    string
	sourceID              int64
	sourceRef, replyToken string
	replyExpires          int64
	messages              []map[string]any
}

func (f *fixture) outbox(t *testing.T) []outboxRow {
	t.Helper()
	rows, err := f.db.QueryContext(context.Background(), `SELECT friend_id, line_user_id, source, source_id, source_ref, reply_token,
		COALESCE(reply_expires_at, 0), messages FROM deliveries ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		var msgs string
		if err := rows.Scan(&r.friendID, &r.lineUserID, &r.source, &r.sourceID, &r.sourceRef, &r.replyToken, &r.replyExpires, &msgs); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(msgs), &r.messages); err != nil {
			t.Fatalf("messages %s: %v", msgs, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTextMessageGetsOneReply(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		greet := rule("greet", autoreply.MatchContains, "こんにちは")
		greet.Template = textTemplate("こんにちは {{display_name|お客様}}さん")
		saved := f.save(t, greet)
		other := rule("other", autoreply.MatchContains, "こんにちは") // same keyword, lower priority: never used
		other.Priority = -1
		f.save(t, other)

		f.deliver(t, f.follow(userA))
		sentAt := f.clk.Now()
		msg := f.text("active", userA, "reply-token-1", "ｺﾝﾆﾁﾊ? いえ、こんにちは！")
		f.deliver(t, msg)
		f.deliver(t, msg) // LINE redelivers: stored once, answered once

		out := f.outbox(t)
		if len(out) != 1 {
			t.Fatalf("%d deliveries, want 1: %+v", len(out), out)
		}
		d := out[0]
		fr, err := f.friends.ByLineUserID(ctx, ch, userA)
		if err != nil {
			t.Fatal(err)
		}
		if d.source != "autoreply" || d.sourceID != saved.ID || d.sourceRef != "greet" || d.friendID != fr.ID || d.lineUserID != userA {
			t.Errorf("delivery %+v", d)
		}
		if d.replyToken != "reply-token-1" || d.replyExpires != store.Millis(sentAt.Add(delivery.ReplyTokenLifetime)) {
			t.Errorf("reply token %q expiring at %d", d.replyToken, d.replyExpires)
		}
		if len(d.messages) != 1 || d.messages[0]["type"] != "text" || d.messages[0]["text"] != "こんにちは お客様さん" {
			t.Errorf("messages %+v", d.messages)
		}
		got, err := f.svc.Get(ctx, ch, "greet")
		if err != nil || got.Hits != 1 || !got.LastHitAt.Equal(sentAt) {
			t.Errorf("hits %d, last hit %s (%v)", got.Hits, got.LastHitAt, err)
		}
		if logs := f.logs.String(); strings.Contains(logs, userA) || strings.Contains(logs, "こんにちは") {
			t.Errorf("personal data in the logs:\n%s", logs)
		}
	})
}

func TestNoReply(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		night := rule("night", autoreply.MatchExact, "night")
		night.Window = &autoreply.Window{From: "21:00", To: "09:00"} // closed at 10:00, the fixture's time
		for _, r := range []autoreply.Rule{rule("hi", autoreply.MatchExact, "hi"), night} {
			f.save(t, r)
		}
		f.deliver(t, f.follow(userA))
		cases := []struct {
			name  string
			event func() []string
		}{
			{"standby", func() []string { return []string{f.text("standby", userA, "r", "hi")} }},
			{"blocked friend", func() []string {
				return []string{f.follow(userB), f.ev("unfollow", "active", userB, ""), f.text("active", userB, "r", "hi")}
			}},
			{"friend never seen following", func() []string {
				return []string{f.text("active", "U00000000000000000000000000000000", "r", "hi")}
			}},
			{"group message", func() []string { return []string{f.text("active", "", "r", "hi")} }},
			{"sticker", func() []string {
				return []string{f.ev("message", "active", userA, `,"replyToken":"r","message":{"type":"sticker","id":"s1","quoteToken":"q","packageId":"446","stickerId":"1988","stickerResourceType":"STATIC"}`)}
			}},
			{"no rule matches", func() []string { return []string{f.text("active", userA, "r", "hello")} }},
			{"window closed", func() []string { return []string{f.text("active", userA, "r", "night")} }},
		}
		for _, c := range cases {
			f.deliver(t, c.event()...)
			if out := f.outbox(t); len(out) != 0 {
				t.Fatalf("%s: %d deliveries: %+v", c.name, len(out), out)
			}
		}
	})
}

func TestHostileTextCannotChangeTheMessage(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		greet := rule("greet", autoreply.MatchContains, "hello")
		greet.Template = textTemplate("こんにちは {{display_name|お客様}}さん")
		f.save(t, greet)
		f.deliver(t, f.follow(userA))
		hostile := `{{display_name}}"},{"type":"x`
		name := `"},{"type":"x {{field.secret}}` + "\x1b"
		if _, err := db.ExecContext(ctx, "UPDATE friends SET display_name = ? WHERE line_user_id = ?", name, userA); err != nil {
			t.Fatal(err)
		}
		f.deliver(t, f.text("active", userA, "r", "hello "+hostile))
		out := f.outbox(t)
		if len(out) != 1 || len(out[0].messages) != 1 {
			t.Fatalf("deliveries %+v", out)
		}
		m := out[0].messages[0]
		want := `こんにちは "},{"type":"x {{field.secret}}さん` // control characters dropped, no second expansion
		if len(m) != 2 || m["type"] != "text" || m["text"] != want {
			t.Errorf("message %#v, want one text message %q", m, want)
		}
		if logs := f.logs.String(); strings.Contains(logs, "hello") || strings.Contains(logs, `"},{`) {
			t.Errorf("message text or name in the logs:\n%s", logs)
		}
	})
}

func TestMatchRespectsTheEventTime(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		open := rule("open", autoreply.MatchExact, "open?")
		open.Window = &autoreply.Window{From: "09:00", To: "10:30"}
		f.save(t, open)
		f.deliver(t, f.follow(userA))
		msg := f.text("active", userA, "r", "open?") // written at 10:00, inside the window
		f.clk.Advance(time.Hour)                     // applied at 11:00, after it
		f.deliver(t, msg)
		if out := f.outbox(t); len(out) != 1 {
			t.Fatalf("%d deliveries, want the reply judged at the time the friend wrote", len(out))
		}
	})
}
