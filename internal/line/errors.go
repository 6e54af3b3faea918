package line

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

var (
	// ErrNotFound: LINE answered 404 (a profile of a user who is not a friend).
	ErrNotFound = errors.New("line: not found")
	// ErrInvalidReplyToken: the reply token was used, expired or never existed; send by
	// push instead.
	ErrInvalidReplyToken = errors.New("line: invalid reply token")
	// ErrReplyOutcomeUnknown: a reply got no clear answer (a 5xx or a timeout). It may
	// have been delivered; a reply has no retry key, so sending again could duplicate it.
	ErrReplyOutcomeUnknown = errors.New("line: reply outcome unknown")
	// ErrInvalidRetryKey: a send was attempted without a UUID-form retry key.
	ErrInvalidRetryKey = errors.New("line: retry key must be a UUID in hex form")
)

// ErrorDetail is one entry of LINE's error details.
type ErrorDetail struct {
	Message  string `json:"message"`
	Property string `json:"property"`
}

// APIError is a non-2xx answer from LINE. Its text holds LINE's own message and property
// names, never request content.
type APIError struct {
	Endpoint  Endpoint
	Status    int
	Message   string
	Details   []ErrorDetail
	RequestID string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "line: %s: %d %s", e.Endpoint, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	for _, d := range e.Details {
		fmt.Fprintf(&b, "; %s: %s", d.Property, d.Message)
	}
	return b.String()
}

// Is lets errors.Is(err, ErrNotFound) and ErrInvalidReplyToken match API errors.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrInvalidReplyToken:
		return e.Endpoint == EndpointReply && e.Status == http.StatusBadRequest && strings.Contains(strings.ToLower(e.Message), "reply token")
	}
	return false
}

// TransportError is a call that got no HTTP answer (timeout, refused or dropped
// connection). Its text names the endpoint and the network error only.
type TransportError struct {
	Endpoint Endpoint
	Err      error
}

func (e *TransportError) Error() string {
	// A *url.Error repeats the URL, which can hold a user ID: keep only what failed.
	inner := e.Err
	var ue *url.Error
	if errors.As(inner, &ue) {
		inner = ue.Err
	}
	return fmt.Sprintf("line: %s: no answer: %v", e.Endpoint, inner)
}
func (e *TransportError) Unwrap() error { return e.Err }

// IsRetryable reports whether a later attempt might succeed (throttling, LINE's 5xx, no
// answer). Sends keep their retry key, so retrying them is safe.
func IsRetryable(err error) bool {
	var api *APIError
	if errors.As(err, &api) {
		return api.Status == http.StatusTooManyRequests || api.Status >= 500
	}
	var te *TransportError
	return errors.As(err, &te)
}

// IsPermanent reports whether LINE refused the request itself (4xx other than 429):
// sending it again unchanged will fail again.
func IsPermanent(err error) bool {
	var api *APIError
	return errors.As(err, &api) && api.Status >= 400 && api.Status < 500 && api.Status != http.StatusTooManyRequests
}
