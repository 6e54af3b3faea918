// Package audit owns the audit log: an append-only record of who did what, to which
// subject, when and from where — sign-ins, every view, reveal and export of personal data,
// role, permission and settings changes, deletions, API token use. It is the "access log"
// of APPI's security control measures, and it is kept: no retention applies to it.
//
// Every record is hash-chained to the one before it (see Verify), the table refuses UPDATE
// and DELETE by database triggers, and a record is appended in the same transaction as
// the act it records, so that the two commit or roll back together.
//
// A record never holds a friend's personal data: it names the subject by ID ("friend:42")
// and the fields by their keys, never their values. Callers must keep it that way; the
// types here leave no place for values.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/store"
)

// Action is what was done, as a stable dotted name. The constants are the ones linestep
// writes; a new one needs no change here, only a name of the same form: lower-case
// words of letters, digits and '_', joined by dots.
type Action string

const (
	SignInSuccess    Action = "signin.success"
	SignInFailure    Action = "signin.failure"
	SignOut          Action = "signout"
	PasswordChange   Action = "password.change"
	TwoFactorEnable  Action = "twofactor.enable"
	TwoFactorDisable Action = "twofactor.disable"

	FriendView    Action = "friend.view"
	FriendReveal  Action = "friend.reveal" // unmasking a masked field; detail "reason"
	FriendUpdate  Action = "friend.update"
	FriendDelete  Action = "friend.delete"
	FriendsExport Action = "friends.export"
	FriendsImport Action = "friends.import"

	StaffCreate      Action = "staff.create"
	StaffDisable     Action = "staff.disable"
	StaffDelete      Action = "staff.delete"
	RoleChange       Action = "role.change"
	PermissionChange Action = "permission.change"
	SettingsChange   Action = "settings.change"

	ChannelCreate  Action = "channel.create"
	ChannelDelete  Action = "channel.delete"
	ScenarioDelete Action = "scenario.delete"

	TokenCreate Action = "token.create"
	TokenRevoke Action = "token.revoke"
	TokenUse    Action = "token.use"

	RetentionDelete Action = "retention.delete"
	AuditExport     Action = "audit.export"
)

// ActorKind says what kind of actor acted.
type ActorKind string

const (
	ActorStaff  ActorKind = "staff"  // a person signed in to the console
	ActorToken  ActorKind = "token"  // a program calling the JSON API with a token
	ActorSystem ActorKind = "system" // linestep itself: jobs, the command line
)

// Actor is who acted: a staff member (ID and login), an API token (ID and name) or the
// system (a name such as "retention" or "cli").
type Actor struct {
	Kind ActorKind
	ID   string
	Name string
}

// Staff is a staff member as an actor.
func Staff(id int64, login string) Actor {
	return Actor{Kind: ActorStaff, ID: strconv.FormatInt(id, 10), Name: login}
}

// Token is an API token as an actor.
func Token(id int64, name string) Actor {
	return Actor{Kind: ActorToken, ID: strconv.FormatInt(id, 10), Name: name}
}

// System is linestep itself as an actor; name says which part (e.g. "retention", "cli").
func System(name string) Actor { return Actor{Kind: ActorSystem, Name: name} }

// Subject names what an act was done to, by kind and ID: Subject("friend", 42) is
// "friend:42". It is how records name a friend: by ID, never by name.
func Subject(kind string, id int64) string { return kind + ":" + strconv.FormatInt(id, 10) }

// Record is one entry of the log.
type Record struct {
	// Seq numbers the records 1, 2, 3, ... without gaps. Set by Append.
	Seq int64
	// At is when the record was appended, from the log's clock, to the millisecond. Set
	// by Append.
	At     time.Time
	Actor  Actor
	Action Action
	// ChannelID is the LINE channel the act concerned, if any.
	ChannelID string
	// Subject is what the act was done to, e.g. "friend:42" (see Subject).
	Subject string
	// Fields are the keys of the fields seen, revealed, exported or changed; never values.
	Fields []string
	// ClientAddr and UserAgent say where the act came from.
	ClientAddr string
	UserAgent  string
	// Detail holds a few non-personal facts: a reveal's reason as written by staff, old
	// and new role names, counts. Never a friend's data.
	Detail map[string]string
	// PrevHash is the previous record's Hash (Genesis for the first); Hash is this
	// record's. Both hex SHA-256, set by Append.
	PrevHash string
	Hash     string
}

// Genesis is the PrevHash of the first record.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// ErrInvalidRecord is returned by Append for a record without an actor kind or with an
// action name not of the dotted form.
var ErrInvalidRecord = errors.New("audit: invalid record")

// Log appends to, verifies and reads the audit log.
type Log struct {
	db    *store.DB
	clock clock.Clock
	// page is how many records Verify and ExportCSV read per query. Paging by seq keeps
	// memory flat and holds no read transaction open for the minutes a long log takes.
	page int
}

// NewLog returns the audit log of db; records are timed by clk.
func NewLog(db *store.DB, clk clock.Clock) *Log { return &Log{db: db, clock: clk, page: 2000} }

// lockKey is the PostgreSQL advisory lock that serialises appends: "auditlog" as a
// 64-bit number, distinct from the migration lock.
const lockKey int64 = 0x61756469746c6f67

// AppendFunc appends a record inside tx: how services that do not hold the Log (the
// retention jobs, sign-in) write to it, in the transaction of what they record.
type AppendFunc func(ctx context.Context, tx *store.Tx, rec Record) error

// Append adds rec to the log inside tx, the transaction of the act it records, and
// returns it as stored. Appends are serialised until tx ends (on PostgreSQL by an
// advisory lock, on SQLite by its single writer), so that the chain never forks: append
// late in the transaction, after the act's own writes, to hold the lock briefly.
func (l *Log) Append(ctx context.Context, tx *store.Tx, rec Record) (Record, error) {
	row, err := l.prepare(rec)
	if err != nil {
		return Record{}, err
	}
	if tx.Dialect() == store.Postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", lockKey); err != nil {
			return Record{}, fmt.Errorf("audit: take append lock: %w", err)
		}
	}
	// Read after the lock: under READ COMMITTED this statement sees the last append
	// committed by whoever held the lock before us.
	var last int64
	prev := Genesis
	err = tx.QueryRowContext(ctx, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").Scan(&last, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Record{}, fmt.Errorf("audit: read the last record: %w", err)
	}
	row.seq = last + 1
	row.prevHash = prev
	row.hash = row.chainHash()
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_log (`+columns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, row.args()...); err != nil {
		return Record{}, fmt.Errorf("audit: append %s: %w", row.action, err)
	}
	return row.record(), nil
}

// Add appends rec in a transaction of its own, for acts that write nothing else (a view,
// a sign-in failure).
func (l *Log) Add(ctx context.Context, rec Record) (Record, error) {
	var out Record
	err := l.db.WriteTx(ctx, func(tx *store.Tx) error {
		var err error
		out, err = l.Append(ctx, tx, rec)
		return err
	})
	return out, err
}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)

// Length limits, in bytes. Values are cut rather than refused: much of a record comes
// from outside (a user agent, an attempted login), and an over-long header must not make
// the act itself fail.
const (
	maxName   = 100
	maxID     = 200
	maxAgent  = 512
	maxDetail = 1000
)

// prepare checks rec, cleans its strings and encodes it as it will be stored.
func (l *Log) prepare(rec Record) (row, error) {
	if !namePattern.MatchString(string(rec.Action)) || len(rec.Action) > maxName {
		return row{}, fmt.Errorf("%w: action %q is not a dotted lower-case name", ErrInvalidRecord, rec.Action)
	}
	if !namePattern.MatchString(string(rec.Actor.Kind)) || len(rec.Actor.Kind) > maxName {
		return row{}, fmt.Errorf("%w: actor kind %q", ErrInvalidRecord, rec.Actor.Kind)
	}
	fields := make([]string, 0, len(rec.Fields))
	seen := make(map[string]bool, len(rec.Fields))
	for _, f := range rec.Fields {
		f = clean(f, maxName)
		if f != "" && !seen[f] {
			seen[f] = true
			fields = append(fields, f)
		}
	}
	detail := make(map[string]string, len(rec.Detail))
	for k, v := range rec.Detail {
		if k = clean(k, maxName); k != "" {
			detail[k] = clean(v, maxDetail)
		}
	}
	fieldsJSON, err := encodeJSON(fields)
	if err != nil {
		return row{}, err
	}
	detailJSON, err := encodeJSON(detail)
	if err != nil {
		return row{}, err
	}
	return row{
		createdAt:  store.Millis(l.clock.Now()),
		actorKind:  string(rec.Actor.Kind),
		actorID:    clean(rec.Actor.ID, maxID),
		actorName:  clean(rec.Actor.Name, maxID),
		action:     string(rec.Action),
		channelID:  clean(rec.ChannelID, maxID),
		subject:    clean(rec.Subject, maxID),
		fields:     fieldsJSON,
		clientAddr: clean(rec.ClientAddr, maxID),
		userAgent:  clean(rec.UserAgent, maxAgent),
		detail:     detailJSON,
	}, nil
}

// encodeJSON encodes v deterministically (maps by sorted key) and readably (no \u003c
// for '<'): the stored text is what the hash covers.
func encodeJSON(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("audit: encode: %w", err)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// clean makes s storable on both engines and bounded: valid UTF-8 (PostgreSQL refuses
// anything else), no NUL bytes (likewise), at most max bytes, cut at a character boundary.
func clean(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) > max {
		for max > 0 && !utf8.RuneStart(s[max]) {
			max--
		}
		s = s[:max]
	}
	return s
}

// row is a record as stored: the exact column values the hash covers.
type row struct {
	seq, createdAt                        int64
	actorKind, actorID, actorName, action string
	channelID, subject, fields            string
	clientAddr, userAgent, detail         string
	prevHash, hash                        string
}

// columns lists the columns in the order of row.args and row.scan.
const columns = `seq, created_at, actor_kind, actor_id, actor_name, action, channel_id, subject,
	fields, client_addr, user_agent, detail, prev_hash, hash`

func (r *row) args() []any {
	return []any{r.seq, r.createdAt, r.actorKind, r.actorID, r.actorName, r.action, r.channelID, r.subject,
		r.fields, r.clientAddr, r.userAgent, r.detail, r.prevHash, r.hash}
}

func (r *row) scan(s interface{ Scan(...any) error }) error {
	return s.Scan(&r.seq, &r.createdAt, &r.actorKind, &r.actorID, &r.actorName, &r.action, &r.channelID, &r.subject,
		&r.fields, &r.clientAddr, &r.userAgent, &r.detail, &r.prevHash, &r.hash)
}

// hashDomain starts every hashed message, so that a hash of this log is never a hash of
// anything else, and a future encoding can be told apart.
const hashDomain = "linestep audit record v1"

// chainHash is the record's hash: SHA-256 over the domain string, the previous record's
// hash and every column of this one, in the order of the table, each as its length (8
// bytes, big-endian) followed by its bytes; numbers in decimal. Length prefixes make the
// encoding unambiguous: no two different records encode alike, whatever their text.
func (r *row) chainHash() string {
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put(hashDomain)
	put(r.prevHash)
	put(strconv.FormatInt(r.seq, 10))
	put(strconv.FormatInt(r.createdAt, 10))
	for _, s := range []string{r.actorKind, r.actorID, r.actorName, r.action, r.channelID, r.subject,
		r.fields, r.clientAddr, r.userAgent, r.detail} {
		put(s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// record decodes a stored row. Unreadable JSON (possible only if someone wrote the table
// by hand, which Verify reports) leaves Fields or Detail empty rather than failing a page.
func (r *row) record() Record {
	rec := Record{
		Seq:        r.seq,
		At:         store.Time(r.createdAt),
		Actor:      Actor{Kind: ActorKind(r.actorKind), ID: r.actorID, Name: r.actorName},
		Action:     Action(r.action),
		ChannelID:  r.channelID,
		Subject:    r.subject,
		ClientAddr: r.clientAddr,
		UserAgent:  r.userAgent,
		PrevHash:   r.prevHash,
		Hash:       r.hash,
	}
	_ = json.Unmarshal([]byte(r.fields), &rec.Fields)
	_ = json.Unmarshal([]byte(r.detail), &rec.Detail)
	return rec
}
