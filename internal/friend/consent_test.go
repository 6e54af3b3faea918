package friend_test

import (
	"context"
	"errors"
	"testing"

	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

// A special care-required field takes a value only while the friend consents: the
// friend gives consent with a button (postback) and withdraws it the same way, which
// deletes the value; postback data naming no special field is ignored; consent is not
// recorded for other fields.
func TestSpecialFieldsNeedConsent(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		const u = "U00000000000000000000000000000009"
		f.deliver(t, f.ev("follow", u, f.clk.Now(), `,"follow":{"isUnblocked":false}`))
		id := f.friend(t, u).ID
		q := f.friends.DB()
		health, err := f.friends.DefineField(ctx, q, friend.Field{ChannelID: f.channel, Key: "health_note", Label: "体調メモ",
			Type: friend.TextField, Purpose: "レッスン内容を調整するため", Sensitivity: friend.Special})
		if err != nil {
			t.Fatal(err)
		}
		phone, err := f.friends.DefineField(ctx, q, friend.Field{ChannelID: f.channel, Key: "phone", Label: "電話",
			Type: friend.TextField, Purpose: "連絡"})
		if err != nil {
			t.Fatal(err)
		}
		set := func() error { _, err := f.friends.SetField(ctx, q, id, health, "腰痛あり"); return err }
		value := func() (string, bool) {
			vals, err := f.friends.FieldValues(ctx, q, id)
			if err != nil {
				t.Fatal(err)
			}
			v, ok := vals["health_note"]
			return v, ok
		}
		postback := func(data string) {
			f.deliver(t, f.ev("postback", u, f.clk.Now(), `,"replyToken":"r","postback":{"data":"`+data+`"}`))
		}

		if err := set(); !errors.Is(err, friend.ErrNoConsent) {
			t.Fatalf("a special value without consent: %v", err)
		}
		if _, err := f.friends.SetField(ctx, q, id, phone, "090-1111-2222"); err != nil {
			t.Fatalf("a normal field: %v", err)
		}
		for _, data := range []string{"linestep:consent:grant:phone", "linestep:consent:grant:nosuch", "linestep:consent:maybe:health_note"} {
			postback(data)
		}
		if _, known, _ := f.friends.ConsentOf(ctx, q, id, health.ID); known {
			t.Fatal("consent recorded from postback data that names no special field")
		}
		if _, known, _ := f.friends.ConsentOf(ctx, q, id, phone.ID); known {
			t.Fatal("consent recorded for a normal field")
		}

		postback(friend.ConsentPostbackData("health_note", true))
		c, known, err := f.friends.ConsentOf(ctx, q, id, health.ID)
		if err != nil || !known || !c.Granted || c.Source != friend.ConsentByPostback || c.Evidence == "" || !c.At.Equal(f.clk.Now().Truncate(1e6)) {
			t.Fatalf("consent after the button: %+v %v %v", c, known, err)
		}
		if err := set(); err != nil {
			t.Fatalf("a special value with consent: %v", err)
		}
		if v, ok := value(); !ok || v != "腰痛あり" {
			t.Fatalf("value: %q %v", v, ok)
		}

		postback(friend.ConsentPostbackData("health_note", false))
		if _, ok := value(); ok {
			t.Error("the value outlived the withdrawal")
		}
		if err := set(); !errors.Is(err, friend.ErrNoConsent) {
			t.Errorf("a special value after withdrawal: %v", err)
		}
		if err := f.friends.RecordConsent(ctx, q, id, phone, true, friend.ConsentByStaff, "staff:1 paper", f.clk.Now()); !errors.Is(err, friend.ErrInvalid) {
			t.Errorf("consent to a normal field: %v", err)
		}
	})
}
