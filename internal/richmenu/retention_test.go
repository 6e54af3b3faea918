package richmenu_test

import (
	"context"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/richmenu"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// Links that ended are deleted after the channel's delivery retention, counted in the
// audit log; a pending link stays, whatever its age, and a channel that keeps what it
// sent (0 days) keeps its links.
func TestEndedLinksExpireAfterTheChannelsRetention(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db, richmenu.Config{})
		var recs []audit.Record
		r.svc.SetRetention(func(_ context.Context, _ *store.Tx, rec audit.Record) error {
			recs = append(recs, rec)
			return nil
		})
		if _, err := db.ExecContext(ctx, "UPDATE channels SET delivery_retention_days = 30"); err != nil {
			t.Fatal(err)
		}
		r.enqueue(t, menuA)
		r.runOnce(t, 1)
		r.enqueue(t, menuB)
		r.runOnce(t, 1)
		expire := func(want int) {
			t.Helper()
			if n, err := r.svc.ExpireLinks(ctx); err != nil || n != want {
				t.Fatalf("ExpireLinks: %d, %v; want %d", n, err, want)
			}
		}
		r.clk.Advance(29 * 24 * time.Hour)
		expire(0)
		r.enqueue(t, "") // pending: LINE is not called in this test
		r.clk.Advance(2 * 24 * time.Hour)
		expire(2)
		ls := r.links(t)
		if len(ls) != 1 || ls[0].State != richmenu.Pending {
			t.Fatalf("left: %+v", ls)
		}
		if len(recs) != 1 || recs[0].Action != audit.RetentionDelete || recs[0].Detail["richmenu_links"] != "2" ||
			recs[0].ChannelID != "ch1" || recs[0].Detail["retention_days"] != "30" {
			t.Errorf("audit records: %+v", recs)
		}

		r.runOnce(t, 1)
		if _, err := db.ExecContext(ctx, "UPDATE channels SET delivery_retention_days = 0"); err != nil {
			t.Fatal(err)
		}
		r.clk.Advance(400 * 24 * time.Hour)
		expire(0)
		if ls := r.links(t); len(ls) != 1 || ls[0].State != richmenu.Done {
			t.Errorf("kept without retention: %+v", ls)
		}
	})
}
