package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/store"
)

// MaxBody bounds a request body: the largest is a scenario, far below it.
const MaxBody = 1 << 20

// Problem is one thing to fix in a request, at a path into its body (or a parameter).
type Problem = message.Problem

// failure is what every failed request answers, under "error". Messages never repeat the
// values sent: they may be personal data.
type failure struct {
	Status    int       `json:"-"`
	Code      string    `json:"code"`
	MessageEN string    `json:"message_en"`
	MessageJA string    `json:"message_ja"`
	Problems  []Problem `json:"problems,omitempty"`
}

func (e *failure) Error() string { return fmt.Sprintf("api: %d %s: %s", e.Status, e.Code, e.MessageEN) }

func apiError(status int, code, en, ja string, ps ...Problem) *failure {
	return &failure{Status: status, Code: code, MessageEN: en, MessageJA: ja, Problems: ps}
}

// invalidInput is a 400 with the problems found.
func invalidInput(ps ...Problem) *failure {
	return apiError(http.StatusBadRequest, "invalid_input", "the request has problems to fix; see problems",
		"リクエストに直すべき点があります(problems を参照)", ps...)
}

func notFound(what, ja string) *failure {
	return apiError(http.StatusNotFound, "not_found", "no such "+what, ja+"が見つかりません")
}

func conflict(code, en, ja string) *failure { return apiError(http.StatusConflict, code, en, ja) }

var (
	errUnauthorized = apiError(http.StatusUnauthorized, "unauthorized",
		"a valid API token is required: send Authorization: Bearer <token>",
		"有効な API トークンが必要です(Authorization: Bearer <トークン> を送ってください)")
	errForbiddenChannel = apiError(http.StatusForbidden, "forbidden",
		"this token may not act on this channel", "このトークンではこのチャネルを操作できません")
	errForbiddenRole = apiError(http.StatusForbidden, "forbidden",
		"this token's role does not allow this", "このトークンの権限ではこの操作はできません")
	errTooLarge = apiError(http.StatusRequestEntityTooLarge, "body_too_large",
		"the request body is over 1 MiB", "リクエストの本文が 1 MiB を超えています")
	errMediaType = apiError(http.StatusUnsupportedMediaType, "unsupported_media_type",
		"send the body as JSON, with Content-Type: application/json", "本文は JSON で、Content-Type: application/json を付けて送ってください")
	errNoRoute = apiError(http.StatusNotFound, "not_found", "no such endpoint; see /api/openapi.yaml",
		"そのエンドポイントはありません(/api/openapi.yaml を参照)")
	errInternal = apiError(http.StatusInternalServerError, "internal",
		"something went wrong on the server; it has been logged", "サーバーで問題が起きました(記録済みです)")
)

// setHeaders marks every answer as JSON that is not to be sniffed or cached: it carries
// personal data.
func setHeaders(h http.Header) {
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

// writeJSON answers with v encoded by encoding/json, which escapes <, > and & too: a
// display name such as <script> cannot become markup wherever the answer ends up.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := encodeJSON(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = encodeJSON(map[string]any{"error": errInternal})
	}
	writeBody(w, status, body)
}

// encodeJSON is v as an answer's body.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	err := json.NewEncoder(&buf).Encode(v)
	return buf.Bytes(), err
}

// writeBody answers with a body encoded already.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	setHeaders(w.Header())
	w.WriteHeader(status)
	w.Write(body)
}

func writeError(w http.ResponseWriter, e *failure) {
	writeJSON(w, e.Status, map[string]*failure{"error": e})
}

// classify turns a domain error into the answer for it; ok is false for errors the
// client cannot fix (they are logged, and answered 500).
func classify(err error) (e *failure, ok bool) {
	var ae *failure
	var ps message.Problems
	switch {
	case errors.As(err, &ae):
		return ae, true
	case errors.Is(err, scenario.ErrInvalid) && errors.As(err, &ps):
		return invalidInput(ps...), true
	case errors.Is(err, store.ErrNotFound):
		return apiError(http.StatusNotFound, "not_found", "not found", "見つかりません"), true
	case errors.Is(err, friend.ErrInvalid):
		return invalidInput(Problem{EN: strings.TrimPrefix(err.Error(), friend.ErrInvalid.Error()+": "), JA: "入力が正しくありません"}), true
	}
	return errInternal, false
}

// isJSON reports whether a Content-Type names JSON.
func isJSON(contentType string) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// decode reads the JSON body into v, refusing unknown keys and trailing data. The
// handler wrapper has already checked the Content-Type and bounded the size.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err = dec.Token(); err == io.EOF {
			err = nil
		} else if err == nil {
			err = errors.New("trailing data")
		}
	}
	if err == nil {
		return nil
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return errTooLarge
	case errors.Is(err, io.EOF):
		return invalidInput(Problem{Path: "", EN: "the body is empty; send a JSON object", JA: "本文が空です。JSON オブジェクトを送ってください"})
	}
	if p, ok := jsonProblem(err, ""); ok {
		return invalidInput(p)
	}
	return apiError(http.StatusBadRequest, "invalid_json", "the body is not valid JSON", "本文が正しい JSON ではありません")
}

// jsonProblem describes a decoding error that lies in the document's shape rather than
// its syntax, at a path under prefix. encoding/json's own messages can quote a number
// sent; these never do.
func jsonProblem(err error, prefix string) (Problem, bool) {
	join := func(path string) string { return strings.Trim(prefix+"."+path, ".") }
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ):
		want := jsonType(typ.Type.Kind().String())
		return Problem{Path: join(typ.Field), EN: "must be of type " + want, JA: want + " 型にしてください"}, true
	case strings.Contains(err.Error(), "json: unknown field "):
		// The key is the client's own, not personal data: naming it says what to fix.
		// encoding/json does not say where a nested key was: only the top level of a
		// body (no prefix) is flat enough to point at it.
		_, name, _ := strings.Cut(err.Error(), "json: unknown field ")
		if prefix == "" {
			return Problem{Path: strings.Trim(name, `"`), EN: "unknown key", JA: "不明なキーです"}, true
		}
		return Problem{Path: prefix, EN: "unknown key " + name, JA: "不明なキー " + name + " があります"}, true
	}
	return Problem{}, false
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "map", "struct":
		return "object"
	}
	return "number"
}

// at is a timestamp for JSON: UTC, or null when it never happened.
func at(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
