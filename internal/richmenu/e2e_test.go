package richmenu_test

import (
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/emulator"
	"github.com/linestep/linestep/internal/richmenu"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// The whole server and the emulator over HTTP: a scenario step's rich_menu action
// reaches LINE after the step commits.

func saveScenario(t *testing.T, h *servertest.Harness, key, src string) {
	t.Helper()
	def, err := scenario.ParseDefinition([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	err = h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		_, err := h.Srv.Scenarios.Save(ctx, tx, scenario.Scenario{ChannelID: h.Ch, Key: key, Definition: def, Enabled: true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func followed(t *testing.T, h *servertest.Harness) (string, int64) {
	t.Helper()
	u := h.User("山田")
	h.OK(h.Emu.Follow(ctx, h.Ch, u))
	h.Eventually("the friend", func() bool { return h.Friend(u).ID != 0 })
	return u, h.Friend(u).ID
}

func menuOf(t *testing.T, h *servertest.Harness, u string) string {
	t.Helper()
	m, err := h.Emu.RichMenuOf(h.Ch, u)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func lastLink(t *testing.T, h *servertest.Harness, friendID int64) richmenu.Link {
	t.Helper()
	ls, err := richmenu.ForFriend(ctx, h.Srv.DB, friendID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) == 0 {
		return richmenu.Link{}
	}
	return ls[0]
}

const linkOnFollow = `
trigger: {type: follow}
steps:
  - key: greet
    messages: [{type: text, text: ようこそ}]
    actions: {rich_menu: ` + menuA + `}
  - key: later
    timing: {after: 1d}
    actions: {rich_menu: default}
`

func TestScenarioStepLinksARichMenu(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		saveScenario(t, h, "welcome", linkOnFollow)
		u, id := followed(t, h)
		h.Eventually("the menu linked", func() bool { return menuOf(t, h, u) == menuA })
		h.Eventually("the record", func() bool { return lastLink(t, h, id).State == richmenu.Done })
		if l := lastLink(t, h, id); l.Attempts != 1 || l.Source != "scenario:welcome" {
			t.Errorf("link record: %+v", l)
		}

		h.Clk.Advance(24 * time.Hour)
		h.Eventually("the next step to unlink it", func() bool {
			if _, err := h.Srv.Scenarios.RunDue(ctx); err != nil {
				t.Fatal(err)
			}
			return menuOf(t, h, u) == ""
		})
		h.Eventually("the record", func() bool { return lastLink(t, h, id).State == richmenu.Done })
		if l := lastLink(t, h, id); l.RichMenuID != "" {
			t.Errorf("unlink record: %+v", l)
		}
	})
}

// A 500 from LINE leaves the link pending with the reason; it is made on a later try.
func TestServerErrorIsRetried(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		h.Emu.SetFaults(emulator.Faults{ErrorRate: 1, Endpoints: []string{"richmenu_link"}})
		saveScenario(t, h, "welcome", linkOnFollow)
		u, id := followed(t, h)
		h.Eventually("a failed attempt", func() bool { return lastLink(t, h, id).Attempts >= 1 })
		if l := lastLink(t, h, id); l.State != richmenu.Pending || !strings.Contains(l.LastError, "500") {
			t.Fatalf("after a 500: %+v", l)
		}
		if m := menuOf(t, h, u); m != "" {
			t.Fatalf("linked despite the 500: %q", m)
		}

		h.Emu.SetFaults(emulator.Faults{})
		h.Clk.Advance(time.Minute)
		h.Eventually("the retry", func() bool {
			h.Srv.RichMenus.Notify()
			return menuOf(t, h, u) == menuA
		})
		h.Eventually("the record", func() bool { return lastLink(t, h, id).State == richmenu.Done })
		if l := lastLink(t, h, id); l.Attempts < 2 || l.LastError != "" {
			t.Errorf("after the retry: %+v", l)
		}
	})
}

// A friend who blocks the account loses their pending link: it is not made when LINE
// answers again.
func TestBlockedFriendsPendingLinkIsDropped(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		h.Emu.SetFaults(emulator.Faults{ErrorRate: 1, Endpoints: []string{"richmenu_link"}})
		saveScenario(t, h, "welcome", linkOnFollow)
		u, id := followed(t, h)
		h.Eventually("a failed attempt", func() bool { return lastLink(t, h, id).Attempts >= 1 })

		h.OK(h.Emu.Block(ctx, h.Ch, u))
		h.Eventually("the link dropped", func() bool { return lastLink(t, h, id).State == richmenu.Dropped })
		h.Emu.SetFaults(emulator.Faults{})
		h.Clk.Advance(time.Hour)
		h.Srv.RichMenus.Notify()
		if n, err := h.Srv.RichMenus.RunOnce(ctx); err != nil || n != 0 {
			t.Fatalf("a round after the block made %d links (%v)", n, err)
		}
		if m := menuOf(t, h, u); m != "" {
			t.Errorf("a blocked friend got the menu: %q", m)
		}
		if ok := h.Emu.Stats().Requests["richmenu_link"]["200"]; ok != 0 {
			t.Errorf("%d links accepted by LINE after the block", ok)
		}
		if l := lastLink(t, h, id); l.LastError != "blocked" {
			t.Errorf("dropped link: %+v", l)
		}
	})
}
