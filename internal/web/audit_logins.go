package web

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/linestep/linestep/internal/access"
	"github.com/linestep/linestep/internal/staff"
)

// Everyone's sign-in history and the suspicious sign-ins still open, for those who
// oversee the account (owners): "check the login history for suspicious access".

func (c *Console) loginsRoutes(mux *http.ServeMux) {
	c.handle(mux, "GET", "/console/logins", access.LoginsReadAll, c.logins)
	c.handle(mux, "POST", "/console/logins/flags/{id}/ack", access.LoginsReadAll, c.ackFlag)
}

const loginsPageSize = 50

// loginOutcomes are the outcomes the filter offers.
var loginOutcomes = []staff.Outcome{staff.OutcomeSuccess, staff.OutcomeBadCredentials, staff.OutcomeBadCode,
	staff.OutcomeLocked, staff.OutcomeThrottled, staff.OutcomeDisabled, staff.OutcomeRecoveryUsed, staff.OutcomeSecondFactor}

type loginsView struct {
	Flags    []flagRow
	History  []attemptRow
	Members  []choice
	Outcomes []choice
	Next     string
	Done     bool
}

func (c *Console) logins(w http.ResponseWriter, r *http.Request, q *request) {
	ctx := r.Context()
	qs := r.URL.Query()
	members, err := c.Staff.List(ctx)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	names := map[int64]string{}
	var v loginsView
	for _, m := range members {
		names[m.ID] = m.Name + " (" + m.Login + ")"
		id := strconv.FormatInt(m.ID, 10)
		v.Members = append(v.Members, choice{Value: id, Label: names[m.ID], On: id == qs.Get("member")})
	}
	f := staff.HistoryFilter{Page: staff.Page{Limit: loginsPageSize + 1}}
	f.StaffID, _ = strconv.ParseInt(qs.Get("member"), 10, 64)
	f.BeforeID, _ = strconv.ParseInt(qs.Get("before"), 10, 64)
	if o := staff.Outcome(qs.Get("outcome")); slices.Contains(loginOutcomes, o) {
		f.Outcome = o
	}
	for _, o := range loginOutcomes {
		v.Outcomes = append(v.Outcomes, choice{Value: string(o), Label: label(q.Lang, "outcome.", string(o)), On: o == f.Outcome})
	}
	open, err := c.Staff.Flags(ctx, staff.FlagFilter{Unacknowledged: true, Page: staff.Page{Limit: 500}})
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	v.Flags = flagRows(q.Lang, open, names)
	history, err := c.Staff.AllHistory(ctx, f)
	if err != nil {
		c.fail(w, r, q, err)
		return
	}
	if len(history) > loginsPageSize {
		history = history[:loginsPageSize]
		next := url.Values{}
		for _, k := range []string{"member", "outcome"} {
			if qs.Get(k) != "" {
				next.Set(k, qs.Get(k))
			}
		}
		next.Set("before", strconv.FormatInt(history[len(history)-1].ID, 10))
		v.Next = next.Encode()
	}
	v.History = attemptRows(q.Lang, history, open, names)
	v.Done = qs.Get("done") == "flag"
	c.render(w, r, http.StatusOK, "logins", "logins.title", q, v)
}

// ackFlag records that the owner has looked at a suspicious sign-in.
func (c *Console) ackFlag(w http.ResponseWriter, r *http.Request, q *request) {
	id, ok := pathInt(r, "id")
	if !ok {
		c.fail(w, r, q, errNotFound)
		return
	}
	if err := c.Staff.AcknowledgeFlag(r.Context(), id, q.Member.ID); err != nil {
		c.fail(w, r, q, err)
		return
	}
	http.Redirect(w, r, "/console/logins?done=flag", http.StatusSeeOther)
}
