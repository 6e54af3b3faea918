package inbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/inbox"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

var ctx = context.Background()

// follow adds a user who follows the account and returns their LINE ID and friend ID.
func follow(t *testing.T, h *servertest.Harness, name string) (string, int64) {
	t.Helper()
	u := h.User(name)
	h.OK(h.Emu.Follow(ctx, h.Ch, u))
	h.Eventually("the friend", func() bool { return h.Friend(u).ID != 0 })
	return u, h.Friend(u).ID
}

// get returns a friend's conversation, failing the test if there is none.
func get(t *testing.T, h *servertest.Harness, friendID int64) inbox.Conversation {
	t.Helper()
	c, err := h.Srv.Inbox.Get(ctx, h.Ch, friendID)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// logged waits until the friend's conversation log has n entries.
func logged(t *testing.T, h *servertest.Harness, friendID int64, n int) []inbox.Message {
	t.Helper()
	var msgs []inbox.Message
	h.Eventually("the conversation log", func() bool {
		var err error
		if msgs, err = h.Srv.Inbox.Messages(ctx, h.Ch, friendID, 0, 0); err != nil {
			t.Fatal(err)
		}
		return len(msgs) >= n
	})
	if len(msgs) != n {
		t.Fatalf("%d messages logged, want %d", len(msgs), n)
	}
	return msgs
}

// say sends a text from the user and waits until it is applied (n entries logged).
func say(t *testing.T, h *servertest.Harness, u string, friendID int64, text string, n int) {
	t.Helper()
	h.OK(h.Emu.SendText(ctx, h.Ch, u, text))
	logged(t, h, friendID, n)
}

// settle waits until the outbox has handed everything to LINE.
func settle(t *testing.T, h *servertest.Harness) {
	t.Helper()
	h.Eventually("the outbox to drain", func() bool {
		h.Srv.Delivery.Notify()
		c, err := h.Srv.Delivery.Counts(ctx, h.Ch)
		if err != nil {
			t.Fatal(err)
		}
		return c[delivery.Pending] == 0 && c[delivery.Sending] == 0
	})
}

// received lists what a user got from the account, as "via: text".
func received(t *testing.T, h *servertest.Harness, u string) []string {
	t.Helper()
	rs, err := h.Emu.ReceivedBy(h.Ch, u)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		for _, m := range r.Messages {
			var msg struct{ Type, Text string }
			if err := json.Unmarshal(m, &msg); err != nil {
				t.Fatal(err)
			}
			out = append(out, r.Via+": "+msg.Text)
		}
	}
	return out
}

func expectReceived(t *testing.T, h *servertest.Harness, u string, want ...string) {
	t.Helper()
	if got := received(t, h, u); !slices.Equal(got, want) {
		t.Fatalf("received:\n got  %q\n want %q", got, want)
	}
}

// problems fails the test unless err wraps kind and carries problems in both languages.
func problems(t *testing.T, err, kind error) message.Problems {
	t.Helper()
	var ps message.Problems
	if !errors.Is(err, kind) || !errors.As(err, &ps) || len(ps) == 0 {
		t.Fatalf("error %v: want %v with problems", err, kind)
	}
	for _, p := range ps {
		if p.JA == "" || p.EN == "" {
			t.Fatalf("problem %+v: want Japanese and English", p)
		}
	}
	return ps
}

func friendIDs(cs []inbox.Conversation) []int64 {
	var out []int64
	for _, c := range cs {
		out = append(out, c.FriendID)
	}
	return out
}

func TestFriendMessagesOpenTheConversation(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		u, id := follow(t, h, "Aoi")
		if _, err := h.Srv.Inbox.Get(ctx, h.Ch, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("conversation before any message: %v, want not found", err)
		}

		say(t, h, u, id, "予約できますか？", 1)
		c := get(t, h, id)
		if c.Status != inbox.Open || c.Unread != 1 || c.PreviewDirection != friend.Inbound || c.PreviewKind != "text" ||
			c.PreviewText != "予約できますか？" || c.AssigneeID != 0 || c.LastInboundAt.IsZero() || !c.LastActivityAt.Equal(h.Clk.Now()) {
			t.Fatalf("after the first message: %+v", c)
		}
		h.Eventually("the display name, from the profile", func() bool { return get(t, h, id).DisplayName == "Aoi" })

		h.Clk.Advance(time.Second)
		h.OK(h.Emu.SendSticker(ctx, h.Ch, u, "446", "1988"))
		logged(t, h, id, 2)
		if c := get(t, h, id); c.Unread != 2 || c.PreviewKind != "sticker" || c.PreviewText != "" {
			t.Fatalf("after a sticker: %+v", c)
		}

		// A tap on a rich menu is logged, but asks nothing of the staff.
		h.Clk.Advance(time.Second)
		h.OK(h.Emu.Postback(ctx, h.Ch, u, "menu=coupon"))
		logged(t, h, id, 3)
		if c := get(t, h, id); c.Unread != 2 || c.PreviewKind != "sticker" {
			t.Fatalf("after a postback: %+v", c)
		}

		// Resolved, then the friend writes again: open once more.
		if err := h.Srv.Inbox.SetStatus(ctx, h.Ch, id, inbox.Resolved); err != nil {
			t.Fatal(err)
		}
		if err := h.Srv.Inbox.MarkRead(ctx, h.Ch, id, 0); err != nil {
			t.Fatal(err)
		}
		if c := get(t, h, id); c.Status != inbox.Resolved || c.Unread != 0 || c.ReadAt.IsZero() {
			t.Fatalf("resolved and read: %+v", c)
		}
		h.Clk.Advance(time.Minute)
		say(t, h, u, id, "もう一つ質問です", 4)
		c = get(t, h, id)
		if c.Status != inbox.Open || c.Unread != 1 || c.PreviewText != "もう一つ質問です" || !c.StatusAt.Equal(h.Clk.Now()) {
			t.Fatalf("reopened: %+v", c)
		}
		h.Clk.Advance(time.Second)
		say(t, h, u, id, "よろしくお願いします", 5)

		// Read up to the fourth message: the fifth stays unread.
		msgs := logged(t, h, id, 5)
		if err := h.Srv.Inbox.MarkRead(ctx, h.Ch, id, msgs[3].ID); err != nil {
			t.Fatal(err)
		}
		if c := get(t, h, id); c.Unread != 1 {
			t.Fatalf("read through the fourth message: %d unread, want 1", c.Unread)
		}

		if err := h.Srv.Inbox.SetStatus(ctx, h.Ch, id, "closed"); !errors.Is(err, inbox.ErrInvalid) {
			t.Fatalf("unknown status: %v", err)
		}
		if err := h.Srv.Inbox.SetStatus(ctx, h.Ch, id+100, inbox.Resolved); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("status of an unknown conversation: %v", err)
		}
		if err := h.Srv.Inbox.SetStatus(ctx, "other-channel", id, inbox.Resolved); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("status through another channel: %v", err)
		}
	})
}

func TestRedeliveredEventCountedOnce(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		u, id := follow(t, h, "Ben")
		res := h.OK(h.Emu.SendText(ctx, h.Ch, u, "届いていますか"))
		logged(t, h, id, 1)

		processed := func() int {
			var n int
			if err := h.Srv.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM webhook_events WHERE event_id = ? AND state = 'done'",
				res.EventID).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		// LINE redelivers while the event log remembers it: stored once, applied once.
		h.OK(h.Emu.Redeliver(ctx, h.Ch, res.EventID))
		// And after the event log forgot it (past its retention): stored and applied
		// again, and still counted once.
		if _, err := h.Srv.DB.ExecContext(ctx, "DELETE FROM webhook_events WHERE event_id = ?", res.EventID); err != nil {
			t.Fatal(err)
		}
		h.Clk.Advance(time.Minute)
		h.OK(h.Emu.Redeliver(ctx, h.Ch, res.EventID))
		h.Eventually("the redelivered event to be applied", func() bool { return processed() == 1 })

		logged(t, h, id, 1)
		c := get(t, h, id)
		if c.Unread != 1 || c.Status != inbox.Open {
			t.Fatalf("after redeliveries: %+v", c)
		}
		if !c.LastActivityAt.Equal(h.Clk.Now().Add(-time.Minute)) {
			t.Fatalf("last activity %v moved by the redelivery", c.LastActivityAt)
		}
	})
}

func TestAssignmentAndFilters(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		aoi, _, err := h.Srv.Staff.EnsureOwner(ctx, "aoi", "Aoi")
		if err != nil {
			t.Fatal(err)
		}
		ben, _, err := h.Srv.Staff.EnsureOwner(ctx, "ben", "Ben")
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, name := range []string{"Chika", "Daichi", "Emi"} {
			u, id := follow(t, h, name)
			h.Clk.Advance(time.Second)
			say(t, h, u, id, "質問 "+name, 1)
			ids = append(ids, id)
		}
		chika, daichi, emi := ids[0], ids[1], ids[2]

		if err := h.Srv.Inbox.Assign(ctx, h.Ch, chika, aoi.ID); err != nil {
			t.Fatal(err)
		}
		if err := h.Srv.Inbox.Assign(ctx, h.Ch, daichi, ben.ID); err != nil {
			t.Fatal(err)
		}
		if c := get(t, h, chika); c.AssigneeID != aoi.ID {
			t.Fatalf("assignee %d, want %d", c.AssigneeID, aoi.ID)
		}

		list := func(f inbox.Filter) []int64 {
			t.Helper()
			cs, err := h.Srv.Inbox.List(ctx, h.Ch, f)
			if err != nil {
				t.Fatal(err)
			}
			return friendIDs(cs)
		}
		expect := func(what string, got []int64, want ...int64) {
			t.Helper()
			if !slices.Equal(got, want) {
				t.Fatalf("%s: %v, want %v", what, got, want)
			}
		}
		expect("everyone's, newest first", list(inbox.Filter{}), emi, daichi, chika)
		expect("mine (Aoi)", list(inbox.Filter{AssigneeID: aoi.ID}), chika)
		expect("unassigned", list(inbox.Filter{Unassigned: true}), emi)
		expect("resolved", list(inbox.Filter{Status: inbox.Resolved}))

		// Paging by cursor.
		var paged []int64
		f := inbox.Filter{Limit: 1}
		for {
			cs, err := h.Srv.Inbox.List(ctx, h.Ch, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) == 0 {
				break
			}
			paged = append(paged, friendIDs(cs)...)
			f.Before = cs[len(cs)-1].Cursor()
		}
		expect("paged", paged, emi, daichi, chika)
		if _, err := h.Srv.Inbox.List(ctx, h.Ch, inbox.Filter{Before: "x"}); !errors.Is(err, inbox.ErrBadCursor) {
			t.Fatalf("bad cursor: %v", err)
		}
		if _, err := h.Srv.Inbox.List(ctx, h.Ch, inbox.Filter{Unassigned: true, AssigneeID: aoi.ID}); !errors.Is(err, inbox.ErrInvalid) {
			t.Fatalf("unassigned and an assignee: %v", err)
		}

		// Aoi answers Chika: pending, and the newest activity.
		h.Clk.Advance(time.Second)
		if _, err := h.Srv.Inbox.Reply(ctx, h.Ch, chika, aoi.ID, "お調べします"); err != nil {
			t.Fatal(err)
		}
		expect("everyone's after the reply", list(inbox.Filter{}), chika, emi, daichi)
		expect("open", list(inbox.Filter{Status: inbox.Open}), emi, daichi)
		expect("Aoi's pending", list(inbox.Filter{AssigneeID: aoi.ID, Status: inbox.Pending}), chika)

		counts := func(f inbox.Filter) inbox.Counts {
			t.Helper()
			c, err := h.Srv.Inbox.Counts(ctx, h.Ch, f)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		if c := counts(inbox.Filter{}); c != (inbox.Counts{Open: 2, Pending: 1, Unread: 3}) {
			t.Fatalf("counts: %+v", c)
		}
		if c := counts(inbox.Filter{AssigneeID: ben.ID}); c != (inbox.Counts{Open: 1, Unread: 1}) {
			t.Fatalf("Ben's counts: %+v", c)
		}
		if c := counts(inbox.Filter{Unassigned: true}); c != (inbox.Counts{Open: 1, Unread: 1}) {
			t.Fatalf("unassigned counts: %+v", c)
		}

		// Unassigning; assignees that are not staff.
		if err := h.Srv.Inbox.Assign(ctx, h.Ch, daichi, 0); err != nil {
			t.Fatal(err)
		}
		expect("unassigned after unassigning", list(inbox.Filter{Unassigned: true}), emi, daichi)
		problems(t, h.Srv.Inbox.Assign(ctx, h.Ch, emi, ben.ID+1000), inbox.ErrInvalid)
		if _, err := h.Srv.DB.ExecContext(ctx, "UPDATE staff SET disabled_at = 1 WHERE id = ?", ben.ID); err != nil {
			t.Fatal(err)
		}
		problems(t, h.Srv.Inbox.Assign(ctx, h.Ch, emi, ben.ID), inbox.ErrInvalid)
		if err := h.Srv.Inbox.Assign(ctx, h.Ch, emi+1000, aoi.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("assigning an unknown conversation: %v", err)
		}
		if c := get(t, h, emi); c.AssigneeID != 0 {
			t.Fatalf("refused assignment changed the assignee: %+v", c)
		}
	})
}
