package friend_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/ingest"
	"github.com/linestep/linestep/internal/keyring"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/metrics"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/testutil"
)

const userA = "U0123456789abcdef0123456789abcdef"

// fakeProfiles answers profile calls from a map; a user in failing gets an error.
type fakeProfiles struct {
	mu      sync.Mutex
	byUser  map[string]line.Profile
	failing map[string]bool
	calls   int
}

func (f *fakeProfiles) Profile(ctx context.Context, channelID, userID string) (line.Profile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failing[userID] {
		return line.Profile{}, errors.New("LINE answered 500")
	}
	p, ok := f.byUser[userID]
	if !ok {
		return line.Profile{}, line.ErrNotFound
	}
	return p, nil
}

type fixture struct {
	db       *store.DB
	clk      *clock.Fake
	friends  *friend.Service
	proc     *ingest.Processor
	profiles *fakeProfiles
	channel  string
	seq      int
}

func newFixture(t testing.TB, db *store.DB) *fixture {
	t.Helper()
	key, _ := keyring.ParseKey(keyring.GenerateKey())
	keys, _ := keyring.New(key)
	clk := clock.NewFake(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	ch, err := channel.NewService(db, keys, clk).Add(context.Background(), "shop", "secret", "token")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	profiles := &fakeProfiles{byUser: map[string]line.Profile{}, failing: map[string]bool{}}
	svc := friend.NewService(db, clk, profiles, logger, keys.Derive(friend.SearchKeyPurpose))
	proc := ingest.NewProcessor(db, clk, metrics.New(), logger)
	svc.Register(proc)
	return &fixture{db: db, clk: clk, friends: svc, proc: proc, profiles: profiles, channel: ch.ID}
}

// deliver stores raw events as the webhook handler would and processes them.
func (f *fixture) deliver(t *testing.T, events ...string) {
	t.Helper()
	ctx := context.Background()
	var raws []line.RawEvent
	for _, e := range events {
		hook, err := line.ParseWebhook([]byte(`{"destination":"U1","events":[` + e + `]}`))
		if err != nil {
			t.Fatalf("parse %s: %v", e, err)
		}
		raws = append(raws, hook.Events...)
	}
	com := ingest.NewCommitter(f.db, metrics.New(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { com.Run(runCtx); close(done) }()
	if _, err := com.Store(ctx, f.channel, raws, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	for {
		n, err := f.proc.ProcessBatch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
}

func (f *fixture) ev(typ, user string, at time.Time, extra string) string {
	f.seq++
	return fmt.Sprintf(`{"type":%q,"mode":"active","timestamp":%d,"source":{"type":"user","userId":%q},"webhookEventId":"EV%06d","deliveryContext":{"isRedelivery":false}%s}`,
		typ, at.UnixMilli(), user, f.seq, extra)
}

func (f *fixture) friend(t *testing.T, user string) friend.Friend {
	t.Helper()
	fr, err := f.friends.ByLineUserID(context.Background(), f.channel, user)
	if err != nil {
		t.Fatal(err)
	}
	return fr
}

func TestFollowFetchesProfileAndBlockStops(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		f.profiles.byUser[userA] = line.Profile{UserID: userA, DisplayName: "山田 太郎", PictureURL: "https://profile.line-scdn.net/x", Language: "ja"}
		t0 := f.clk.Now()
		f.deliver(t, f.ev("follow", userA, t0, `,"replyToken":"r","follow":{"isUnblocked":false}`))

		fr := f.friend(t, userA)
		if fr.Status != friend.Following || fr.FollowCount != 1 || !fr.FollowedAt.Equal(t0) || fr.DisplayName != "" {
			t.Fatalf("after follow: %+v", fr)
		}
		if n, err := f.friends.FetchDueProfiles(ctx); err != nil || n != 1 {
			t.Fatalf("FetchDueProfiles = %d, %v", n, err)
		}
		fr = f.friend(t, userA)
		if fr.DisplayName != "山田 太郎" || fr.Language != "ja" || fr.ProfileFetched.IsZero() {
			t.Fatalf("profile not stored: %+v", fr)
		}
		if n, _ := f.friends.FetchDueProfiles(ctx); n != 0 {
			t.Fatal("profile fetched again without a reason")
		}

		f.deliver(t, f.ev("unfollow", userA, t0.Add(time.Hour), ""))
		fr = f.friend(t, userA)
		if fr.Status != friend.Blocked || !fr.BlockedAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("after unfollow: %+v", fr)
		}

		// Re-follow after a block: reactivated, counted, flagged as unblocked.
		f.deliver(t, f.ev("follow", userA, t0.Add(2*time.Hour), `,"replyToken":"r","follow":{"isUnblocked":true}`))
		fr = f.friend(t, userA)
		if fr.Status != friend.Following || fr.FollowCount != 2 || !fr.Unblocked || !fr.FirstFollowedAt.Equal(t0) {
			t.Fatalf("after re-follow: %+v", fr)
		}
	})
}

// An unfollow that arrives after a newer follow (redelivery, another instance) must not
// block the friend.
func TestOutOfOrderEventsKeepTheLatestState(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		t0 := f.clk.Now()
		f.deliver(t, f.ev("follow", userA, t0.Add(2*time.Minute), `,"follow":{"isUnblocked":true}`))
		f.deliver(t, f.ev("unfollow", userA, t0.Add(time.Minute), ""))
		if fr := f.friend(t, userA); fr.Status != friend.Following {
			t.Fatalf("late unfollow won: %+v", fr)
		}
		f.deliver(t, f.ev("unfollow", userA, t0.Add(3*time.Minute), ""))
		f.deliver(t, f.ev("follow", userA, t0, `,"follow":{"isUnblocked":false}`))
		fr := f.friend(t, userA)
		if fr.Status != friend.Blocked || !fr.FirstFollowedAt.Equal(t0) || fr.FollowCount != 2 {
			t.Fatalf("late follow won or was lost: %+v", fr)
		}
	})
}

// A failing profile call does not lose the follow; the profile is fetched later.
func TestProfileFailureIsRetriedLater(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		f.profiles.failing[userA] = true
		f.deliver(t, f.ev("follow", userA, f.clk.Now(), `,"follow":{"isUnblocked":false}`))
		if _, err := f.friends.FetchDueProfiles(ctx); err != nil {
			t.Fatal(err) // a failed fetch is recorded, not an error of the round
		}
		if fr := f.friend(t, userA); fr.Status != friend.Following || fr.DisplayName != "" {
			t.Fatalf("%+v", fr)
		}
		if n, _ := f.friends.FetchDueProfiles(ctx); n != 0 {
			t.Fatal("retried without waiting")
		}
		f.profiles.failing[userA] = false
		f.profiles.byUser[userA] = line.Profile{DisplayName: "Later"}
		f.clk.Advance(time.Minute)
		if n, _ := f.friends.FetchDueProfiles(ctx); n != 1 {
			t.Fatal("not retried after the backoff")
		}
		if fr := f.friend(t, userA); fr.DisplayName != "Later" {
			t.Fatalf("%+v", fr)
		}
	})
}

func TestMessagesAndPostbacksAreLogged(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		t0 := f.clk.Now()
		hostile := `<script>alert(1)</script>`
		f.deliver(t,
			f.ev("message", userA, t0, `,"replyToken":"r","message":{"type":"text","id":"m1","quoteToken":"q","text":"`+strings.ReplaceAll(hostile, `"`, `\"`)+`"}`),
			f.ev("message", userA, t0.Add(time.Second), `,"replyToken":"r","message":{"type":"sticker","id":"m2","quoteToken":"q","packageId":"446","stickerId":"1988","stickerResourceType":"STATIC"}`),
			f.ev("message", userA, t0.Add(2*time.Second), `,"replyToken":"r","message":{"type":"image","id":"m3","quoteToken":"q","contentProvider":{"type":"line"}}`),
			f.ev("postback", userA, t0.Add(3*time.Second), `,"replyToken":"r","postback":{"data":"action=reserve","params":{"date":"2026-12-01"}}`),
			f.ev("message", "", t0, `,"message":{"type":"text","id":"m4","text":"from a group"}`),
		)
		fr := f.friend(t, userA)
		if fr.Status != friend.Unknown {
			t.Fatalf("a friend first seen through a message is %s, want unknown until confirmed", fr.Status)
		}
		conv, err := f.friends.Conversation(ctx, f.channel, fr.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"text:" + hostile, "sticker:446/1988", "image:m3", "postback:action=reserve"}
		if len(conv) != len(want) {
			t.Fatalf("conversation has %d entries, want %d", len(conv), len(want))
		}
		for i, m := range conv {
			var got string
			switch m.Kind {
			case "text":
				got = "text:" + m.Text
			case "sticker":
				got = "sticker:" + m.StickerPackageID + "/" + m.StickerID
			case "image":
				got = "image:" + m.LineMessageID
			case "postback":
				got = "postback:" + m.PostbackData
				if m.PostbackParams != `{"date":"2026-12-01"}` {
					t.Errorf("postback params %q", m.PostbackParams)
				}
			}
			if got != want[i] || m.Direction != friend.Inbound {
				t.Errorf("entry %d = %q (%s), want %q", i, got, m.Direction, want[i])
			}
		}
		// A successful profile fetch confirms the friend.
		f.profiles.byUser[userA] = line.Profile{DisplayName: "A"}
		f.friends.FetchDueProfiles(ctx)
		if fr := f.friend(t, userA); fr.Status != friend.Following {
			t.Fatalf("confirmed friend is %s", fr.Status)
		}
	})
}

func TestTagsAndFields(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		f.deliver(t, f.ev("follow", userA, f.clk.Now(), `,"follow":{"isUnblocked":false}`))
		fr := f.friend(t, userA)
		q := f.friends.DB()

		tag, err := f.friends.CreateTag(ctx, q, f.channel, " area:osaka ")
		if err != nil || tag.Name != "area:osaka" {
			t.Fatalf("CreateTag = %+v, %v", tag, err)
		}
		if again, _ := f.friends.CreateTag(ctx, q, f.channel, "area:osaka"); again.ID != tag.ID {
			t.Fatal("CreateTag of an existing name made another tag")
		}
		if _, err := f.friends.CreateTag(ctx, q, f.channel, "a\nb"); !errors.Is(err, friend.ErrInvalid) {
			t.Fatalf("multi-line tag accepted: %v", err)
		}
		if added, err := f.friends.AddTag(ctx, q, fr.ID, tag.ID); err != nil || !added {
			t.Fatalf("AddTag = %v, %v", added, err)
		}
		if added, _ := f.friends.AddTag(ctx, q, fr.ID, tag.ID); added {
			t.Fatal("adding a tag twice reported as new")
		}
		list, err := f.friends.List(ctx, f.channel, friend.ListFilter{TagID: tag.ID})
		if err != nil || len(list) != 1 {
			t.Fatalf("List by tag = %d, %v", len(list), err)
		}
		tags, _ := f.friends.Tags(ctx, f.channel)
		if len(tags) != 1 || tags[0].Friends != 1 {
			t.Fatalf("Tags = %+v", tags)
		}

		visit, err := f.friends.DefineField(ctx, q, friend.Field{ChannelID: f.channel, Key: "next_visit", Label: "次回来店日",
			Type: friend.DateField, Purpose: "予約のリマインドのため", RetentionDays: 365})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.friends.DefineField(ctx, q, friend.Field{ChannelID: f.channel, Key: "health", Label: "体調", Type: friend.TextField}); !errors.Is(err, friend.ErrInvalid) {
			t.Fatalf("a field without a purpose was accepted: %v", err)
		}
		if _, err := f.friends.SetField(ctx, q, fr.ID, visit, "next tuesday"); !errors.Is(err, friend.ErrInvalid) || strings.Contains(err.Error(), "tuesday") {
			t.Fatalf("bad date: %v (must be refused without echoing the value)", err)
		}
		if changed, err := f.friends.SetField(ctx, q, fr.ID, visit, "2026-12-01"); err != nil || !changed {
			t.Fatalf("SetField = %v, %v", changed, err)
		}
		if changed, _ := f.friends.SetField(ctx, q, fr.ID, visit, "2026-12-01"); changed {
			t.Fatal("setting the same value reported as a change")
		}
		vals, err := f.friends.FieldValues(ctx, q, fr.ID)
		if err != nil || vals["next_visit"] != "2026-12-01" {
			t.Fatalf("FieldValues = %v, %v", vals, err)
		}
		if removed, _ := f.friends.RemoveTag(ctx, q, fr.ID, tag.ID); !removed {
			t.Fatal("RemoveTag")
		}
	})
}

// While LINE fails every profile call, the fetcher pauses between rounds instead of going
// straight on to the next friends due, and picks up again when the pause is over.
func TestProfileFetcherPausesWhileLineFails(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		const friends = 60 // more than one round's 50
		var events []string
		for i := range friends {
			u := fmt.Sprintf("U%032x", i)
			f.profiles.failing[u] = true
			events = append(events, f.ev("follow", u, f.clk.Now(), `,"follow":{"isUnblocked":false}`))
		}
		f.deliver(t, events...)
		calls := func() int {
			f.profiles.mu.Lock()
			defer f.profiles.mu.Unlock()
			return f.profiles.calls
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { f.friends.RunProfileFetcher(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		waitFor := func(what string, ok func() bool) {
			t.Helper()
			for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("waited for %s; %d calls", what, calls())
				}
			}
		}
		waitFor("the first round to fail and pause", func() bool { return calls() == 50 && f.clk.Sleepers() > 0 })
		time.Sleep(100 * time.Millisecond)
		if n := calls(); n != 50 {
			t.Fatalf("%d calls without the clock moving: the fetcher went on at once after a failed round", n)
		}
		f.clk.Advance(5 * time.Second)
		waitFor("the second round after the pause", func() bool { return calls() == friends })
	})
}

// A field's values go retention_days after they were set, a change starting the count
// again; fields without a retention keep theirs; each deletion is in the audit log with
// the count and the field's key, never a value.
func TestFieldValuesExpireAfterTheirRetention(t *testing.T) {
	testutil.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		log := audit.NewLog(db, f.clk)
		f.friends.SetAudit(func(ctx context.Context, tx *store.Tx, rec audit.Record) error {
			_, err := log.Append(ctx, tx, rec)
			return err
		})
		users := []string{"U00000000000000000000000000000001", "U00000000000000000000000000000002", "U00000000000000000000000000000003"}
		var events []string
		for _, u := range users {
			events = append(events, f.ev("follow", u, f.clk.Now(), `,"follow":{"isUnblocked":false}`))
		}
		f.deliver(t, events...)
		q := f.friends.DB()
		health, err := f.friends.DefineField(ctx, q, friend.Field{ChannelID: f.channel, Key: "health_note", Label: "体調メモ", Type: friend.TextField,
			Purpose: "レッスン内容を調整するため", Sensitivity: friend.Special, RetentionDays: 30})
		if err != nil {
			t.Fatal(err)
		}
		area, err := f.friends.DefineField(ctx, q, friend.Field{ChannelID: f.channel, Key: "area", Label: "地域", Type: friend.TextField,
			Purpose: "地域ごとのお知らせのため", Sensitivity: friend.Attribute})
		if err != nil {
			t.Fatal(err)
		}
		set := func(user string, fl friend.Field, v string) {
			t.Helper()
			if _, err := f.friends.SetField(ctx, q, f.friend(t, user).ID, fl, v); err != nil {
				t.Fatal(err)
			}
		}
		for _, u := range users {
			if err := f.friends.RecordConsent(ctx, q, f.friend(t, u).ID, health, true, friend.ConsentByStaff, "staff:1 paper", f.clk.Now()); err != nil {
				t.Fatal(err)
			}
			set(u, health, "腰痛あり")
			set(u, area, "osaka")
		}
		f.clk.Advance(20 * 24 * time.Hour)
		set(users[2], health, "回復しました") // changed: kept 30 days from now
		set(users[1], health, "腰痛あり")   // the same value again: not extended
		if n, err := f.friends.ExpireFieldValues(ctx); err != nil || n != 0 {
			t.Fatalf("after 20 days: deleted %d, %v", n, err)
		}
		f.clk.Advance(11 * 24 * time.Hour)
		if n, err := f.friends.ExpireFieldValues(ctx); err != nil || n != 2 {
			t.Fatalf("after 31 days: deleted %d, %v; want the two set then", n, err)
		}
		for i, u := range users {
			vals, err := f.friends.FieldValues(ctx, q, f.friend(t, u).ID)
			if err != nil {
				t.Fatal(err)
			}
			_, kept := vals["health_note"]
			if kept != (i == 2) || vals["area"] != "osaka" {
				t.Errorf("friend %d: values %v", i, vals)
			}
		}
		if n, err := f.friends.ExpireFieldValues(ctx); err != nil || n != 0 {
			t.Fatalf("a second round deleted %d, %v", n, err)
		}
		recs, err := log.Query(ctx, audit.Filter{Action: audit.RetentionDelete})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].Detail["values"] != "2" || !slices.Equal(recs[0].Fields, []string{"health_note"}) ||
			recs[0].Actor.Kind != audit.ActorSystem || recs[0].ChannelID != f.channel {
			t.Fatalf("audit records %+v", recs)
		}
		if s := fmt.Sprintf("%+v", recs[0]); strings.Contains(s, "腰痛") {
			t.Errorf("the audit record holds a value: %s", s)
		}
	})
}
