package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/server"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/staff"
)

// A burst of wrong passwords on the owner's login reaches the owner's LINE as a push
// through the shop's channel, once, naming the login and nothing else.
func TestSuspiciousSignInsReachTheOwnersLINE(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/n.db")
	ctx := context.Background()
	owner := h.User("オーナー")
	h.OK(h.Emu.Follow(ctx, h.Ch, owner))
	h.Srv.Staff.Notifier = &staff.LineNotifier{To: owner, RetryKey: line.RetryKey,
		Push: func(ctx context.Context, to, text, retryKey string) error {
			msg, _ := json.Marshal(map[string]string{"type": "text", "text": text})
			_, err := h.Srv.Lines.Push(ctx, h.Ch, to, []json.RawMessage{msg}, retryKey)
			return err
		}}
	if _, err := h.Srv.Staff.CreateMember(ctx, "hanako", "山田 花子", "operator", "kumo7fuji3ta-sora"); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		if _, err := h.Srv.Staff.SignIn(ctx, "hanako", "wrong password 1", staff.Client{Addr: "203.0.113.9", UserAgent: "test"}); err == nil {
			t.Fatal("a wrong password signed in")
		}
	}
	h.Srv.Staff.WaitNotifications() // the pushes have been answered
	rs, _ := h.Emu.ReceivedBy(h.Ch, owner)
	if len(rs) == 0 {
		t.Fatal("the owner's LINE received nothing")
	}
	text := string(rs[0].Messages[0])
	if len(rs) != 1 || rs[0].Via != "push" || !strings.Contains(text, "hanako") || !strings.Contains(text, "ロック") {
		t.Errorf("owner's LINE got %d messages, first %s via %s", len(rs), text, rs[0].Via)
	}
	if strings.Contains(text, "wrong password") || strings.Contains(text, "203.0.113.9") {
		t.Errorf("the notification carries more than the login and kind: %s", text)
	}
}

func TestSecurityLINESettingIsChecked(t *testing.T) {
	_, err := server.New(context.Background(), server.Config{DB: t.TempDir() + "/x.db", Getenv: func(k string) string {
		switch k {
		case "LINESTEP_MASTER_KEY":
			return servertest.MasterKey
		case "LINESTEP_SECURITY_LINE":
			return "Uonlyauser"
		}
		return ""
	}})
	if err == nil || !strings.Contains(err.Error(), "CHANNEL_ID:LINE_USER_ID") {
		t.Errorf("a malformed LINESTEP_SECURITY_LINE: %v", err)
	}
}
