package friend_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

func TestNormalizeExact(t *testing.T) {
	for in, want := range map[string]string{
		"090-1234-5678": "09012345678",
		"０９０－１２３４－５６７８":             "09012345678",
		"(090) 1234 5678":           "09012345678",
		"090ー1234ー5678":             "09012345678",
		" Taro.Yamada@Example.COM ": "taro.yamada@example.com",
		"ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ":          "taro@example.com",
	} {
		if got := friend.NormalizeExact(in); got != want {
			t.Errorf("NormalizeExact(%q) = %q, want %q", in, got, want)
		}
	}
}

// The database's normalisation of stored values agrees with NormalizeExact on what
// people type into phone and email fields, on both engines; and the exact-search index,
// once every value is keyed, finds the same friends.
func TestSearchByExactValueTagsAndFields(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		fx := newFixture(t, db)
		var ids []int64
		for i := range 3 {
			var id int64
			err := db.WriteTx(ctx, func(tx *store.Tx) error {
				return tx.QueryRowContext(ctx, `INSERT INTO friends (channel_id, line_user_id, status, status_at, display_name, created_at, updated_at)
					VALUES (?, ?, 'following', 0, ?, 0, 0) RETURNING id`, fx.channel, fmt.Sprintf("U%032d", i), fmt.Sprintf("山田 %d郎", i)).Scan(&id)
			})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		phone, err := fx.friends.DefineField(ctx, db, friend.Field{ChannelID: fx.channel, Key: "phone", Label: "電話", Type: friend.TextField, Purpose: "連絡"})
		if err != nil {
			t.Fatal(err)
		}
		area, err := fx.friends.DefineField(ctx, db, friend.Field{ChannelID: fx.channel, Key: "area", Label: "地域", Type: friend.ChoiceField,
			Choices: []string{"大阪", "京都"}, Purpose: "案内", Sensitivity: friend.Attribute})
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range []string{"０９０－１２３４－５６７８", "090 1111 2222", "(03) 1234-5678"} {
			if _, err := fx.friends.SetField(ctx, db, ids[i], phone, v); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := fx.friends.SetField(ctx, db, ids[1], area, "大阪"); err != nil {
			t.Fatal(err)
		}
		tag, _ := fx.friends.CreateTag(ctx, db, fx.channel, "常連")
		fx.friends.AddTag(ctx, db, ids[1], tag.ID)
		fx.friends.AddTag(ctx, db, ids[2], tag.ID)

		// A value written before the index existed has no key until the fill.
		if _, err := db.ExecContext(ctx, "UPDATE friend_fields SET exact_key = NULL WHERE friend_id = ?", ids[2]); err != nil {
			t.Fatal(err)
		}
		found := func(t *testing.T, fl friend.SearchFilter) []int64 {
			t.Helper()
			list, err := fx.friends.Search(ctx, fx.channel, fl)
			if err != nil {
				t.Fatal(err)
			}
			var out []int64
			for _, f := range list {
				out = append(out, f.ID)
			}
			slices.Sort(out)
			n, _, err := fx.friends.Count(ctx, fx.channel, fl)
			if err != nil || n != len(out) {
				t.Errorf("count %d, search %d (%v)", n, len(out), err)
			}
			return out
		}
		for _, phase := range []string{"normalising in SQL", "by the index"} {
			if phase == "by the index" {
				if _, err := fx.friends.FillExactKeys(ctx); err != nil {
					t.Fatal(err)
				}
			}
			t.Run(phase, func(t *testing.T) { searchChecks(t, found, ids, tag.ID, phone, area) })
		}
		// The index holds no value in the clear, and it is what finds a friend now.
		var key string
		if err := db.QueryRowContext(ctx, "SELECT exact_key FROM friend_fields WHERE friend_id = ? AND field_id = ?", ids[0], phone.ID).Scan(&key); err != nil {
			t.Fatal(err)
		}
		if len(key) != 32 || strings.Contains(key, "12345678") {
			t.Errorf("exact key %q", key)
		}
		if _, err := db.ExecContext(ctx, "UPDATE friend_fields SET exact_key = 'other' WHERE friend_id = ?", ids[0]); err != nil {
			t.Fatal(err)
		}
		if got := found(t, friend.SearchFilter{Exact: "090-1234-5678"}); got != nil {
			t.Errorf("found without its key: %v", got)
		}
	})
}

func searchChecks(t *testing.T, search func(*testing.T, friend.SearchFilter) []int64, ids []int64, tag int64, phone, area friend.Field) {
	found := func(fl friend.SearchFilter) []int64 { t.Helper(); return search(t, fl) }
	for q, want := range map[string][]int64{
		"090-1234-5678": {ids[0]}, "09011112222": {ids[1]}, "０３１２３４５６７８": {ids[2]},
		"090-1234": nil, "5678": nil, fmt.Sprintf("u%032d", 2): {ids[2]},
	} {
		if got := found(friend.SearchFilter{Exact: q}); !slices.Equal(got, want) {
			t.Errorf("exact %q: %v, want %v", q, got, want)
		}
	}
	if got := found(friend.SearchFilter{Partial: "5678"}); !slices.Equal(got, []int64{ids[0], ids[2]}) {
		t.Errorf("partial 5678: %v", got)
	}
	// Stored in full-width digits with dashes: found by the digits as typed.
	if got := found(friend.SearchFilter{Partial: "0901234"}); !slices.Equal(got, []int64{ids[0]}) {
		t.Errorf("partial 0901234: %v", got)
	}
	if got := found(friend.SearchFilter{Partial: "2郎"}); !slices.Equal(got, []int64{ids[2]}) {
		t.Errorf("partial name: %v", got)
	}
	if got := found(friend.SearchFilter{Partial: "%"}); got != nil {
		t.Errorf("a LIKE wildcard matched: %v", got)
	}
	if got := found(friend.SearchFilter{TagIDs: []int64{tag}, Fields: []friend.FieldMatch{{Field: area, Value: "大阪"}}}); !slices.Equal(got, []int64{ids[1]}) {
		t.Errorf("tag and field: %v", got)
	}
	if got := found(friend.SearchFilter{TagIDs: []int64{tag}, MaxID: ids[1]}); !slices.Equal(got, []int64{ids[1]}) {
		t.Errorf("max ID: %v", got)
	}
	for v, want := range map[string][]int64{"０９０ １１１１ ２２２２": {ids[1]}, "03-1234-5678": {ids[2]}, "090-1111": nil} {
		if got := found(friend.SearchFilter{Fields: []friend.FieldMatch{{Field: phone, Value: v}}}); !slices.Equal(got, want) {
			t.Errorf("phone is %q: %v, want %v", v, got, want)
		}
	}
}
