package line_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/line/line-bot-sdk-go/v8/linebot/messaging_api"
	"github.com/line/line-bot-sdk-go/v8/linebot/webhook"

	"github.com/linestep/linestep/internal/emulator"
	"github.com/linestep/linestep/internal/line"
)

// These tests run the client against the emulator over real HTTP: two independent
// readings of LINE's documentation that must agree.

type world struct {
	emu    *emulator.Emulator
	client *line.Client
	hooks  chan []byte
	sigs   chan string
}

func newWorld(t *testing.T, ecfg emulator.Config, ccfg line.Config) *world {
	t.Helper()
	emu := emulator.New(ecfg)
	api := httptest.NewServer(emu.Handler())
	t.Cleanup(api.Close)
	w := &world{emu: emu, hooks: make(chan []byte, 16), sigs: make(chan string, 16)}
	hs := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.hooks <- b
		w.sigs <- r.Header.Get("x-line-signature")
	}))
	t.Cleanup(hs.Close)
	if err := emu.AddChannel(emulator.Channel{ID: "c", Secret: "sec", AccessToken: "tok", WebhookURL: hs.URL}); err != nil {
		t.Fatal(err)
	}
	ccfg.APIURL, ccfg.DataAPIURL, ccfg.AccessToken = api.URL, api.URL, "tok"
	c, err := line.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	w.client = c
	return w
}

func (w *world) friend(t *testing.T, name string) string {
	t.Helper()
	id := emulator.NewUserID()
	if err := w.emu.AddUser("c", emulator.User{ID: id, DisplayName: name, Language: "en"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.emu.Follow(context.Background(), "c", id); err != nil {
		t.Fatal(err)
	}
	<-w.hooks
	<-w.sigs
	return id
}

func textMsg(s string) []messaging_api.MessageInterface {
	return []messaging_api.MessageInterface{messaging_api.TextMessage{Text: s}}
}

func TestEmulatorDroppedPushIsRetriedOnceWithItsKey(t *testing.T) {
	w := newWorld(t, emulator.Config{Faults: emulator.Faults{DropRate: 1, Endpoints: []string{"push"}}},
		line.Config{MaxAttempts: 5})
	u := w.friend(t, "a")
	// Every attempt is delivered then dropped until we lift the fault; the client keeps
	// the key, so the user gets the message once and the client learns it was accepted.
	go func() {
		time.Sleep(300 * time.Millisecond)
		w.emu.SetFaults(emulator.Faults{})
	}()
	res, err := w.client.Push(context.Background(), u, textMsg("once"), line.RetryKey("outbox", "1"))
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	if !res.AlreadyAccepted || res.Attempts < 2 {
		t.Errorf("result %+v: want accepted by an earlier attempt", res)
	}
	got, _ := w.emu.ReceivedBy("c", u)
	if len(got) != 1 {
		t.Errorf("user received %d times, want 1", len(got))
	}
	if d, _ := w.emu.Duplicates("c"); len(d) != 0 {
		t.Errorf("duplicates: %+v", d)
	}
}

func TestEmulatorRejectionIsPermanentWithDetails(t *testing.T) {
	w := newWorld(t, emulator.Config{}, line.Config{})
	u := w.friend(t, "a")
	_, err := w.client.Push(context.Background(), u, textMsg(""), line.RetryKey("x"))
	var api *line.APIError
	if !errors.As(err, &api) || !line.IsPermanent(err) || len(api.Details) == 0 || api.Details[0].Property != "messages[0].text" {
		t.Fatalf("empty text: %v", err)
	}
	_, err = w.client.Reply(context.Background(), "deadbeef", textMsg("x"))
	if !errors.Is(err, line.ErrInvalidReplyToken) {
		t.Errorf("unknown reply token: %v", err)
	}
}

func TestEmulatorClientStaysUnderTheLimit(t *testing.T) {
	limit := map[string]emulator.Limit{"multicast": {Requests: 20, Per: time.Second}}
	w := newWorld(t, emulator.Config{Limits: limit},
		line.Config{Limits: map[line.Endpoint]line.Limit{line.EndpointMulticast: {Requests: 20, Per: time.Second}}})
	u := w.friend(t, "a")
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := w.client.Multicast(context.Background(), []string{u}, textMsg("m"), line.RetryKey("m", string(rune('a'+i))))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("multicast: %v", err)
		}
	}
	s := w.emu.Stats()
	if s.Requests["multicast"]["429"] != 0 || s.Requests["multicast"]["200"] != 40 {
		t.Errorf("emulator saw %v, want 40 successes and no 429", s.Requests["multicast"])
	}
}

func TestEmulatorProfileAndSignedWebhook(t *testing.T) {
	w := newWorld(t, emulator.Config{}, line.Config{})
	u := w.friend(t, `<img src=x onerror=alert(1)>`)
	p, err := w.client.Profile(context.Background(), u)
	if err != nil || p.DisplayName != `<img src=x onerror=alert(1)>` || p.Language != "en" {
		t.Fatalf("profile: %+v %v", p, err)
	}
	if _, err := w.client.Profile(context.Background(), emulator.NewUserID()); !errors.Is(err, line.ErrNotFound) {
		t.Errorf("stranger: %v", err)
	}
	if _, err := w.emu.Postback(context.Background(), "c", u, "action=coupon"); err != nil {
		t.Fatal(err)
	}
	body, sig := <-w.hooks, <-w.sigs
	if !line.VerifySignature([]byte("sec"), body, sig) {
		t.Fatal("the emulator's signature does not verify")
	}
	hook, err := line.ParseWebhook(body)
	if err != nil || len(hook.Events) != 1 || hook.Events[0].Type != "postback" || hook.Events[0].UserID != u {
		t.Fatalf("parse: %+v %v", hook, err)
	}
	ev, err := line.DecodeEvent(hook.Events[0].Raw)
	if err != nil {
		t.Fatal(err)
	}
	pb, ok := ev.(webhook.PostbackEvent)
	if !ok {
		if p, isPtr := ev.(*webhook.PostbackEvent); isPtr {
			pb, ok = *p, true
		}
	}
	if !ok || pb.Postback == nil || pb.Postback.Data != "action=coupon" {
		t.Errorf("SDK decoded %T %+v", ev, ev)
	}
}
