package template_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/template"
	"github.com/linestep/linestep/internal/testutil"
)

var ctx = context.Background()

func text(s string) message.Template {
	return message.Template{Messages: []message.Message{{Type: "text", Text: s}}}
}

func TestSaveGetListDelete(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		for _, ch := range []string{"ch1", "ch2"} {
			if _, err := db.ExecContext(ctx, `INSERT INTO channels (id, name, secret_enc, token_enc, created_at) VALUES (?, 'Test', ?, ?, 0)`,
				ch, []byte{1}, []byte{1}); err != nil {
				t.Fatal(err)
			}
		}
		first, err := template.Save(ctx, db, "ch1", "sale", "セール", text("{{display_name|お客様}}さん、セールです"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := template.Save(ctx, db, "ch1", "a-first", "", text("A")); err != nil {
			t.Fatal(err)
		}
		if _, err := template.Save(ctx, db, "ch2", "sale", "other channel", text("B")); err != nil {
			t.Fatal(err)
		}
		again, err := template.Save(ctx, db, "ch1", "sale", "冬のセール", text("冬のセールです"))
		if err != nil {
			t.Fatal(err)
		}
		if again.ID != first.ID || !again.CreatedAt.Equal(first.CreatedAt) {
			t.Errorf("an update made a new template: %+v then %+v", first, again)
		}
		got, err := template.Get(ctx, db, "ch1", "sale")
		if err != nil || got.Name != "冬のセール" || got.Body.Messages[0].Text != "冬のセールです" {
			t.Errorf("Get: %+v %v", got, err)
		}
		list, err := template.List(ctx, db, "ch1")
		if err != nil || len(list) != 2 || list[0].Key != "a-first" || list[1].Key != "sale" {
			t.Errorf("List: %+v %v", list, err)
		}
		if err := del(db, "ch1", "sale", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := template.Get(ctx, db, "ch1", "sale"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get after Delete: %v", err)
		}
		if err := del(db, "ch1", "sale", nil); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Delete twice: %v", err)
		}
		if got, err := template.Get(ctx, db, "ch2", "sale"); err != nil || got.Name != "other channel" {
			t.Errorf("the other channel's template: %+v %v", got, err)
		}
	})
}

func TestSaveRefusesInvalid(t *testing.T) {
	db := testutil.NewSQLite(t)
	if _, err := db.ExecContext(ctx, `INSERT INTO channels (id, name, secret_enc, token_enc, created_at) VALUES ('ch1', 'Test', ?, ?, 0)`,
		[]byte{1}, []byte{1}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key, name string
		body      message.Template
		path      string
	}{
		{"Sale", "", text("x"), "key"},
		{"-sale", "", text("x"), "key"},
		{"sale", "two\nlines", text("x"), "name"},
		{"sale", "", text(""), "messages[0].text"},
		{"sale", "", message.Template{}, "messages"},
	} {
		_, err := template.Save(ctx, db, "ch1", tc.key, tc.name, tc.body)
		var ps message.Problems
		if !errors.As(err, &ps) || ps[0].Path != tc.path || ps[0].JA == "" {
			t.Errorf("Save(%q, %q): %v, want a problem at %s", tc.key, tc.name, err, tc.path)
		}
	}
	if list, _ := template.List(ctx, db, "ch1"); len(list) != 0 {
		t.Errorf("invalid templates were saved: %+v", list)
	}
}

func del(db *store.DB, channelID, key string, users template.Users) error {
	return db.WriteTx(ctx, func(tx *store.Tx) error { return template.Delete(ctx, tx, channelID, key, users) })
}

// A template that something uses stays, and the refusal names the users in both
// languages; asked about the key that is being deleted.
func TestDeleteRefusedWhileUsed(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		if _, err := db.ExecContext(ctx, `INSERT INTO channels (id, name, secret_enc, token_enc, created_at) VALUES ('ch1', 'Test', ?, ?, 0)`,
			[]byte{1}, []byte{1}); err != nil {
			t.Fatal(err)
		}
		if _, err := template.Save(ctx, db, "ch1", "sale", "", text("セールです")); err != nil {
			t.Fatal(err)
		}
		var asked []string
		users := func(_ context.Context, _ store.Querier, channelID, key string) ([]string, error) {
			asked = append(asked, channelID+"/"+key)
			return []string{"welcome", "winter"}, nil
		}
		err := del(db, "ch1", "sale", users)
		var inUse *template.InUseError
		if !errors.Is(err, template.ErrInUse) || !errors.As(err, &inUse) || len(inUse.Scenarios) != 2 {
			t.Fatalf("Delete of a used template: %v", err)
		}
		var ps message.Problems
		if !errors.As(err, &ps) || !strings.Contains(ps[0].JA, "「welcome」「winter」") || !strings.Contains(ps[0].EN, "welcome, winter") {
			t.Errorf("the refusal does not name the scenarios: %+v", ps)
		}
		if len(asked) != 1 || asked[0] != "ch1/sale" {
			t.Errorf("users asked about %q", asked)
		}
		if _, err := template.Get(ctx, db, "ch1", "sale"); err != nil {
			t.Errorf("the used template was deleted: %v", err)
		}
		none := func(context.Context, store.Querier, string, string) ([]string, error) { return nil, nil }
		if err := del(db, "ch1", "sale", none); err != nil {
			t.Fatalf("Delete once unused: %v", err)
		}
		if _, err := template.Get(ctx, db, "ch1", "sale"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get after Delete: %v", err)
		}
	})
}
