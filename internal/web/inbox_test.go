package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/inbox"
	"github.com/linestep/linestep/internal/servertest"
)

// fxReceived returns how the user received each message from the channel, with its text.
func fxReceived(t *testing.T, h *servertest.Harness, user string) []string {
	t.Helper()
	rs, err := h.Emu.ReceivedBy(h.Ch, user)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		for _, raw := range r.Messages {
			var m struct{ Text string }
			_ = json.Unmarshal(raw, &m)
			out = append(out, r.Via+":"+m.Text)
		}
	}
	return out
}

func fxConversation(t *testing.T, h *servertest.Harness, friendID int64) inbox.Conversation {
	t.Helper()
	c, err := h.Srv.Inbox.Get(context.Background(), h.Ch, friendID)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestInboxRepliesAssignsAndReopens(t *testing.T) {
	fxEachDB(t, func(t *testing.T, h *servertest.Harness) {
		ctx := context.Background()
		f := fxFriend(t, h)
		u := f.LineUserID
		h.OK(h.Emu.SendText(ctx, h.Ch, u, "明日の予約はできますか?"))
		h.Eventually("the conversation", func() bool {
			c, err := h.Srv.Inbox.Get(ctx, h.Ch, f.ID)
			return err == nil && c.Unread == 1
		})
		mgr, _ := fxManager(t, h)
		token := mgr.csrf()
		list := "/console/channels/" + h.Ch + "/inbox"
		chat := list + "/" + itoa(f.ID)

		res, page := mgr.get(list)
		if res.StatusCode != 200 {
			t.Fatalf("inbox: %d", res.StatusCode)
		}
		fxWant(t, "the open tab", page, []string{"山田 太郎", "明日の予約はできますか?", `href="` + chat + `"`, `class="badge"`}, nil)
		_, page = mgr.get(list + "?status=resolved")
		fxWant(t, "the resolved tab", page, nil, []string{`href="` + chat + `"`})

		_, page = mgr.get(chat)
		fxWant(t, "the chat", page, []string{"山田 太郎", "明日の予約はできますか?", `name="text"`}, nil)
		if c := fxConversation(t, h, f.ID); c.Unread != 0 {
			t.Errorf("seeing the chat did not mark it read: %d unread", c.Unread)
		}

		// Empty and over-long replies come back, the text kept.
		res, page = mgr.do("POST", chat+"/reply", url.Values{"csrf": {token}, "text": {"  \r\n "}}, nil)
		if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "メッセージを入力してください") {
			t.Errorf("empty reply: %d", res.StatusCode)
		}
		long := strings.Repeat("長", 5001)
		res, page = mgr.do("POST", chat+"/reply", url.Values{"csrf": {token}, "text": {long}}, nil)
		if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, long) || !strings.Contains(page, "5000文字以内") {
			t.Errorf("long reply: %d", res.StatusCode)
		}

		// Within the minute: by the reply token.
		res, _ = mgr.do("POST", chat+"/reply", url.Values{"csrf": {token}, "text": {"はい、承ります。"}}, nil)
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != chat+"?sent=reply" {
			t.Fatalf("reply: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		h.Eventually("the reply", func() bool { return len(fxReceived(t, h, u)) == 1 })
		if got := fxReceived(t, h, u); got[0] != "reply:はい、承ります。" {
			t.Errorf("received: %v", got)
		}
		if c := fxConversation(t, h, f.ID); c.Status != inbox.Pending {
			t.Errorf("after the reply: %s", c.Status)
		}
		_, page = mgr.get(chat + "?sent=reply")
		fxWant(t, "the chat after the reply", page, []string{"応答メッセージ(無料)として送信しました", "はい、承ります。", "Manager"}, nil)

		// Two minutes later the token is gone: by push.
		h.Clk.Advance(2 * time.Minute)
		res, _ = mgr.do("POST", chat+"/reply", url.Values{"csrf": {token}, "text": {"お待ちしております。"}}, nil)
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != chat+"?sent=push" {
			t.Fatalf("late reply: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		h.Eventually("the push", func() bool { return len(fxReceived(t, h, u)) == 2 })
		if got := fxReceived(t, h, u); got[1] != "push:お待ちしております。" {
			t.Errorf("received: %v", got)
		}
		h.Eventually("the delivery state", func() bool {
			_, page := mgr.get(chat)
			return strings.Contains(page, "プッシュ") && strings.Contains(page, "送信済み")
		})

		// Assignment: to a member of the channel, and the "mine" view.
		op, opm := fxMember(t, h, "op", "Operator", access.Operator)
		res, _ = mgr.do("POST", chat+"/assign", url.Values{"csrf": {token}, "assignee": {itoa(opm.ID)}}, nil)
		if res.StatusCode != http.StatusSeeOther || fxConversation(t, h, f.ID).AssigneeID != opm.ID {
			t.Fatalf("assign: %d", res.StatusCode)
		}
		_, page = op.get(list + "?status=pending&view=mine")
		fxWant(t, "the operator's own chats", page, []string{`href="` + chat + `"`, "山* **"}, []string{"山田"})
		_, page = mgr.get(list + "?status=pending&view=mine")
		fxWant(t, "the manager's own chats", page, nil, []string{`href="` + chat + `"`})
		_, page = mgr.get(list + "?status=pending&view=unassigned")
		fxWant(t, "the unassigned chats", page, nil, []string{`href="` + chat + `"`})
		_, page = op.get(chat)
		fxWant(t, "the operator's chat", page, []string{"山* **", "お待ちしております。", "明日の予約はできますか?"}, []string{"山田", "profile.line-scdn.net"})
		// A member of another account only, or nobody known, cannot be assigned.
		other, err := h.Srv.Staff.CreateMember(ctx, "elsewhere", "Elsewhere", "operator", fxPassword)
		if err != nil {
			t.Fatal(err)
		}
		for _, who := range []string{itoa(other.ID), "999999"} {
			if res, _ := mgr.do("POST", chat+"/assign", url.Values{"csrf": {token}, "assignee": {who}}, nil); res.StatusCode != http.StatusUnprocessableEntity {
				t.Errorf("assign to %s: %d", who, res.StatusCode)
			}
		}

		// Resolved, then the friend writes again: open.
		res, _ = op.do("POST", chat+"/status", url.Values{"csrf": {op.csrf()}, "status": {"resolved"}}, nil)
		if res.StatusCode != http.StatusSeeOther || fxConversation(t, h, f.ID).Status != inbox.Resolved {
			t.Fatalf("resolve: %d", res.StatusCode)
		}
		h.OK(h.Emu.SendText(ctx, h.Ch, u, "もう一つ質問です"))
		h.Eventually("the reopened conversation", func() bool { return fxConversation(t, h, f.ID).Status == inbox.Open })
		_, page = op.get(list)
		fxWant(t, "the open tab again", page, []string{`href="` + chat + `"`, "もう一つ質問です"}, nil)

		// The poll tells the newest message only.
		res, body := op.get(chat + "/poll")
		if res.StatusCode != 200 || !strings.HasPrefix(body, `{"last":`) || strings.Contains(body, "質問") {
			t.Errorf("poll: %d %s", res.StatusCode, body)
		}
		// An analyst reads chats but does not answer or assign.
		fxRole(t, h, "reader", access.DashboardRead, access.ChatsRead)
		rd, _ := fxMember(t, h, "reader", "Reader", "reader")
		if res, _ := rd.get(chat); res.StatusCode != 200 {
			t.Errorf("reader's chat: %d", res.StatusCode)
		}
		rt := rd.csrf()
		for _, p := range []string{"/reply", "/status", "/assign"} {
			if res, _ := rd.do("POST", chat+p, url.Values{"csrf": {rt}, "text": {"x"}, "status": {"open"}}, nil); res.StatusCode != 403 {
				t.Errorf("reader POST %s: %d", p, res.StatusCode)
			}
		}
	})
}

func TestInboxEscapesHostileNamesAndMessages(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/c.db")
	ctx := context.Background()
	name := `"><img src=x onerror=alert(1)>`
	msg := `<script>alert("msg")</script>`
	u := h.User(name)
	h.OK(h.Emu.Follow(ctx, h.Ch, u))
	h.OK(h.Emu.SendText(ctx, h.Ch, u, msg))
	h.Eventually("the conversation", func() bool {
		_, err := h.Srv.Inbox.Get(ctx, h.Ch, h.Friend(u).ID)
		return err == nil && h.Friend(u).DisplayName != ""
	})
	b, _ := fxManager(t, h)
	for _, path := range []string{"/inbox", "/inbox/" + itoa(h.Friend(u).ID), "/friends/" + itoa(h.Friend(u).ID)} {
		_, page := b.get("/console/channels/" + h.Ch + path)
		if strings.Contains(page, "<img src=x") || strings.Contains(page, "<script>alert") {
			t.Errorf("%s: friend-written text reached the page unescaped", path)
		}
		if !strings.Contains(page, "&lt;img src=x onerror=alert(1)&gt;") || !strings.Contains(page, "&lt;script&gt;alert(&#34;msg&#34;)&lt;/script&gt;") {
			t.Errorf("%s: the escaped name or message is missing", path)
		}
	}
}
