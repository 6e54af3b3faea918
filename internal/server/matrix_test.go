package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/api"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
)

// Every console route and every API endpoint, with every built-in role: a role without
// the route's permission gets 403, a role with it never does. The routes come from the
// console's and the API's own tables, so a route added without a permission, or with the
// wrong one, fails here. Then the same roles read one friend: unmasked exactly when the
// role holds friends:read_pii, in the console and in the API.
func TestEveryRouteWithEveryRole(t *testing.T) {
	h := servertest.Start(t, t.TempDir()+"/m.db")
	ctx := context.Background()
	u := h.User("山田 太郎")
	h.OK(h.Emu.Follow(ctx, h.Ch, u))
	h.OK(h.Emu.SendText(ctx, h.Ch, u, "予約できますか"))
	h.Eventually("the friend", func() bool { return h.Friend(u).DisplayName != "" && len(h.Conversation(u)) == 1 })
	f := h.Friend(u)
	phone := defineField(t, h, f.ID, "phone", friend.Normal, "090-1234-5678")
	defineField(t, h, f.ID, "area", friend.Attribute, "osaka")

	params := map[string]string{"channelID": h.Ch, "ch": h.Ch, "friendID": itoa(f.ID), "id": "1", "key": "nosuch", "name": "vip", "tagID": "1"}
	for _, role := range access.BuiltIn {
		t.Run(role, func(t *testing.T) {
			perms := holds(t, h, role)
			b := member(t, h, role)
			for _, rt := range h.Srv.Console.Table() {
				// Only a member's own account needs no permission.
				if rt.Perm == "" && rt.Pattern != "/logout" && !strings.HasPrefix(rt.Pattern, "/console/account") {
					t.Errorf("console %s %s is open to every member: give it a permission", rt.Method, rt.Pattern)
				}
				path := fill(t, rt.Pattern, params)
				status, location := b.call(rt.Method, path)
				allowed := rt.Perm == "" || perms[rt.Perm]
				if !allowed && status != http.StatusForbidden {
					t.Errorf("console %s %s: %d, want 403 (needs %s)", rt.Method, path, status, rt.Perm)
				}
				// A GET sent to sign in means the session was refused: the test is broken.
				if allowed && (status == http.StatusForbidden || rt.Method == http.MethodGet && location == "/login") {
					t.Errorf("console %s %s: %d %s for a role holding %q", rt.Method, path, status, location, rt.Perm)
				}
			}
			tok := apiToken(t, h, role)
			for _, rt := range h.Srv.API.Table() {
				path := fill(t, rt.Path, params)
				if rt.Method == http.MethodDelete && rt.Path == "/api/v1/channels/{ch}/friends/{id}" {
					// Erasing the friend would leave nothing for the next role to read:
					// one that does not exist answers 404 to a role allowed, 403 to others.
					path = fill(t, rt.Path, map[string]string{"ch": h.Ch, "id": "999999"})
				}
				status, _ := apiCall(t, h, tok, rt.Method, path)
				if allowed := perms[rt.Perm]; allowed == (status == http.StatusForbidden) {
					t.Errorf("API %s %s: %d with %s holding %s=%v", rt.Method, path, status, role, rt.Perm, allowed)
				}
			}

			// Masked or not, everywhere the friend is shown.
			pii := perms[access.FriendsReadPII]
			for _, page := range []string{"/console/channels/" + h.Ch + "/friends", "/console/channels/" + h.Ch + "/friends/" + itoa(f.ID)} {
				body := b.page(page)
				if strings.Contains(body, "山田 太郎") != pii || strings.Contains(body, "山* **") == pii {
					t.Errorf("%s as %s: name shown unmasked=%v, want %v", page, role, strings.Contains(body, "山田 太郎"), pii)
				}
			}
			if detail := b.page("/console/channels/" + h.Ch + "/friends/" + itoa(f.ID)); strings.Contains(detail, phone) != pii ||
				!strings.Contains(detail, "osaka") {
				t.Errorf("friend page as %s: phone unmasked=%v (want %v); the area (not personal) must show", role, strings.Contains(detail, phone), pii)
			}
			_, raw := apiCall(t, h, tok, "GET", "/api/v1/channels/"+h.Ch+"/friends/"+itoa(f.ID))
			if strings.Contains(raw, "山田 太郎") != pii || strings.Contains(raw, phone) != pii || !strings.Contains(raw, "osaka") {
				t.Errorf("API friend as %s (read_pii=%v): %s", role, pii, raw)
			}
		})
	}
}

// holds lists what a built-in role may do, as the access service says.
func holds(t *testing.T, h *servertest.Harness, role string) map[access.Permission]bool {
	t.Helper()
	r, err := h.Srv.Access.Role(context.Background(), h.Srv.DB, role)
	if err != nil {
		t.Fatal(err)
	}
	out := map[access.Permission]bool{}
	for _, p := range r.Permissions {
		out[p] = true
	}
	return out
}

func defineField(t *testing.T, h *servertest.Harness, friendID int64, key string, s friend.Sensitivity, value string) string {
	t.Helper()
	ctx := context.Background()
	err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
		fd, err := h.Srv.Friends.DefineField(ctx, tx, friend.Field{ChannelID: h.Ch, Key: key, Label: key, Type: friend.TextField, Purpose: "test", Sensitivity: s})
		if err != nil {
			return err
		}
		_, err = h.Srv.Friends.SetField(ctx, tx, friendID, fd, value)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return value
}

var param = regexp.MustCompile(`\{([A-Za-z]+)(\.\.\.)?\}|\{\$\}`)

func fill(t *testing.T, pattern string, params map[string]string) string {
	return param.ReplaceAllStringFunc(pattern, func(m string) string {
		if m == "{$}" {
			return ""
		}
		name := param.FindStringSubmatch(m)[1]
		v, ok := params[name]
		if !ok {
			t.Fatalf("route %s has a parameter {%s} this test does not know: add it", pattern, name)
		}
		return v
	})
}

// browser is a signed-in member's cookie jar. Each call gets a fresh session, so a
// route that signs out (or ends sessions) cannot spoil the next.
type browser struct {
	t    *testing.T
	h    *servertest.Harness
	id   int64
	c    *http.Client
	csrf string
}

func member(t *testing.T, h *servertest.Harness, role string) *browser {
	t.Helper()
	ctx := context.Background()
	login := "m-" + role
	m, err := h.Srv.Staff.CreateMember(ctx, login, "Member "+role, staff.Role(role), "")
	if err != nil {
		t.Fatal(err)
	}
	if role != access.Owner {
		err := h.Srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
			owner, err := h.Srv.Access.StaffPrincipal(ctx, 0, "test", access.Owner)
			if err != nil {
				return err
			}
			return h.Srv.Access.SetChannels(ctx, tx, owner, m.ID, []string{h.Ch})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	b := &browser{t: t, h: h, id: m.ID}
	b.signIn()
	return b
}

// signIn opens a session with a one-time link, as an owner hands one out.
func (b *browser) signIn() {
	b.t.Helper()
	ctx := context.Background()
	link, err := b.h.Srv.Staff.IssueLoginLink(ctx, b.id, time.Hour)
	if err != nil {
		b.t.Fatal(err)
	}
	session, _, err := b.h.Srv.Staff.RedeemLoginLink(ctx, link, "127.0.0.1", "matrix-test")
	if err != nil {
		b.t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	base, _ := url.Parse(b.h.Base)
	jar.SetCookies(base, []*http.Cookie{{Name: "linestep_session", Value: session, Path: "/"}})
	b.c = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	page := b.page("/console/")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no form token on the account page")
	}
	b.csrf = m[1]
}

func (b *browser) page(path string) string {
	b.t.Helper()
	res, err := b.c.Get(b.h.Base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return string(body)
}

// call makes a request the way the console's pages do, in a fresh session, and returns
// the status and where a redirect goes.
func (b *browser) call(method, path string) (int, string) {
	b.t.Helper()
	b.signIn()
	req, _ := http.NewRequest(method, b.h.Base+path, strings.NewReader(url.Values{"csrf": {b.csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-CSRF-Token", b.csrf)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, res.Header.Get("Location")
}

func apiToken(t *testing.T, h *servertest.Harness, role string) string {
	t.Helper()
	_, secret, err := api.NewTokens(h.Srv.DB, h.Clk).Create(context.Background(), "matrix "+role, staff.Role(role), "")
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func apiCall(t *testing.T, h *servertest.Harness, token, method, path string) (int, string) {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut {
		body = bytes.NewReader([]byte("{}"))
	}
	req, _ := http.NewRequest(method, h.Base+path, body)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var e struct {
		Error struct {
			MessageEN string `json:"message_en"`
		}
	}
	if res.StatusCode == http.StatusForbidden && json.Unmarshal(raw, &e) == nil && strings.Contains(e.Error.MessageEN, "channel") {
		t.Errorf("%s %s: refused for the channel, not the role", method, path)
	}
	return res.StatusCode, string(raw)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
