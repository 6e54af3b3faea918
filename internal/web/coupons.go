package web

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/coupon"
	"github.com/linestep/linestep/internal/store"
)

// The coupons area: offers with their stats, the form that creates and edits them,
// importing codes, and redeeming at the till.

func (c *Console) couponRoutes(mux *http.ServeMux) {
	base := "/console/channels/{channelID}/coupons"
	c.handle(mux, "GET", base, access.CouponsRead, c.couponList)
	c.handle(mux, "GET", base+"/new", access.CouponsWrite, c.couponNew)
	c.handle(mux, "POST", base, access.CouponsWrite, c.couponCreate)
	c.handle(mux, "GET", base+"/{key}", access.CouponsRead, c.couponDetail)
	c.handle(mux, "GET", base+"/{key}/edit", access.CouponsWrite, c.couponEdit)
	c.handle(mux, "POST", base+"/{key}", access.CouponsWrite, c.couponUpdate)
	c.handle(mux, "POST", base+"/{key}/codes", access.CouponsWrite, c.couponImport)
	c.handle(mux, "POST", base+"/{key}/redeem", access.CouponsRedeem, c.couponRedeem)
}

type cpnRow struct {
	coupon.Coupon
	Stats     coupon.Stats
	Remaining string
	Validity  string
	Available bool
}

// validity says when a coupon can be used: "2026年11月1日 0:00 〜 2026-11-30".
func (c *Console) validity(lang string, loc *time.Location, cp coupon.Coupon) string {
	until := translate(lang, "cpn.noend")
	if !cp.ValidUntil.IsZero() {
		until = coupon.LastDay(cp.ValidUntil, loc)
	}
	return zoneTime(lang, loc, cp.ValidFrom) + " 〜 " + until
}

// remaining is what is left to hand out: imported codes, or no limit.
func remaining(lang string, cp coupon.Coupon, st coupon.Stats) string {
	if cp.CodePolicy == coupon.PolicyImported {
		return strconv.Itoa(st.CodesLeft)
	}
	return translate(lang, "cpn.unlimited")
}

func (c *Console) couponList(w http.ResponseWriter, r *http.Request, q *request) {
	list, err := c.Coupons.List(r.Context(), q.Channel.ID)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	loc, now := channelZone(q.Channel.TimeZone), c.Clock.Now()
	rows := make([]cpnRow, 0, len(list))
	for _, cp := range list {
		st, err := c.Coupons.Stats(r.Context(), q.Channel.ID, cp.Key)
		if err != nil {
			c.fail(w, r, q, err)
			return
		}
		rows = append(rows, cpnRow{Coupon: cp, Stats: st, Remaining: remaining(q.Lang, cp, st),
			Validity: c.validity(q.Lang, loc, cp), Available: cp.Available(now)})
	}
	c.render(w, r, http.StatusOK, "coupons", "cpn.title", q, map[string]any{"Coupons": rows})
}

// cpnForm is the coupon form as typed.
type cpnForm struct {
	New         bool
	Key         string
	Title       string
	Description string
	Policy      string
	SharedCode  string
	FromDate    string
	FromTime    string
	LastDay     string // the last day it can be used; empty: no end
	Limit       string
	Enabled     bool
	Problems    []formProblem
	Policies    []string
}

var cpnPolicies = []string{coupon.PolicyShared, coupon.PolicyGenerated, coupon.PolicyImported}

func (c *Console) couponNew(w http.ResponseWriter, r *http.Request, q *request) {
	now := c.Clock.Now().In(channelZone(q.Channel.TimeZone))
	c.render(w, r, http.StatusOK, "coupon_form", "cpn.new", q, cpnForm{New: true, Policy: coupon.PolicyGenerated,
		FromDate: now.Format(time.DateOnly), FromTime: "00:00", Limit: "1", Enabled: true, Policies: cpnPolicies})
}

func (c *Console) couponEdit(w http.ResponseWriter, r *http.Request, q *request) {
	cp, err := c.Coupons.Get(r.Context(), q.Channel.ID, r.PathValue("key"))
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	loc := channelZone(q.Channel.TimeZone)
	f := cpnForm{Key: cp.Key, Title: cp.Title, Description: cp.Description, Policy: cp.CodePolicy, SharedCode: cp.SharedCode,
		FromDate: cp.ValidFrom.In(loc).Format(time.DateOnly), FromTime: cp.ValidFrom.In(loc).Format("15:04"),
		Limit: strconv.Itoa(cp.PerFriendLimit), Enabled: cp.Enabled, Policies: cpnPolicies}
	if !cp.ValidUntil.IsZero() {
		f.LastDay = coupon.LastDay(cp.ValidUntil, loc)
	}
	c.render(w, r, http.StatusOK, "coupon_form", "cpn.edit", q, f)
}

func (c *Console) couponCreate(w http.ResponseWriter, r *http.Request, q *request) {
	c.saveCoupon(w, r, q, true, strings.TrimSpace(r.PostFormValue("key")))
}

func (c *Console) couponUpdate(w http.ResponseWriter, r *http.Request, q *request) {
	c.saveCoupon(w, r, q, false, r.PathValue("key"))
}

func (c *Console) saveCoupon(w http.ResponseWriter, r *http.Request, q *request, isNew bool, key string) {
	ctx := r.Context()
	f := cpnForm{New: isNew, Key: key, Title: strings.TrimSpace(r.PostFormValue("title")), Description: r.PostFormValue("description"),
		Policy: r.PostFormValue("code_policy"), SharedCode: strings.TrimSpace(r.PostFormValue("shared_code")),
		FromDate: r.PostFormValue("from_date"), FromTime: r.PostFormValue("from_time"), LastDay: r.PostFormValue("last_day"),
		Limit: strings.TrimSpace(r.PostFormValue("per_friend_limit")), Enabled: r.PostFormValue("enabled") == "1", Policies: cpnPolicies}
	title := "cpn.edit"
	if isNew {
		title = "cpn.new"
	}
	again := func(ps []formProblem) {
		f.Problems = ps
		c.render(w, r, http.StatusUnprocessableEntity, "coupon_form", title, q, f)
	}
	loc := channelZone(q.Channel.TimeZone)
	cp := coupon.Coupon{ChannelID: q.Channel.ID, Key: key, Title: f.Title, Description: strings.ReplaceAll(f.Description, "\r\n", "\n"),
		CodePolicy: f.Policy, SharedCode: f.SharedCode, Enabled: f.Enabled}
	if f.Policy != coupon.PolicyShared {
		cp.SharedCode = ""
	}
	from, err := time.ParseInLocation("2006-01-02 15:04", f.FromDate+" "+f.FromTime, loc)
	if err != nil {
		again(formProblemf(q.Lang, "valid_from", "cpn.from.bad"))
		return
	}
	cp.ValidFrom = from
	if f.LastDay != "" {
		day, err := time.ParseInLocation(time.DateOnly, f.LastDay, loc)
		if err != nil {
			again(formProblemf(q.Lang, "valid_until", "cpn.until.bad"))
			return
		}
		cp.ValidUntil = day.AddDate(0, 0, 1) // usable through that whole day
	}
	if f.Limit != "" {
		n, err := strconv.Atoi(f.Limit)
		if err != nil || n < 1 || n > 1000 {
			again(formProblemf(q.Lang, "per_friend_limit", "cpn.limit.bad"))
			return
		}
		cp.PerFriendLimit = n
	}
	err = c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		if isNew {
			if _, err := c.Coupons.Get(ctx, q.Channel.ID, key); err == nil {
				return errKeyTaken
			}
		}
		if _, err := c.Coupons.Save(ctx, tx, cp); err != nil {
			return err
		}
		return c.record(ctx, tx, r, q, audit.Record{Action: "coupon.save", Subject: "coupon:" + key})
	})
	c.afterSave(w, r, q, err, again, inChannel(q, "/coupons/"+url.PathEscape(key)+"?notice=saved"))
}

// cpnPage is the coupon's page.
type cpnPage struct {
	C            coupon.Coupon
	Stats        coupon.Stats
	Remaining    string
	Validity     string
	Available    bool
	Vars         []string
	Postback     string
	Redemptions  []cpnRedemption
	Notice       string
	NoticeBad    bool
	ImportText   string
	Problems     []formProblem
	RedeemKey    string
	MoreRedeemed int
}

type cpnRedemption struct {
	FriendID int64
	Number   int
	By       string
	At       string
}

func (c *Console) couponDetail(w http.ResponseWriter, r *http.Request, q *request) {
	c.couponPage(w, r, q, http.StatusOK, "", nil)
}

func (c *Console) couponPage(w http.ResponseWriter, r *http.Request, q *request, status int, importText string, ps []formProblem) {
	ctx, key := r.Context(), r.PathValue("key")
	cp, err := c.Coupons.Get(ctx, q.Channel.ID, key)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	st, err := c.Coupons.Stats(ctx, q.Channel.ID, key)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	reds, err := c.Coupons.Redemptions(ctx, q.Channel.ID, key)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	loc := channelZone(q.Channel.TimeZone)
	page := cpnPage{C: cp, Stats: st, Remaining: remaining(q.Lang, cp, st), Validity: c.validity(q.Lang, loc, cp),
		Available: cp.Available(c.Clock.Now()), Postback: coupon.PostbackData(cp.Key), ImportText: importText, Problems: ps,
		RedeemKey: newRedeemKey()}
	for _, f := range []string{"code", "title", "valid_until"} {
		page.Vars = append(page.Vars, "{{coupon."+cp.Key+"."+f+"}}")
	}
	const shown = 20
	if len(reds) > shown {
		page.MoreRedeemed = len(reds) - shown
		reds = reds[len(reds)-shown:]
	}
	for i := len(reds) - 1; i >= 0; i-- { // newest first
		rd := reds[i]
		by := translate(q.Lang, "cpn.by.staff")
		if rd.By == coupon.ByPostback {
			by = translate(q.Lang, "cpn.by.postback")
		}
		page.Redemptions = append(page.Redemptions, cpnRedemption{FriendID: rd.FriendID, Number: rd.Number, By: by, At: zoneTime(q.Lang, loc, rd.RedeemedAt)})
	}
	qs := r.URL.Query()
	switch {
	case qs.Get("notice") == "saved":
		page.Notice = translate(q.Lang, "ct.saved")
	case qs.Has("added"):
		page.Notice = translate(q.Lang, "cpn.imported")
		page.Notice = strings.NewReplacer("{added}", qs.Get("added"), "{dup}", qs.Get("dup")).Replace(page.Notice)
	case qs.Get("redeemed") == "1":
		page.Notice = strings.ReplaceAll(translate(q.Lang, "cpn.redeemed"), "{n}", qs.Get("n"))
	case qs.Has("refused"):
		page.Notice, page.NoticeBad = keyed(q.Lang, "cpn.refuse.%s", refusalKey(qs.Get("refused"))), true
	}
	c.render(w, r, status, "coupon", cp.Title, q, page)
}

func newRedeemKey() string {
	var b [16]byte
	rand.Read(b[:])
	return "console-" + base64.RawURLEncoding.EncodeToString(b[:])
}

func (c *Console) couponImport(w http.ResponseWriter, r *http.Request, q *request) {
	ctx, key := r.Context(), r.PathValue("key")
	text := r.PostFormValue("codes")
	added, dups, err := c.Coupons.ImportCodes(ctx, q.Channel.ID, key, strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n"))
	if ps, ok := formProblems(q.Lang, err); ok {
		c.couponPage(w, r, q, http.StatusUnprocessableEntity, text, ps)
		return
	}
	if err == nil {
		err = c.DB.WriteTx(ctx, func(tx *store.Tx) error {
			return c.record(ctx, tx, r, q, audit.Record{Action: "coupon.import", Subject: "coupon:" + key,
				Detail: map[string]string{"added": strconv.Itoa(added), "duplicates": strconv.Itoa(dups)}})
		})
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, inChannel(q, "/coupons/"+url.PathEscape(key)+"?added="+strconv.Itoa(added)+"&dup="+strconv.Itoa(dups)), http.StatusSeeOther)
}

// refusals maps a redemption's refusal to the word the page shows.
var refusals = []struct {
	err  error
	name string
}{
	{coupon.ErrNotIssued, "notissued"}, {coupon.ErrNotAvailable, "notavailable"}, {coupon.ErrLimitReached, "limit"},
	{coupon.ErrKeyConflict, "conflict"}, {coupon.ErrUnknownCoupon, "unknown"}, {coupon.ErrInvalid, "invalid"},
}

func refusalKey(name string) string {
	for _, rf := range refusals {
		if rf.name == name {
			return name
		}
	}
	return "invalid"
}

func (c *Console) couponRedeem(w http.ResponseWriter, r *http.Request, q *request) {
	ctx, key := r.Context(), r.PathValue("key")
	back := inChannel(q, "/coupons/"+url.PathEscape(key))
	friendID, err := strconv.ParseInt(strings.TrimSpace(r.PostFormValue("friend")), 10, 64)
	if err != nil || friendID <= 0 {
		http.Redirect(w, r, back+"?refused=invalid", http.StatusSeeOther)
		return
	}
	var rd coupon.Redemption
	err = c.DB.WriteTx(ctx, func(tx *store.Tx) error {
		var err error
		rd, err = c.Coupons.Redeem(ctx, tx, q.Channel.ID, friendID, key, r.PostFormValue("rkey"),
			"staff:"+strconv.FormatInt(q.Member.ID, 10), c.Clock.Now())
		if err != nil {
			return err
		}
		return c.record(ctx, tx, r, q, audit.Record{Action: "coupon.redeem", Subject: audit.Subject("friend", friendID),
			Detail: map[string]string{"coupon": key}})
	})
	if coupon.IsRefusal(err) {
		for _, rf := range refusals {
			if errors.Is(err, rf.err) {
				http.Redirect(w, r, back+"?refused="+rf.name, http.StatusSeeOther)
				return
			}
		}
	}
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, back+"?redeemed=1&n="+strconv.Itoa(rd.Number), http.StatusSeeOther)
}
