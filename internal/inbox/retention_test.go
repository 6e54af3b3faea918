package inbox_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// A channel's conversations are deleted once its conversation retention has passed, and
// the inbox forgets the preview of a conversation whose newest message went; younger
// messages stay. The audit log has the count, never a text.
func TestConversationsExpireAfterTheChannelsRetention(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		ua, a := follow(t, h, "A")
		ub, b := follow(t, h, "B")
		say(t, h, ua, a, "腰がまだ痛みます", 1)
		say(t, h, ub, b, "予約を変えたいです", 1)
		// The emulator stamps events on the real clock, the server on its fake one: date
		// the messages by the server's.
		back := func(friendID int64) {
			t.Helper()
			if _, err := h.Srv.DB.ExecContext(ctx, "UPDATE messages SET occurred_at = ? WHERE friend_id = ?",
				store.Millis(h.Clk.Now()), friendID); err != nil {
				t.Fatal(err)
			}
		}
		back(a)
		back(b)
		st, err := h.Srv.Channels.Settings(ctx, h.Ch)
		if err != nil {
			t.Fatal(err)
		}
		st.ConversationRetentionDays = 365
		if err := h.Srv.Channels.SaveSettings(ctx, h.Srv.DB, h.Ch, st); err != nil {
			t.Fatal(err)
		}

		h.Clk.Advance(400 * 24 * time.Hour)
		// Not say: the server's own job, woken as the clock moved, may already have
		// deleted B's first message.
		h.OK(h.Emu.SendText(ctx, h.Ch, ub, "来週でお願いします"))
		h.Eventually("B's new message", func() bool {
			msgs, err := h.Srv.Inbox.Messages(ctx, h.Ch, b, 0, 0)
			return err == nil && len(msgs) > 0 && msgs[len(msgs)-1].Text == "来週でお願いします"
		})
		if _, err := h.Srv.DB.ExecContext(ctx, "UPDATE messages SET occurred_at = ? WHERE friend_id = ? AND text = ?",
			store.Millis(h.Clk.Now()), b, "来週でお願いします"); err != nil {
			t.Fatal(err)
		}
		// Whoever deletes, this call or the server's job, the outcome is the same.
		if _, err := h.Srv.Friends.ExpireConversations(ctx); err != nil {
			t.Fatal(err)
		}
		if msgs := logged(t, h, a, 0); len(msgs) != 0 {
			t.Errorf("A's old message is still there: %+v", msgs)
		}
		if msgs := logged(t, h, b, 1); msgs[0].Text != "来週でお願いします" {
			t.Errorf("B's log: %+v", msgs)
		}
		if c := get(t, h, a); c.PreviewText != "" || c.PreviewKind != "" {
			t.Errorf("A's conversation still shows %q", c.PreviewText)
		}
		if c := get(t, h, b); c.PreviewText != "来週でお願いします" {
			t.Errorf("B's conversation shows %q: %+v", c.PreviewText, c)
		}

		recs, err := h.Srv.Audit.Query(ctx, audit.Filter{Action: audit.RetentionDelete})
		if err != nil {
			t.Fatal(err)
		}
		deleted := 0
		for _, r := range recs {
			if r.Detail["messages"] != "" {
				var n int
				fmt.Sscan(r.Detail["messages"], &n)
				deleted += n
			}
			if s := fmt.Sprintf("%+v", r); strings.Contains(s, "腰") || strings.Contains(s, "予約") {
				t.Errorf("an audit record holds a message: %s", s)
			}
		}
		if deleted != 2 {
			t.Errorf("the audit log counts %d messages deleted, want 2 (%+v)", deleted, recs)
		}
	})
}
