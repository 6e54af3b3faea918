package segment_test

import (
	"context"
	"errors"
	"testing"

	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

func TestSavedSegments(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		setup(t, db) // channel "ch" with its tags and fields
		osaka := segment.Filter{All: []segment.Filter{{Tag: "area:osaka"}, {Field: &segment.FieldCond{Key: "plan", Op: "eq", Value: "gold"}}}}
		first, err := segment.SaveSegment(ctx, db, segment.Saved{ChannelID: "ch", Key: "osaka-gold", Name: "大阪のゴールド", Filter: osaka})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := segment.SaveSegment(ctx, db, segment.Saved{ChannelID: "ch", Key: "all", Filter: segment.Filter{}}); err != nil {
			t.Fatal(err)
		}
		again, err := segment.SaveSegment(ctx, db, segment.Saved{ChannelID: "ch", Key: "osaka-gold", Name: "大阪", Filter: segment.Filter{Tag: "area:osaka"}})
		if err != nil {
			t.Fatal(err)
		}
		if again.ID != first.ID {
			t.Errorf("an update made a new segment: %d then %d", first.ID, again.ID)
		}
		got, err := segment.GetSegment(ctx, db, "ch", "osaka-gold")
		if err != nil || got.Name != "大阪" || got.Filter.Tag != "area:osaka" || got.Filter.All != nil {
			t.Errorf("GetSegment: %+v %v", got, err)
		}
		// What is stored resolves and selects like the filter it was saved from.
		c, err := segment.Resolve(ctx, db, "ch", got.Filter)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := segment.Count(ctx, db, c, now); err != nil || n != 3 {
			t.Errorf("count of the saved segment: %d %v", n, err)
		}
		list, err := segment.ListSegments(ctx, db, "ch")
		if err != nil || len(list) != 2 || list[0].Key != "all" || list[1].Key != "osaka-gold" {
			t.Errorf("ListSegments: %+v %v", list, err)
		}
		if list, _ := segment.ListSegments(ctx, db, "other"); len(list) != 0 {
			t.Errorf("another channel's segments: %+v", list)
		}
		if err := segment.DeleteSegment(ctx, db, "ch", "osaka-gold"); err != nil {
			t.Fatal(err)
		}
		if _, err := segment.GetSegment(ctx, db, "ch", "osaka-gold"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after delete: %v", err)
		}
		if err := segment.DeleteSegment(ctx, db, "ch", "osaka-gold"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("delete twice: %v", err)
		}
	})
}

func TestSaveSegmentRefusesWhatDoesNotResolve(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		setup(t, db)
		for _, tc := range []struct {
			s    segment.Saved
			path string
		}{
			{segment.Saved{Key: "Osaka", Filter: segment.Filter{Tag: "area:osaka"}}, "key"},
			{segment.Saved{Key: "a", Name: "two\nlines"}, "name"},
			{segment.Saved{Key: "a", Filter: segment.Filter{Tag: "area:kyoto"}}, "filter.tag"},
			{segment.Saved{Key: "a", Filter: segment.Filter{Any: []segment.Filter{{Field: &segment.FieldCond{Key: "height", Op: "set"}}}}}, "filter.any[0].field.key"},
			{segment.Saved{Key: "a", Filter: segment.Filter{Tag: "x", Status: "following"}}, "filter"},
		} {
			tc.s.ChannelID = "ch"
			_, err := segment.SaveSegment(ctx, db, tc.s)
			var e *segment.Error
			if !errors.As(err, &e) || e.Path != tc.path || !errors.Is(err, segment.ErrInvalid) {
				t.Errorf("SaveSegment(%+v): %v, want an error at %s", tc.s, err, tc.path)
			}
		}
		if list, _ := segment.ListSegments(ctx, db, "ch"); len(list) != 0 {
			t.Errorf("invalid segments were saved: %+v", list)
		}
	})
}
