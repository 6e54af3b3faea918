package friend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/ingest"
	"github.com/linestep/linestep/internal/store"
)

// Consent: a value of a special care-required field (要配慮個人情報: health, medical
// history, ...) is set only while the friend consents to its keeping (APPI art. 20(2)).
// The friend gives or withdraws consent by tapping a button whose postback data is
// ConsentPostbackData, or staff record the consent they obtained otherwise (on paper, in
// person); every change is a row with how it was given. Withdrawing deletes the value.

// How a consent was given or withdrawn.
const (
	ConsentByPostback = "postback" // the friend tapped a button in a message
	ConsentByStaff    = "staff"    // a staff member recorded what the friend said or signed
	ConsentByAPI      = "api"      // another system that asked the friend
)

// ErrNoConsent refuses a value of a special field the friend has not consented to keep.
var ErrNoConsent = errors.New("friend: the friend has not consented to keeping this special care-required field")

// Consent is where a friend's consent to one field stands, and how it got there.
type Consent struct {
	FieldID  int64
	Granted  bool
	Source   string
	Evidence string
	At       time.Time
}

const consentPrefix = "linestep:consent:"

// ConsentPostbackData is the postback data of a button by which the friend gives (grant)
// or withdraws consent to keeping the special field of that key.
func ConsentPostbackData(key string, grant bool) string {
	if grant {
		return consentPrefix + "grant:" + key
	}
	return consentPrefix + "withdraw:" + key
}

// RecordConsent records that the friend gave or withdrew consent to keeping a special
// field, how (source) and with what evidence (never the value). Withdrawing deletes the
// friend's value of the field.
func (s *Service) RecordConsent(ctx context.Context, q store.Querier, friendID int64, f Field, granted bool, source, evidence string, at time.Time) error {
	if f.Sensitivity != Special {
		return fmt.Errorf("%w: %s: consent is recorded for special care-required fields only", ErrInvalid, f.Key)
	}
	_, err := q.ExecContext(ctx, `INSERT INTO consents (friend_id, field_id, granted, source, evidence, at)
		SELECT f.id, ?, ?, ?, ?, ? FROM friends f WHERE f.id = ? AND f.channel_id = ?`,
		f.ID, granted, source, evidence, store.Millis(at), friendID, f.ChannelID)
	if err != nil {
		return fmt.Errorf("friend: record consent: %w", err)
	}
	if !granted {
		return s.ClearField(ctx, q, friendID, f.ID)
	}
	return nil
}

// ConsentOf returns where the friend's consent to the field stands; ok is false when
// none was ever recorded.
func (s *Service) ConsentOf(ctx context.Context, q store.Querier, friendID, fieldID int64) (c Consent, ok bool, err error) {
	var at int64
	err = q.QueryRowContext(ctx, `SELECT field_id, granted, source, evidence, at FROM consents WHERE friend_id = ? AND field_id = ?
		ORDER BY id DESC LIMIT 1`, friendID, fieldID).Scan(&c.FieldID, &c.Granted, &c.Source, &c.Evidence, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return Consent{}, false, nil
	}
	if err != nil {
		return Consent{}, false, fmt.Errorf("friend: consent: %w", err)
	}
	c.At = store.Time(at)
	return c, true, nil
}

// requireConsent refuses a value of a special field without the friend's consent.
func (s *Service) requireConsent(ctx context.Context, q store.Querier, friendID int64, f Field) error {
	if f.Sensitivity != Special {
		return nil
	}
	c, ok, err := s.ConsentOf(ctx, q, friendID, f.ID)
	if err != nil {
		return err
	}
	if !ok || !c.Granted {
		return fmt.Errorf("%w: %s", ErrNoConsent, f.Key)
	}
	return nil
}

// applyConsentPostback records a consent given or withdrawn by a tap on a button made
// with ConsentPostbackData, at the tap's own time. Data naming no special field of the
// channel is ignored (anyone can send any postback data).
func (s *Service) applyConsentPostback(ctx context.Context, tx *store.Tx, ev ingest.Event, friendID int64, data string) error {
	rest, ok := strings.CutPrefix(data, consentPrefix)
	if !ok {
		return nil
	}
	var key string
	var grant bool
	if key, ok = strings.CutPrefix(rest, "grant:"); ok {
		grant = true
	} else if key, ok = strings.CutPrefix(rest, "withdraw:"); !ok {
		return nil
	}
	f, err := s.FieldByKey(ctx, tx, ev.ChannelID, key)
	if errors.Is(err, store.ErrNotFound) || err == nil && f.Sensitivity != Special {
		return nil
	}
	if err != nil {
		return err
	}
	return s.RecordConsent(ctx, tx, friendID, f, grant, ConsentByPostback, "event:"+ev.EventID, ev.OccurredAt)
}

// ConsentHistory lists every consent a friend gave or withdrew, oldest first, with the
// key of its field.
func (s *Service) ConsentHistory(ctx context.Context, q store.Querier, friendID int64) (map[string][]Consent, error) {
	rows, err := q.QueryContext(ctx, `SELECT f.key, c.field_id, c.granted, c.source, c.evidence, c.at FROM consents c
		JOIN fields f ON f.id = c.field_id WHERE c.friend_id = ? ORDER BY c.id`, friendID)
	if err != nil {
		return nil, fmt.Errorf("friend: consent history: %w", err)
	}
	defer rows.Close()
	out := map[string][]Consent{}
	for rows.Next() {
		var key string
		var c Consent
		var at int64
		if err := rows.Scan(&key, &c.FieldID, &c.Granted, &c.Source, &c.Evidence, &at); err != nil {
			return nil, fmt.Errorf("friend: consent history: %w", err)
		}
		c.At = store.Time(at)
		out[key] = append(out[key], c)
	}
	return out, rows.Err()
}
