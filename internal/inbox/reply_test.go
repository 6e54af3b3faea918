package inbox_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/autoreply"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/inbox"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

func member(t *testing.T, h *servertest.Harness, login string) staff.Member {
	t.Helper()
	m, _, err := h.Srv.Staff.EnsureOwner(ctx, login, login)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func reply(t *testing.T, h *servertest.Harness, friendID, staffID int64, text string) inbox.Sent {
	t.Helper()
	sent, err := h.Srv.Inbox.Reply(ctx, h.Ch, friendID, staffID, text)
	if err != nil {
		t.Fatal(err)
	}
	settle(t, h)
	return sent
}

// record returns the delivery a reply queued, as sent.
func record(t *testing.T, h *servertest.Harness, friendID int64, sent inbox.Sent) delivery.Record {
	t.Helper()
	rs, err := h.Srv.Delivery.ForFriend(ctx, friendID, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.ID == sent.DeliveryID {
			if r.Source != inbox.Source || r.SourceID != sent.MessageID || r.State != delivery.Sent {
				t.Fatalf("delivery %+v", r)
			}
			return r
		}
	}
	t.Fatalf("no delivery %d", sent.DeliveryID)
	return delivery.Record{}
}

func TestReplyWithinTheWindowUsesTheReplyToken(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		aoi := member(t, h, "aoi")
		u, id := follow(t, h, "Chika")
		say(t, h, u, id, "今日は営業していますか", 1)

		// Not a template, and nothing in it changes the message's structure.
		text := "はい、営業しています {{display_name}} さん\"}],\"to\":\"U00\",\"x\":[{\""
		h.Clk.Advance(10 * time.Second)
		sent := reply(t, h, id, aoi.ID, text)
		if !sent.ByReply {
			t.Fatal("a reply within the window was not queued with the reply token")
		}
		expectReceived(t, h, u, "reply: "+text)
		rs, err := h.Emu.ReceivedBy(h.Ch, u)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(rs[0].Messages[0], &m); err != nil || len(m) != 2 || m["type"] != "text" {
			t.Fatalf("message as LINE got it: %s (%v)", rs[0].Messages[0], err)
		}
		if r := record(t, h, id, sent); r.Method != delivery.MethodReply || r.SourceRef != "staff:"+strconv.FormatInt(aoi.ID, 10) {
			t.Fatalf("delivery %+v, want sent by reply", r)
		}

		// The log is in the order of the messages' times, and the emulator's clock is
		// not the server's: find the reply by its direction.
		msgs := logged(t, h, id, 2)
		out := msgs[slices.IndexFunc(msgs, func(m inbox.Message) bool { return m.Direction == friend.Outbound })]
		if out.Direction != friend.Outbound || out.Text != text || out.StaffID != aoi.ID || out.ID != sent.MessageID ||
			out.DeliveryID != sent.DeliveryID || out.DeliveryState != delivery.Sent || out.DeliveryMethod != delivery.MethodReply {
			t.Fatalf("logged reply: %+v", out)
		}
		c := get(t, h, id)
		if c.Status != inbox.Pending || c.PreviewDirection != friend.Outbound || c.PreviewText != text ||
			!c.LastActivityAt.Equal(h.Clk.Now()) || c.Unread != 1 {
			t.Fatalf("conversation after the reply: %+v", c)
		}

		// The token is spent: a second answer goes by push.
		sent = reply(t, h, id, aoi.ID, "追伸です")
		if sent.ByReply {
			t.Fatal("a spent reply token was queued again")
		}
		expectReceived(t, h, u, "reply: "+text, "push: 追伸です")
		if r := record(t, h, id, sent); r.Method != delivery.MethodPush {
			t.Fatalf("delivery %+v, want sent by push", r)
		}
	})
}

func TestReplyAfterTheWindowGoesByPush(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		aoi := member(t, h, "aoi")
		u, id := follow(t, h, "Daichi")
		say(t, h, u, id, "駐車場はありますか", 1)
		h.Clk.Advance(2 * time.Minute)
		sent := reply(t, h, id, aoi.ID, "はい、3台分あります")
		if sent.ByReply {
			t.Fatal("an expired reply token was queued")
		}
		expectReceived(t, h, u, "push: はい、3台分あります")
		if r := record(t, h, id, sent); r.Method != delivery.MethodPush {
			t.Fatalf("delivery %+v, want sent by push", r)
		}

		// Too close to its expiry to be worth trying: push.
		say(t, h, u, id, "ありがとうございます", 3)
		h.Clk.Advance(57 * time.Second)
		if sent := reply(t, h, id, aoi.ID, "どういたしまして"); sent.ByReply {
			t.Fatal("a token about to expire was queued")
		}

		// A friend who never wrote can be written to: a conversation, by push, pending.
		u2, id2 := follow(t, h, "Emi")
		sent = reply(t, h, id2, 0, "ご来店ありがとうございました")
		expectReceived(t, h, u2, "push: ご来店ありがとうございました")
		if c := get(t, h, id2); c.Status != inbox.Pending || c.Unread != 0 || !c.LastInboundAt.IsZero() {
			t.Fatalf("conversation started by staff: %+v", c)
		}
		if msgs := logged(t, h, id2, 1); msgs[0].StaffID != 0 {
			t.Fatalf("reply without a staff member: %+v", msgs[0])
		}
		if r := record(t, h, id2, sent); r.SourceRef != "" {
			t.Fatalf("delivery %+v", r)
		}
	})
}

func TestReplyAfterAnAutoReplyGoesByPush(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		aoi := member(t, h, "aoi")
		_, err := h.Srv.Replies.Save(ctx, h.Srv.DB, autoreply.Rule{ChannelID: h.Ch, Key: "hours", Name: "営業時間",
			Match: autoreply.MatchExact, Keywords: []string{"営業時間"}, Enabled: true,
			Template: message.Template{Messages: []message.Message{{Type: "text", Text: "10時から19時までです"}}}})
		if err != nil {
			t.Fatal(err)
		}
		u, id := follow(t, h, "Fumi")
		say(t, h, u, id, "営業時間", 1)
		settle(t, h)
		expectReceived(t, h, u, "reply: 10時から19時までです")

		sent := reply(t, h, id, aoi.ID, "日曜はお休みです")
		if sent.ByReply {
			t.Fatal("the auto-reply's token was queued again")
		}
		expectReceived(t, h, u, "reply: 10時から19時までです", "push: 日曜はお休みです")
		if r := record(t, h, id, sent); r.Method != delivery.MethodPush {
			t.Fatalf("delivery %+v, want sent by push", r)
		}

		// Two messages: the auto-reply takes the newer one's token, the staff reply the
		// older one's, while it is fresh.
		h.Clk.Advance(2 * time.Minute)
		say(t, h, u, id, "こんにちは", 3)
		h.Clk.Advance(time.Second)
		say(t, h, u, id, "営業時間", 4)
		settle(t, h)
		sent = reply(t, h, id, aoi.ID, "お待ちしております")
		if !sent.ByReply {
			t.Fatal("the older message's unused token was not used")
		}
		expectReceived(t, h, u, "reply: 10時から19時までです", "push: 日曜はお休みです",
			"reply: 10時から19時までです", "reply: お待ちしております")
	})
}

func TestRefusedReplies(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		aoi := member(t, h, "aoi")
		u, id := follow(t, h, "Gen")
		say(t, h, u, id, "すみません", 1)

		nothingQueued := func(what string) {
			t.Helper()
			rs, err := h.Srv.Delivery.ForFriend(ctx, id, 10)
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := h.Srv.Inbox.Messages(ctx, h.Ch, id, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != 0 || len(msgs) != 1 {
				t.Fatalf("%s: %d deliveries, %d messages logged", what, len(rs), len(msgs))
			}
			if c := get(t, h, id); c.Status != inbox.Open {
				t.Fatalf("%s: conversation %+v", what, c)
			}
		}
		for name, text := range map[string]string{
			"empty":                    "",
			"blank":                    " \n\t　\r\n",
			"too long":                 strings.Repeat("あ", inbox.MaxTextLen+1),
			"too long, as LINE counts": strings.Repeat("😀", inbox.MaxTextLen/2) + "a",
			"not UTF-8":                "ok\xff",
			"control character":        "ok\x00",
			"escape sequence":          "\x1b[31mred",
		} {
			_, err := h.Srv.Inbox.Reply(ctx, h.Ch, id, aoi.ID, text)
			problems(t, err, inbox.ErrInvalid)
			nothingQueued(name)
		}
		if _, err := h.Srv.Inbox.Reply(ctx, h.Ch, id+1000, aoi.ID, "こんにちは"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("reply to an unknown friend: %v", err)
		}
		if _, err := h.Srv.Inbox.Reply(ctx, "other-channel", id, aoi.ID, "こんにちは"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("reply through another channel: %v", err)
		}

		h.OK(h.Emu.Block(ctx, h.Ch, u))
		h.Eventually("the block", func() bool { return h.Friend(u).Status == friend.Blocked })
		_, err := h.Srv.Inbox.Reply(ctx, h.Ch, id, aoi.ID, "こんにちは")
		problems(t, err, inbox.ErrBlocked)
		nothingQueued("blocked")
		expectReceived(t, h, u)
	})
}

func TestCheckText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"a\r\nb\rc\n", "a\nb\nc\n"},
		{"  indented\ttab", "  indented\ttab"},
		{"{{display_name}}", "{{display_name}}"},
		{strings.Repeat("あ", inbox.MaxTextLen), strings.Repeat("あ", inbox.MaxTextLen)},
		{strings.Repeat("😀", inbox.MaxTextLen/2), strings.Repeat("😀", inbox.MaxTextLen/2)},
	} {
		got, err := inbox.CheckText(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CheckText(%.20q) = %.20q, %v; want %.20q", tc.in, got, err, tc.want)
		}
	}
}
