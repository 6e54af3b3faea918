package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linestep/linestep/internal/api"
	"github.com/linestep/linestep/internal/servertest"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/testutil"
)

var ctx = context.Background()

// reply is one answer of the API.
type reply struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r reply) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// problems lists the problem paths of an error answer, each checked to be in both
// languages.
func (r reply) problems(t *testing.T) []string {
	t.Helper()
	e, _ := r.body["error"].(map[string]any)
	if e["message_en"] == "" || e["message_ja"] == "" {
		t.Errorf("error without messages in both languages: %s", r.raw)
	}
	var out []string
	ps, _ := e["problems"].([]any)
	for _, p := range ps {
		m := p.(map[string]any)
		if m["ja"] == "" || m["en"] == "" {
			t.Errorf("problem without both languages: %v", m)
		}
		out = append(out, m["path"].(string))
	}
	return out
}

// call sends a request: body is sent as is when it is a string, as JSON otherwise.
func call(t *testing.T, h *servertest.Harness, token, method, path string, body any, contentType ...string) reply {
	t.Helper()
	hdr := http.Header{}
	if len(contentType) > 0 {
		hdr.Set("Content-Type", contentType[0])
	}
	return callWith(t, h, token, method, path, body, hdr)
}

// callWith is call with headers of the test's own (over the defaults).
func callWith(t *testing.T, h *servertest.Harness, token, method, path string, body any, hdr http.Header) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case io.Reader: // of unknown length: sent chunked
		rd = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.Base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for name, values := range hdr {
		req.Header[name] = values
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: res.StatusCode, header: res.Header, raw: raw}
	if path != "/api/openapi.yaml" {
		if ct := res.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: answer is not a JSON object: %v\n%s", method, path, err, raw)
		}
	}
	if res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("%s %s: headers %v", method, path, res.Header)
	}
	return r
}

// expect fails the test unless the answer has the status.
func expect(t *testing.T, r reply, status int) reply {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

// token makes an API token through the Go API.
func token(t *testing.T, h *servertest.Harness, role staff.Role, channelID string) string {
	t.Helper()
	_, secret, err := api.NewTokens(h.Srv.DB, h.Clk).Create(ctx, "test "+string(role), role, channelID)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func follow(t *testing.T, h *servertest.Harness, name string) (string, int64) {
	t.Helper()
	u := h.User(name)
	h.OK(h.Emu.Follow(ctx, h.Ch, u))
	h.Eventually("the profile", func() bool { return h.Friend(u).DisplayName != "" })
	return u, h.Friend(u).ID
}

func TestTokensAndPermissions(t *testing.T) {
	testutil.EachDSN(t, func(t *testing.T, dsn string) {
		h := servertest.Start(t, dsn)
		other, err := h.Srv.Channels.Add(ctx, "Other shop", "other-secret", "other-token")
		if err != nil {
			t.Fatal(err)
		}
		tokens := api.NewTokens(h.Srv.DB, h.Clk)
		admin := token(t, h, staff.Admin, "")
		analyst := token(t, h, staff.Analyst, "")
		operator := token(t, h, staff.Operator, "")
		elsewhere := token(t, h, staff.Owner, other.ID)
		revokedTok, revoked, err := tokens.Create(ctx, "old", staff.Owner, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := tokens.Revoke(ctx, revokedTok.ID); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(admin, "lst_") || len(admin) != 4+43 {
			t.Errorf("token form: %d characters", len(admin))
		}
		friends := "/api/v1/channels/" + h.Ch + "/friends"

		for name, tok := range map[string]string{"none": "", "wrong": "lst_" + strings.Repeat("A", 43), "revoked": revoked, "not ours": "abc"} {
			r := expect(t, call(t, h, tok, "GET", friends, nil), http.StatusUnauthorized)
			if r.errCode() != "unauthorized" || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s token: %v %s", name, r.header, r.raw)
			}
		}
		r := expect(t, call(t, h, elsewhere, "GET", friends, nil), http.StatusForbidden)
		if r.errCode() != "forbidden" {
			t.Errorf("token of another channel: %s", r.raw)
		}
		r = expect(t, call(t, h, elsewhere, "GET", "/api/v1/channels", nil), http.StatusOK)
		if chs := r.body["channels"].([]any); len(chs) != 1 || chs[0].(map[string]any)["id"] != other.ID {
			t.Errorf("a channel-scoped token sees: %s", r.raw)
		}
		r = expect(t, call(t, h, admin, "GET", "/api/v1/channels", nil), http.StatusOK)
		if chs := r.body["channels"].([]any); len(chs) != 2 || strings.Contains(string(r.raw), "secret") {
			t.Errorf("channels: %s", r.raw)
		}

		expect(t, call(t, h, analyst, "GET", friends, nil), http.StatusOK)
		tags := "/api/v1/channels/" + h.Ch + "/tags"
		expect(t, call(t, h, analyst, "POST", tags, map[string]string{"name": "vip"}), http.StatusForbidden)
		expect(t, call(t, h, operator, "POST", tags, map[string]string{"name": "vip"}), http.StatusCreated)
		expect(t, call(t, h, admin, "POST", tags, map[string]string{"name": "vip"}), http.StatusOK)
		fields := "/api/v1/channels/" + h.Ch + "/fields"
		field := map[string]any{"key": "age", "label": "年齢", "type": "number", "purpose": "おすすめの商品を選ぶため"}
		expect(t, call(t, h, operator, "POST", fields, field), http.StatusForbidden)
		expect(t, call(t, h, admin, "POST", fields, field), http.StatusCreated)

		scenarioPath := "/api/v1/channels/" + h.Ch + "/scenarios/hello"
		def := map[string]any{"definition": map[string]any{"trigger": map[string]string{"type": "manual"},
			"steps": []any{map[string]any{"key": "a", "messages": []any{map[string]string{"type": "text", "text": "hi"}}}}}}
		expect(t, call(t, h, analyst, "PUT", scenarioPath, def), http.StatusForbidden)
		expect(t, call(t, h, operator, "PUT", scenarioPath, def), http.StatusCreated)
		expect(t, call(t, h, analyst, "DELETE", scenarioPath, nil), http.StatusForbidden)
		expect(t, call(t, h, admin, "DELETE", scenarioPath, nil), http.StatusOK)
		expect(t, call(t, h, admin, "DELETE", scenarioPath, nil), http.StatusNotFound)

		expect(t, call(t, h, admin, "GET", "/api/v1/channels/chnosuchchannel/friends", nil), http.StatusNotFound)
		if r := expect(t, call(t, h, admin, "GET", "/api/v1/nothing", nil), http.StatusNotFound); r.errCode() != "not_found" {
			t.Errorf("unknown route: %s", r.raw)
		}
		r = expect(t, call(t, h, admin, "PATCH", tags, "{}"), http.StatusMethodNotAllowed)
		if r.header.Get("Allow") != "GET, POST" {
			t.Errorf("405 Allow: %q", r.header.Get("Allow"))
		}
		r = expect(t, call(t, h, "", "GET", "/api/openapi.yaml", nil), http.StatusOK)
		if !bytes.HasPrefix(r.raw, []byte("openapi: 3.1")) {
			t.Errorf("openapi.yaml: %.40s", r.raw)
		}

		// Use is recorded at most once a minute.
		lastUsed := func() time.Time {
			list, err := tokens.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, tok := range list {
				if tok.Name == "test analyst" {
					return tok.LastUsedAt
				}
			}
			t.Fatal("analyst token not listed")
			return time.Time{}
		}
		first := lastUsed()
		if !first.Equal(h.Clk.Now().Truncate(time.Millisecond)) {
			t.Errorf("last used %v, now %v", first, h.Clk.Now())
		}
		h.Clk.Advance(30 * time.Second)
		expect(t, call(t, h, analyst, "GET", friends, nil), http.StatusOK)
		if got := lastUsed(); !got.Equal(first) {
			t.Errorf("last used updated within the minute: %v", got)
		}
		h.Clk.Advance(31 * time.Second)
		expect(t, call(t, h, analyst, "GET", friends, nil), http.StatusOK)
		if got := lastUsed(); !got.After(first) {
			t.Errorf("last used not updated after a minute: %v", got)
		}

		// The token's SHA-256 is what is stored.
		sum := sha256.Sum256([]byte(admin))
		var n int
		if err := h.Srv.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM api_tokens WHERE token_hash = ?", sum[:]).Scan(&n); err != nil || n != 1 {
			t.Errorf("token hash: %d %v", n, err)
		}
		if logs := h.Logs.String(); strings.Contains(logs, admin) || strings.Contains(logs, analyst) {
			t.Errorf("a token in the log")
		}
	})
}
