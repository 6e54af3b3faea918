package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
)

// couponJSON is a coupon; one coupon's answer adds what became of it (stats).
type couponJSON struct {
	Key            string      `json:"key"`
	Title          string      `json:"title"`
	Description    string      `json:"description"`
	CodePolicy     string      `json:"code_policy"`
	SharedCode     string      `json:"shared_code,omitempty"`
	ValidFrom      *time.Time  `json:"valid_from"`
	ValidUntil     *time.Time  `json:"valid_until"`
	PerFriendLimit int         `json:"per_friend_limit"`
	Enabled        bool        `json:"enabled"`
	Available      bool        `json:"available"`
	CreatedAt      *time.Time  `json:"created_at"`
	UpdatedAt      *time.Time  `json:"updated_at"`
	Stats          *couponStat `json:"stats,omitempty"`
}

type couponStat struct {
	Issued          int `json:"issued"`
	Redemptions     int `json:"redemptions"`
	RedeemedFriends int `json:"redeemed_friends"`
	CodesLeft       int `json:"codes_left"`
}

func (a *API) toCouponJSON(c coupon.Coupon) couponJSON {
	return couponJSON{Key: c.Key, Title: c.Title, Description: c.Description, CodePolicy: c.CodePolicy, SharedCode: c.SharedCode,
		ValidFrom: at(c.ValidFrom), ValidUntil: at(c.ValidUntil), PerFriendLimit: c.PerFriendLimit, Enabled: c.Enabled,
		Available: c.Available(a.cfg.Clock.Now()), CreatedAt: at(c.CreatedAt), UpdatedAt: at(c.UpdatedAt)}
}

type redemptionJSON struct {
	ID            int64      `json:"id"`
	Key           string     `json:"key"`
	FriendID      int64      `json:"friend_id"`
	RedemptionKey string     `json:"redemption_key"`
	RedeemedBy    string     `json:"redeemed_by"`
	Number        int        `json:"number"`
	RedeemedAt    *time.Time `json:"redeemed_at"`
}

func (a *API) couponRoutes() []route {
	return []route{
		{"GET", "/api/v1/channels/{ch}/coupons", access.CouponsRead, a.listCoupons},
		{"GET", "/api/v1/channels/{ch}/coupons/{key}", access.CouponsRead, a.getCoupon},
		{"PUT", "/api/v1/channels/{ch}/coupons/{key}", access.CouponsWrite, a.putCoupon},
		{"DELETE", "/api/v1/channels/{ch}/coupons/{key}", access.CouponsWrite, a.deleteCoupon},
		{"POST", "/api/v1/channels/{ch}/coupons/{key}/codes", access.CouponsWrite, a.importCodes},
		{"POST", "/api/v1/channels/{ch}/coupons/{key}/issues", access.CouponsWrite, a.issueCoupon},
		{"POST", "/api/v1/channels/{ch}/coupons/{key}/redemptions", access.CouponsRedeem, a.redeemCoupon},
	}
}

var errNoCoupon = notFound("coupon", "クーポン")

// couponError answers the coupon service's refusals: each says what stands in the way.
func couponError(err error) error {
	switch {
	case errors.Is(err, coupon.ErrUnknownCoupon):
		return errNoCoupon
	case errors.Is(err, coupon.ErrNotAvailable):
		return conflict("coupon_not_available", "the coupon is turned off, or outside its validity period",
			"クーポンが無効になっているか、有効期間外です")
	case errors.Is(err, coupon.ErrExhausted):
		return conflict("codes_exhausted", "every imported code has been handed out; import more codes",
			"取り込んだコードはすべて配布済みです。コードを追加で取り込んでください")
	case errors.Is(err, coupon.ErrNotIssued):
		return conflict("not_issued", "the coupon was never issued to this friend, so it cannot be redeemed",
			"この友だちにはこのクーポンが配布されていないため、利用できません")
	case errors.Is(err, coupon.ErrLimitReached):
		return conflict("limit_reached", "the friend has redeemed the coupon as many times as it allows",
			"この友だちはこのクーポンを利用できる回数まで使っています")
	case errors.Is(err, coupon.ErrKeyConflict):
		return conflict("redemption_key_used", "this redemption_key was used for another friend's redemption",
			"この redemption_key は別の友だちの利用で使われています")
	case errors.Is(err, coupon.ErrInvalid):
		return invalidInput(Problem{Path: "redemption_key", EN: "a redemption key is 1 to 200 bytes", JA: "redemption_key は1〜200バイトにしてください"})
	}
	return err
}

func (a *API) listCoupons(w http.ResponseWriter, r *http.Request, c *call) error {
	cs, err := a.cfg.Coupons.List(r.Context(), c.channel)
	if err != nil {
		return err
	}
	out := make([]couponJSON, 0, len(cs))
	for _, cp := range cs {
		out = append(out, a.toCouponJSON(cp))
	}
	writeJSON(w, http.StatusOK, map[string]any{"coupons": out})
	return nil
}

// couponDetail is a coupon with its stats.
func (a *API) couponDetail(r *http.Request, cp coupon.Coupon) (couponJSON, error) {
	out := a.toCouponJSON(cp)
	st, err := a.cfg.Coupons.Stats(r.Context(), cp.ChannelID, cp.Key)
	if err != nil {
		return out, couponError(err)
	}
	out.Stats = &couponStat{Issued: st.Issued, Redemptions: st.Redemptions, RedeemedFriends: st.RedeemedFriends, CodesLeft: st.CodesLeft}
	return out, nil
}

func (a *API) getCoupon(w http.ResponseWriter, r *http.Request, c *call) error {
	cp, err := a.cfg.Coupons.Get(r.Context(), c.channel, r.PathValue("key"))
	if err != nil {
		return couponError(err)
	}
	out, err := a.couponDetail(r, cp)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// putCoupon creates (201) or replaces (200) a coupon. Absent, valid_from is now for a
// new coupon and unchanged for an existing one, and so is enabled (on for a new one).
// Its codes, issues and redemptions stay.
func (a *API) putCoupon(w http.ResponseWriter, r *http.Request, c *call) error {
	key := r.PathValue("key")
	if !coupon.ValidKey(key) {
		return invalidInput(Problem{Path: "key", EN: "a coupon key is 1 to 64 of a-z, 0-9 and _ (e.g. osaka10)",
			JA: "キーは英小文字・数字・「_」の1〜64文字にしてください(例: osaka10)"})
	}
	var req struct {
		Title          string  `json:"title"`
		Description    string  `json:"description"`
		CodePolicy     string  `json:"code_policy"`
		SharedCode     string  `json:"shared_code"`
		ValidFrom      *string `json:"valid_from"`
		ValidUntil     *string `json:"valid_until"`
		PerFriendLimit *int    `json:"per_friend_limit"`
		Enabled        *bool   `json:"enabled"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	cp := coupon.Coupon{ChannelID: c.channel, Key: key, Title: req.Title, Description: req.Description, CodePolicy: req.CodePolicy,
		SharedCode: req.SharedCode, PerFriendLimit: 1, Enabled: true, ValidFrom: a.cfg.Clock.Now().Truncate(time.Millisecond)}
	status := http.StatusCreated
	old, err := a.cfg.Coupons.Get(r.Context(), c.channel, key)
	if err == nil {
		status, cp.Enabled, cp.ValidFrom = http.StatusOK, old.Enabled, old.ValidFrom
	} else if !errors.Is(err, coupon.ErrUnknownCoupon) {
		return err
	}
	var ps []Problem
	if req.ValidFrom != nil && *req.ValidFrom != "" {
		t, p, err := a.parseTime(r.Context(), c.channel, *req.ValidFrom, "valid_from")
		if err != nil {
			return err
		}
		if p != nil {
			ps = append(ps, *p)
		}
		cp.ValidFrom = t
	}
	if req.ValidUntil != nil && *req.ValidUntil != "" {
		t, p, err := a.parseTime(r.Context(), c.channel, *req.ValidUntil, "valid_until")
		if err != nil {
			return err
		}
		if p != nil {
			ps = append(ps, *p)
		}
		cp.ValidUntil = t
	}
	if req.PerFriendLimit != nil {
		if cp.PerFriendLimit = *req.PerFriendLimit; cp.PerFriendLimit < 1 {
			ps = append(ps, Problem{Path: "per_friend_limit", EN: "the uses per friend must be at least 1", JA: "1人あたりの利用回数は1以上にしてください"})
		}
	}
	if req.Enabled != nil {
		cp.Enabled = *req.Enabled
	}
	if err := coupon.Validate(cp); err != nil {
		var vps message.Problems
		if !errors.As(err, &vps) {
			return err
		}
		for _, p := range vps {
			// A time that could not be read, or a limit refused above, is said once.
			if !hasPath(ps, p.Path) {
				ps = append(ps, p)
			}
		}
	}
	if ps != nil {
		return invalidInput(ps...)
	}
	saved, err := a.cfg.Coupons.Save(r.Context(), a.cfg.DB, cp)
	var vps message.Problems
	if errors.As(err, &vps) {
		return invalidInput(vps...)
	}
	if err != nil {
		return err
	}
	writeJSON(w, status, a.toCouponJSON(saved))
	return nil
}

func hasPath(ps []Problem, path string) bool {
	for _, p := range ps {
		if p.Path == path {
			return true
		}
	}
	return false
}

// deleteCoupon removes a coupon with its codes, issues and redemptions. A message that
// names it shows its fallback from then on.
func (a *API) deleteCoupon(w http.ResponseWriter, r *http.Request, c *call) error {
	key := r.PathValue("key")
	if err := a.cfg.Coupons.Delete(r.Context(), a.cfg.DB, c.channel, key); err != nil {
		return couponError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": key, "deleted": true})
	return nil
}

// importCodes adds codes to an imported coupon's pool. One bad code refuses them all,
// with the index of each (never the code).
func (a *API) importCodes(w http.ResponseWriter, r *http.Request, c *call) error {
	var req struct {
		Codes []string `json:"codes"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	key := r.PathValue("key")
	added, dups, err := a.cfg.Coupons.ImportCodes(r.Context(), c.channel, key, req.Codes)
	var ps message.Problems
	if errors.As(err, &ps) {
		if len(ps) == 1 && ps[0].Path == "code_policy" {
			return conflict("not_imported_policy", ps[0].EN, ps[0].JA)
		}
		return invalidInput(lineProblems(ps)...)
	}
	if err != nil {
		return couponError(err)
	}
	st, err := a.cfg.Coupons.Stats(r.Context(), c.channel, key)
	if err != nil {
		return couponError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": key, "added": added, "duplicates": dups, "codes_left": st.CodesLeft})
	return nil
}

// lineProblems turns the lines of a staff's file, which the import names, into indexes
// of the codes array.
func lineProblems(ps message.Problems) []Problem {
	out := make([]Problem, 0, len(ps))
	for _, p := range ps {
		var line int
		if _, err := fmt.Sscanf(p.Path, "line %d", &line); err == nil && line > 0 {
			p.Path = fmt.Sprintf("codes[%d]", line-1)
			if _, en, ok := strings.Cut(p.EN, ": "); ok {
				p.EN = en
			}
			if _, ja, ok := strings.Cut(p.JA, "行目: "); ok {
				p.JA = ja
			}
		} else if p.Path == "lines" {
			p.Path = "codes"
			p.EN = strings.Replace(p.EN, "lines are", "codes are", 1)
			p.JA = strings.Replace(p.JA, "行に", "件のコードに", 1)
		}
		out = append(out, p)
	}
	return out
}

// friendOf returns the friend a request body names, in the call's channel.
func (a *API) friendOf(r *http.Request, c *call, id int64) (friend.Friend, error) {
	if id <= 0 {
		return friend.Friend{}, invalidInput(Problem{Path: "friend_id", EN: "give the friend's ID", JA: "友だちの ID を指定してください"})
	}
	f, err := a.cfg.Friends.Get(r.Context(), c.channel, id)
	if errors.Is(err, store.ErrNotFound) {
		return friend.Friend{}, notFound("friend", "友だち")
	}
	return f, err
}

// issueCoupon gives a friend the coupon, as a message showing it would: a friend is
// issued a coupon once and always gets the same code.
func (a *API) issueCoupon(w http.ResponseWriter, r *http.Request, c *call) error {
	var req friendRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	f, err := a.friendOf(r, c, req.FriendID)
	if err != nil {
		return err
	}
	is, err := a.cfg.Coupons.Issue(r.Context(), a.cfg.DB, c.channel, f.ID, r.PathValue("key"), a.cfg.Clock.Now())
	if err != nil {
		return couponError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": is.Key, "friend_id": is.FriendID, "code": is.Code, "title": is.Title,
		"issued_at": at(is.IssuedAt), "valid_until": at(is.ValidUntil), "redeemed": is.Redeemed})
	return nil
}

// redeemCoupon records that a friend used the coupon (at the till). A request repeated
// with the same redemption_key counts once and answers the first redemption.
func (a *API) redeemCoupon(w http.ResponseWriter, r *http.Request, c *call) error {
	var req struct {
		FriendID      int64  `json:"friend_id"`
		RedemptionKey string `json:"redemption_key"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	f, err := a.friendOf(r, c, req.FriendID)
	if err != nil {
		return err
	}
	rkey := req.RedemptionKey
	if rkey == "" {
		// Without a key of the caller's, every request is a redemption of its own.
		b := make([]byte, 16)
		rand.Read(b)
		rkey = "api:" + hex.EncodeToString(b)
	}
	// The coupon service knows staff and postbacks; a token acts for the staff who made it.
	by := "staff:api-token-" + strconv.FormatInt(c.token.ID, 10)
	rd, err := a.cfg.Coupons.Redeem(r.Context(), a.cfg.DB, c.channel, f.ID, r.PathValue("key"), rkey, by, a.cfg.Clock.Now())
	if err != nil {
		return couponError(err)
	}
	writeJSON(w, http.StatusCreated, redemptionJSON{ID: rd.ID, Key: rd.Key, FriendID: rd.FriendID, RedemptionKey: rd.RedemptionKey,
		RedeemedBy: rd.By, Number: rd.Number, RedeemedAt: at(rd.RedeemedAt)})
	return nil
}
