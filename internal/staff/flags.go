package staff

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/store"
)

// FlagKind is why a sign-in looked suspicious.
type FlagKind string

const (
	// FlagNewDevice: a successful sign-in from a browser and address not seen before for
	// that member.
	FlagNewDevice FlagKind = "new_device"
	// FlagAccountFailures: a burst of failures on one login; it was locked.
	FlagAccountFailures FlagKind = "account_failures"
	// FlagAddressFailures: a burst of failures from one address; it is throttled.
	FlagAddressFailures FlagKind = "address_failures"
	// FlagSuccessAfterFailures: the right password right after many wrong ones; the
	// member must change the password.
	FlagSuccessAfterFailures FlagKind = "success_after_failures"
)

// Flag is a suspicious sign-in, kept for owners to look at and acknowledge.
type Flag struct {
	ID         int64
	Kind       FlagKind
	At         time.Time
	StaffID    int64 // 0 when no member is concerned (an address, an unknown login)
	Login      string
	ClientAddr string
	UserAgent  string
	Detail     string // English, for the record
	// AcknowledgedAt is zero until someone acknowledges the flag.
	AcknowledgedAt time.Time
	AcknowledgedBy int64
}

// raise records a flag in tx and notifies of it once tx has committed.
func (s *Service) raise(ctx context.Context, tx *store.Tx, f Flag) error {
	err := tx.QueryRowContext(ctx, `INSERT INTO staff_security_flags (kind, at, staff_id, login, client_addr, user_agent, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		f.Kind, store.Millis(f.At), nullID(f.StaffID), f.Login, f.ClientAddr, f.UserAgent, f.Detail).Scan(&f.ID)
	if err != nil {
		return fmt.Errorf("staff: record security flag: %w", err)
	}
	s.Logger.Warn("staff: suspicious sign-in", "flag_id", f.ID, "kind", string(f.Kind), "staff_id", f.StaffID)
	tx.AfterCommit(func() { s.notify(f) })
	return nil
}

// notifyTimeout bounds one notification; it runs apart from the sign-in it is about.
const notifyTimeout = 10 * time.Second

// notify hands a flag to the Notifier without making the sign-in wait for it.
func (s *Service) notify(f Flag) {
	if s.Notifier == nil {
		return
	}
	s.notifying.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		defer cancel()
		if err := s.Notifier.Notify(ctx, f); err != nil {
			s.Logger.Error("staff: security notification failed", "flag_id", f.ID, "kind", string(f.Kind), "err", err)
		}
	})
}

// FlagFilter selects flags; zero fields select everything.
type FlagFilter struct {
	StaffID        int64
	Unacknowledged bool
	Page
}

// Flags returns suspicious sign-ins, newest first.
func (s *Service) Flags(ctx context.Context, f FlagFilter) ([]Flag, error) {
	var where []string
	var args []any
	if f.StaffID != 0 {
		where, args = append(where, "staff_id = ?"), append(args, f.StaffID)
	}
	if f.Unacknowledged {
		where = append(where, "acknowledged_at IS NULL")
	}
	if f.BeforeID != 0 {
		where, args = append(where, "id < ?"), append(args, f.BeforeID)
	}
	q := "SELECT id, kind, at, staff_id, login, client_addr, user_agent, detail, acknowledged_at, acknowledged_by FROM staff_security_flags"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT %d", f.limit())
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("staff: security flags: %w", err)
	}
	defer rows.Close()
	var out []Flag
	for rows.Next() {
		var fl Flag
		var at int64
		var staffID, ackAt, ackBy sql.NullInt64
		if err := rows.Scan(&fl.ID, &fl.Kind, &at, &staffID, &fl.Login, &fl.ClientAddr, &fl.UserAgent, &fl.Detail, &ackAt, &ackBy); err != nil {
			return nil, fmt.Errorf("staff: security flags: %w", err)
		}
		fl.At, fl.StaffID, fl.AcknowledgedAt, fl.AcknowledgedBy = store.Time(at), staffID.Int64, store.NullTime(ackAt), ackBy.Int64
		out = append(out, fl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("staff: security flags: %w", err)
	}
	return out, nil
}

// AcknowledgeFlag records that staff member by has looked at a flag. It returns
// store.ErrNotFound for an unknown or already acknowledged flag.
func (s *Service) AcknowledgeFlag(ctx context.Context, flagID, by int64) error {
	res, err := s.db.ExecContext(ctx, "UPDATE staff_security_flags SET acknowledged_at = ?, acknowledged_by = ? WHERE id = ? AND acknowledged_at IS NULL",
		store.Millis(s.clock.Now()), nullID(by), flagID)
	if err != nil {
		return fmt.Errorf("staff: acknowledge flag: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("staff: flag %d: %w", flagID, store.ErrNotFound)
	}
	return nil
}

// Notifier is told of each suspicious sign-in after it is recorded. It runs apart from
// the sign-in, under a timeout; its errors are logged.
type Notifier interface {
	Notify(ctx context.Context, f Flag) error
}

// WebhookNotifier posts each flag as JSON to a URL (a chat webhook, an alerting
// service). The body names the staff member and the client, nothing about friends.
type WebhookNotifier struct {
	URL    string
	Client *http.Client // nil: a client with a 10 s timeout
}

// webhookBody is what WebhookNotifier posts. text is a one-line summary in Japanese and
// English, which chat webhooks (Slack and alike) show as is.
type webhookBody struct {
	Event      string    `json:"event"`
	ID         int64     `json:"id"`
	Kind       FlagKind  `json:"kind"`
	At         time.Time `json:"at"`
	StaffID    int64     `json:"staff_id,omitempty"`
	Login      string    `json:"login,omitempty"`
	ClientAddr string    `json:"client_addr,omitempty"`
	UserAgent  string    `json:"user_agent,omitempty"`
	Detail     string    `json:"detail"`
	Text       string    `json:"text"`
}

var flagTitles = map[FlagKind]string{
	FlagNewDevice:            "新しい端末からのサインイン / Sign-in from a new device",
	FlagAccountFailures:      "サインインの失敗が続いたためロックしました / Login locked after repeated failures",
	FlagAddressFailures:      "同じアドレスからのサインイン失敗が続いています / Repeated failures from one address",
	FlagSuccessAfterFailures: "失敗続きの後にサインイン成功、パスワード変更を求めます / Sign-in after many failures; password change required",
}

// Notify implements Notifier.
func (w *WebhookNotifier) Notify(ctx context.Context, f Flag) error {
	text := "linestep: " + flagTitles[f.Kind]
	if f.Login != "" {
		text += " (" + f.Login + ")"
	}
	body, err := json.Marshal(webhookBody{Event: "staff.security_flag", ID: f.ID, Kind: f.Kind, At: f.At.UTC(),
		StaffID: f.StaffID, Login: f.Login, ClientAddr: f.ClientAddr, UserAgent: f.UserAgent, Detail: f.Detail, Text: text})
	if err != nil {
		return fmt.Errorf("staff: webhook body: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return errors.New("staff: webhook: invalid URL") // the URL may hold a secret: not echoed
	}
	req.Header.Set("Content-Type", "application/json")
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: notifyTimeout}
	}
	resp, err := client.Do(req)
	if err != nil {
		// A url.Error repeats the URL, and webhook URLs often carry their secret in the
		// path: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("staff: webhook: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("staff: webhook answered %s", resp.Status)
	}
	return nil
}
