package line

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/line/line-bot-sdk-go/v8/linebot/messaging_api"
)

// Profile is a LINE user's public profile. DisplayName and StatusMessage are written by
// the user: personal data, and hostile until escaped.
type Profile struct {
	UserID        string
	DisplayName   string
	PictureURL    string
	StatusMessage string
	Language      string
}

// ValidUserID reports whether id has the form of a LINE user ID ("U" and 32 hex digits).
// IDs go into URL paths, so anything else is refused before a call.
func ValidUserID(id string) bool {
	return len(id) == 33 && id[0] == 'U' && strings.Trim(id[1:], "0123456789abcdef") == ""
}

// Profile fetches a user's profile; ErrNotFound if they are not a friend (blocked or
// never added the account).
func (c *Client) Profile(ctx context.Context, userID string) (Profile, error) {
	if !ValidUserID(userID) {
		return Profile{}, fmt.Errorf("line: profile: not a user ID")
	}
	var p *messaging_api.UserProfileResponse
	_, err := c.call(ctx, EndpointProfile, retryAll, func(api *messaging_api.MessagingApiAPI) (*http.Response, error) {
		res, body, err := api.GetProfileWithHttpInfo(userID)
		p = body
		return res, decodeErr(res, body == nil, err)
	})
	if err != nil {
		return Profile{}, err
	}
	return Profile{UserID: p.UserId, DisplayName: p.DisplayName, PictureURL: p.PictureUrl, StatusMessage: p.StatusMessage, Language: p.Language}, nil
}

// FollowerIDs returns a page of the channel's friends' user IDs and the token of the
// next page ("" at the end). limit is at most 1000.
func (c *Client) FollowerIDs(ctx context.Context, start string, limit int) ([]string, string, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	var out *messaging_api.GetFollowersResponse
	_, err := c.call(ctx, EndpointFollowers, retryAll, func(api *messaging_api.MessagingApiAPI) (*http.Response, error) {
		res, body, err := api.GetFollowersWithHttpInfo(start, int32(limit))
		out = body
		return res, decodeErr(res, body == nil, err)
	})
	if err != nil {
		return nil, "", err
	}
	return out.UserIds, out.Next, nil
}

// LinkRichMenu shows a rich menu to one user. Linking is idempotent, so it is retried.
func (c *Client) LinkRichMenu(ctx context.Context, userID, richMenuID string) error {
	if !ValidUserID(userID) || richMenuID == "" || strings.ContainsAny(richMenuID, "/?#") {
		return fmt.Errorf("line: link rich menu: invalid user or rich menu ID")
	}
	_, err := c.call(ctx, EndpointRichMenuLink, retryAll, func(api *messaging_api.MessagingApiAPI) (*http.Response, error) {
		res, _, err := api.LinkRichMenuIdToUserWithHttpInfo(userID, richMenuID)
		return res, err
	})
	return err
}

// UnlinkRichMenu removes a user's own rich menu (they see the default again).
func (c *Client) UnlinkRichMenu(ctx context.Context, userID string) error {
	if !ValidUserID(userID) {
		return fmt.Errorf("line: unlink rich menu: not a user ID")
	}
	_, err := c.call(ctx, EndpointRichMenuUnlink, retryAll, func(api *messaging_api.MessagingApiAPI) (*http.Response, error) {
		res, _, err := api.UnlinkRichMenuIdFromUserWithHttpInfo(userID)
		return res, err
	})
	return err
}

// Quota is the month's message allowance and what has been used of it.
type Quota struct {
	Type       string // "none" (unlimited) or "limited"
	Value      int64  // the allowance when limited
	TotalUsage int64  // messages sent this month (replies do not count)
}

// Quota reads the monthly message quota and its consumption.
func (c *Client) Quota(ctx context.Context) (Quota, error) {
	var q Quota
	_, err := c.call(ctx, EndpointQuota, retryAll, func(api *messaging_api.MessagingApiAPI) (*http.Response, error) {
		res, body, err := api.GetMessageQuotaWithHttpInfo()
		if body != nil {
			q.Type, q.Value = string(body.Type), body.Value
		}
		return res, decodeErr(res, body == nil, err)
	})
	if err != nil {
		return Quota{}, err
	}
	_, err = c.call(ctx, EndpointQuota, retryAll, func(api *messaging_api.MessagingApiAPI) (*http.Response, error) {
		res, body, err := api.GetMessageQuotaConsumptionWithHttpInfo()
		if body != nil {
			q.TotalUsage = body.TotalUsage
		}
		return res, decodeErr(res, body == nil, err)
	})
	if err != nil {
		return Quota{}, err
	}
	return q, nil
}

// Content fetches what a user sent (image, video, audio, file) from the data API. The
// caller closes the reader.
func (c *Client) Content(ctx context.Context, messageID string) (io.ReadCloser, string, error) {
	if messageID == "" || strings.ContainsAny(messageID, "/?#") {
		return nil, "", fmt.Errorf("line: content: invalid message ID")
	}
	var body io.ReadCloser
	var contentType string
	// The body is read after call returns, so the attempt's deadline must not end it:
	// the HTTP client's own timeout bounds it instead.
	_, err := c.call(context.WithoutCancel(ctx), EndpointContent, retryAll, func(_ *messaging_api.MessagingApiAPI) (*http.Response, error) {
		blob := *c.blob
		blob.WithContext(ctx)
		res, _, err := blob.GetMessageContentWithHttpInfo(messageID)
		if res != nil && res.StatusCode/100 == 2 {
			body, contentType = res.Body, res.Header.Get("Content-Type")
		}
		return res, err
	})
	if err != nil {
		return nil, "", err
	}
	return body, contentType, nil
}
