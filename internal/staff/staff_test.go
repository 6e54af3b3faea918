package staff_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

func TestLoginLinkAndSession(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := clock.NewFake(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
		svc := staff.NewService(db, clk)
		owner, created, err := svc.EnsureOwner(ctx, "owner", "Owner")
		if err != nil || !created || owner.Role != staff.Owner {
			t.Fatalf("EnsureOwner = %+v %v %v", owner, created, err)
		}
		if again, created, err := svc.EnsureOwner(ctx, "owner", "Owner"); err != nil || created || again.ID != owner.ID {
			t.Fatalf("second EnsureOwner = %+v %v %v", again, created, err)
		}

		link, err := svc.IssueLoginLink(ctx, owner.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		session, m, err := svc.RedeemLoginLink(ctx, link, "127.0.0.1", "test")
		if err != nil || m.ID != owner.ID {
			t.Fatalf("redeem: %v", err)
		}
		if _, _, err := svc.RedeemLoginLink(ctx, link, "127.0.0.1", "test"); !errors.Is(err, staff.ErrInvalidToken) {
			t.Fatalf("second redeem = %v, want ErrInvalidToken", err)
		}
		if got, err := svc.Session(ctx, session); err != nil || got.ID != owner.ID {
			t.Fatalf("Session = %+v %v", got, err)
		}

		// Idle timeout.
		clk.Advance(staff.IdleTimeout + time.Second)
		if _, err := svc.Session(ctx, session); !errors.Is(err, staff.ErrInvalidToken) {
			t.Fatalf("idle session accepted: %v", err)
		}

		// Expired link.
		link2, _ := svc.IssueLoginLink(ctx, owner.ID, time.Minute)
		clk.Advance(2 * time.Minute)
		if _, _, err := svc.RedeemLoginLink(ctx, link2, "", ""); !errors.Is(err, staff.ErrInvalidToken) {
			t.Fatalf("expired link accepted: %v", err)
		}

		// Sign-out ends the session; activity keeps it past the idle timeout but not past
		// the absolute one.
		link3, _ := svc.IssueLoginLink(ctx, owner.ID, time.Hour)
		s3, _, err := svc.RedeemLoginLink(ctx, link3, "", "")
		if err != nil {
			t.Fatal(err)
		}
		for elapsed := time.Duration(0); elapsed < staff.AbsoluteTimeout-20*time.Minute; elapsed += 20 * time.Minute {
			clk.Advance(20 * time.Minute)
			if _, err := svc.Session(ctx, s3); err != nil {
				t.Fatalf("active session refused after %v: %v", elapsed, err)
			}
		}
		clk.Advance(25 * time.Minute)
		if _, err := svc.Session(ctx, s3); !errors.Is(err, staff.ErrInvalidToken) {
			t.Fatalf("session past the absolute timeout accepted: %v", err)
		}
		link4, _ := svc.IssueLoginLink(ctx, owner.ID, time.Hour)
		s4, _, _ := svc.RedeemLoginLink(ctx, link4, "", "")
		if err := svc.EndSession(ctx, s4); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Session(ctx, s4); !errors.Is(err, staff.ErrInvalidToken) {
			t.Fatalf("ended session accepted: %v", err)
		}
	})
}
