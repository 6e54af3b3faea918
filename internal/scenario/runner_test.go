package scenario_test

import (
	"testing"
	"time"

	"github.com/linestep/linestep/internal/server"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/testutil"
)

// A step starts when it falls due, not at the runner's next poll: nothing else wakes the
// runner here, and its poll is an hour away.
func TestStepStartsWhenDueNotAtThePoll(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.StartWith(t, dsn, func(c *server.Config) { c.Scenarios.PollInterval = time.Hour })
		save(t, h, "course", `
trigger: {type: follow}
steps:
  - {key: one, messages: [{type: text, text: ようこそ}]}
  - {key: two, timing: {after: 10m}, messages: [{type: text, text: 10分後のご案内}]}
`)
		u, _ := follow(t, h, "田中")
		h.Eventually("the first step", func() bool { return len(received(t, h, u)) == 1 })
		h.Clk.Advance(10 * time.Minute)
		h.Eventually("the second step, ten minutes on", func() bool { return len(received(t, h, u)) == 2 })
		expectTexts(t, h, u, "ようこそ", "10分後のご案内")
	})
}
