package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/emulator"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/testutil"
)

func TestWebhooksBecomeFriendsAndConversations(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		ctx := context.Background()
		hostile := `<script>alert("x")</script>`
		u := h.User(hostile)
		h.OK(h.Emu.Follow(ctx, h.Ch, u))
		h.Eventually("the profile", func() bool { return h.Friend(u).DisplayName != "" })
		f := h.Friend(u)
		if f.Status != friend.Following || f.DisplayName != hostile || f.Language != "ja" || f.FollowCount != 1 || f.FollowedAt.IsZero() {
			t.Errorf("friend after follow: %+v", f)
		}

		h.OK(h.Emu.SendText(ctx, h.Ch, u, "予約できますか?"))
		h.OK(h.Emu.SendSticker(ctx, h.Ch, u, "446", "1988"))
		img := h.OK(h.Emu.SendImage(ctx, h.Ch, u, []byte("png"), "image/png"))
		h.OK(h.Emu.Postback(ctx, h.Ch, u, "action=reserve&menu=cut"))
		h.Eventually("four messages", func() bool { return len(h.Conversation(u)) == 4 })
		msgs := h.Conversation(u)
		if msgs[0].Kind != "text" || msgs[0].Text != "予約できますか?" ||
			msgs[1].Kind != "sticker" || msgs[1].StickerID != "1988" ||
			msgs[2].Kind != "image" || msgs[2].LineMessageID != img.MessageID ||
			msgs[3].Kind != "postback" || msgs[3].PostbackData != "action=reserve&menu=cut" {
			t.Errorf("conversation: %+v", msgs)
		}

		// LINE redelivers an event it believes failed: the copy must change nothing.
		once := h.OK(h.Emu.SendText(ctx, h.Ch, u, "once"))
		h.Eventually("the fifth message", func() bool { return len(h.Conversation(u)) == 5 })
		if red, err := h.Emu.Redeliver(ctx, h.Ch, once.EventID); err != nil || red.Status != 200 {
			t.Fatalf("redeliver: %+v %v", red, err)
		}
		h.OK(h.Emu.SendText(ctx, h.Ch, u, "after"))
		h.Eventually("the message after the redelivery", func() bool { return len(h.Conversation(u)) == 6 })
		if n := len(h.Conversation(u)); n != 6 {
			t.Errorf("redelivered event was processed again: %d messages", n)
		}

		h.OK(h.Emu.Block(ctx, h.Ch, u))
		h.Eventually("the block", func() bool { return h.Friend(u).Status == friend.Blocked })
		if f := h.Friend(u); f.BlockedAt.IsZero() {
			t.Errorf("blocked friend without a block time: %+v", f)
		}
		h.OK(h.Emu.Follow(ctx, h.Ch, u))
		h.Eventually("the re-follow", func() bool { return h.Friend(u).Status == friend.Following })
		if f := h.Friend(u); !f.Unblocked || f.FollowCount != 2 {
			t.Errorf("after re-follow: %+v", f)
		}

		if status, err := h.Emu.Verify(ctx, h.Ch); err != nil || status != 200 {
			t.Errorf("verify webhook: %d %v", status, err)
		}
		if logs := h.Logs.String(); strings.Contains(logs, hostile) || strings.Contains(logs, "予約") || strings.Contains(logs, u) {
			t.Errorf("personal data in the server's log:\n%s", logs)
		}
	})
}

func TestForgedWebhookIsRefusedAndStoresNothing(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		u := h.User("a")
		body := `{"destination":"U0","events":[{"type":"follow","mode":"active","timestamp":1,"source":{"type":"user","userId":"` + u + `"},"webhookEventId":"01FORGED","deliveryContext":{"isRedelivery":false},"replyToken":"x","follow":{"isUnblocked":false}}]}`
		for _, sig := range []string{"", emulator.Sign("wrong-secret", []byte(body))} {
			req, _ := http.NewRequest("POST", h.Base+"/webhook/"+h.Ch, strings.NewReader(body))
			if sig != "" {
				req.Header.Set("x-line-signature", sig)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusUnauthorized {
				t.Errorf("signature %q: %d, want 401", sig, res.StatusCode)
			}
		}
		var n int
		if err := h.Srv.DB.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM webhook_events").Scan(&n); err != nil || n != 0 {
			t.Errorf("forged events stored: %d %v", n, err)
		}
	})
}

func TestProfileFailureStillCreatesTheFriend(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		ctx := context.Background()
		h.Emu.SetFaults(emulator.Faults{ErrorRate: 1, Endpoints: []string{"profile"}})
		u := h.User("鈴木 花子")
		h.OK(h.Emu.Follow(ctx, h.Ch, u))
		h.Eventually("the friend", func() bool { return h.Friend(u).Status == friend.Following })
		// Wait for the failure to be recorded (its retry scheduled), not just answered:
		// moving the clock earlier would schedule the retry after the new time.
		h.Eventually("a failed profile call recorded", func() bool {
			var attempts int
			h.Srv.DB.QueryRowContext(ctx, "SELECT profile_attempts FROM friends WHERE line_user_id = ?", u).Scan(&attempts)
			return attempts >= 1 && h.Emu.Stats().Requests["profile"]["500"] >= 1
		})
		if f := h.Friend(u); f.DisplayName != "" {
			t.Fatalf("profile despite the failure: %+v", f)
		}
		h.Emu.SetFaults(emulator.Faults{})
		// The retry is due 30 s later (fake time).
		h.Clk.Advance(31 * time.Second)
		h.Eventually("the profile after the retry", func() bool { return h.Friend(u).DisplayName == "鈴木 花子" })
	})
}

func TestOperationsEndpoints(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/ops.db")
	u := h.User("a")
	h.OK(h.Emu.Follow(context.Background(), h.Ch, u))
	h.Eventually("processing", func() bool { return h.Friend(u).DisplayName != "" })
	get := func(path string) (int, string) {
		res, err := http.Get(h.Base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 {
		t.Errorf("healthz: %d %s", code, body)
	}
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, `"database":"ok"`) {
		t.Errorf("readyz: %d %s", code, body)
	}
	code, body := get("/metrics")
	for _, want := range []string{
		`linestep_webhooks_received_total`,
		`linestep_events_processed_total{result="done",type="follow"} 1`,
		`linestep_line_api_requests_total{endpoint="profile",status="200"} 1`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, u) {
		t.Errorf("a user ID in the metrics")
	}
}
