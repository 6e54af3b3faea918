package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/linestep/linestep/internal/audit"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/staff"
	"github.com/linestep/linestep/internal/store"
)

// TokenPrefix starts every API token, so a leaked one is recognisable (secret scanners,
// logs) and a console session token is never mistaken for it.
const TokenPrefix = "lst_"

// Roles an API token may carry: the staff roles, so the permissions of both will be one
// table once the staff roles work maps roles to permissions.
var Roles = []staff.Role{staff.Owner, staff.Admin, staff.Operator, staff.Analyst}

var (
	// ErrInvalidToken is returned for a missing, unknown or revoked token: one error for
	// all, so a caller learns nothing about which tokens exist.
	ErrInvalidToken = errors.New("api: invalid or revoked token")
	// ErrInvalid wraps validation failures of Create.
	ErrInvalid = errors.New("api: invalid")
)

// Token is an API token as stored: never the token itself.
type Token struct {
	ID         int64
	Name       string
	Role       staff.Role
	ChannelID  string // empty: every channel
	CreatedAt  time.Time
	LastUsedAt time.Time
	RevokedAt  time.Time
}

// touchEvery limits writes: a busy token updates last_used_at at most this often.
const touchEvery = time.Minute

// Tokens creates, lists, revokes and checks API tokens.
type Tokens struct {
	db    *store.DB
	clock clock.Clock
	// Audit, when set, records token use.
	Audit *audit.Log
}

// Client is where a request came from, for the audit trail.
type Client struct{ Addr, UserAgent string }

// NewTokens returns the token service.
func NewTokens(db *store.DB, clk clock.Clock) *Tokens { return &Tokens{db: db, clock: clk} }

// Create makes a token and returns it with the secret, which is not kept: the caller
// shows it once. channelID "" lets the token act on every channel.
func (t *Tokens) Create(ctx context.Context, name string, role staff.Role, channelID string) (Token, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 100 || strings.ContainsAny(name, "\x00\r\n\t") {
		return Token{}, "", fmt.Errorf("%w: a token name must be 1 to 100 characters on one line", ErrInvalid)
	}
	if !slices.Contains(Roles, role) {
		// A custom role made in the console.
		var one int
		err := t.db.QueryRowContext(ctx, "SELECT 1 FROM roles WHERE name = ?", string(role)).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return Token{}, "", fmt.Errorf("%w: role %q is not one of owner, admin, operator, analyst or a custom role", ErrInvalid, role)
		}
		if err != nil {
			return Token{}, "", fmt.Errorf("api: create token: %w", err)
		}
	}
	b := make([]byte, 32)
	rand.Read(b)
	secret := TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	tok := Token{Name: name, Role: role, ChannelID: channelID, CreatedAt: t.clock.Now()}
	var ch any
	if channelID != "" {
		ch = channelID
	}
	err := t.db.WriteTx(ctx, func(tx *store.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO api_tokens (name, token_hash, role, channel_id, created_at)
			VALUES (?, ?, ?, ?, ?) RETURNING id`, name, hashToken(secret), string(role), ch, store.Millis(tok.CreatedAt)).Scan(&tok.ID)
	})
	if err != nil {
		return Token{}, "", fmt.Errorf("api: create token: %w", err)
	}
	return tok, secret, nil
}

const tokenColumns = "id, name, role, channel_id, created_at, last_used_at, revoked_at"

func scanToken(row interface{ Scan(...any) error }) (Token, error) {
	var tok Token
	var role string
	var ch sql.NullString
	var created int64
	var used, revoked sql.NullInt64
	if err := row.Scan(&tok.ID, &tok.Name, &role, &ch, &created, &used, &revoked); err != nil {
		return Token{}, err
	}
	tok.Role, tok.ChannelID = staff.Role(role), ch.String
	tok.CreatedAt, tok.LastUsedAt, tok.RevokedAt = store.Time(created), store.NullTime(used), store.NullTime(revoked)
	return tok, nil
}

// List returns every token, revoked ones included, oldest first.
func (t *Tokens) List(ctx context.Context) ([]Token, error) {
	rows, err := t.db.QueryContext(ctx, "SELECT "+tokenColumns+" FROM api_tokens ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("api: list tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		tok, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("api: list tokens: %w", err)
		}
		out = append(out, tok)
	}
	return out, rows.Err()
}

// Revoke ends a token for good. Revoking a revoked token changes nothing.
func (t *Tokens) Revoke(ctx context.Context, id int64) error {
	res, err := t.db.ExecContext(ctx, "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
		store.Millis(t.clock.Now()), id)
	if err != nil {
		return fmt.Errorf("api: revoke token: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("token %d: %w", id, store.ErrNotFound)
	}
	return nil
}

// Authenticate returns the live token with this secret, and records its use.
func (t *Tokens) Authenticate(ctx context.Context, secret string, client Client) (Token, error) {
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) > 100 {
		return Token{}, ErrInvalidToken
	}
	tok, err := scanToken(t.db.QueryRowContext(ctx, "SELECT "+tokenColumns+" FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
		hashToken(secret)))
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, ErrInvalidToken
	}
	if err != nil {
		return Token{}, fmt.Errorf("api: authenticate: %w", err)
	}
	now := t.clock.Now()
	if now.Sub(tok.LastUsedAt) >= touchEvery {
		// The condition keeps several instances from all writing in the same minute. The
		// audit trail gets a token.use record with the same rhythm: when, and that the
		// token was in use, without a row per request.
		err := t.db.WriteTx(ctx, func(tx *store.Tx) error {
			res, err := tx.ExecContext(ctx, "UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)",
				store.Millis(now), tok.ID, store.Millis(now.Add(-touchEvery)))
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 || t.Audit == nil {
				return nil
			}
			_, err = t.Audit.Append(ctx, tx, audit.Record{Actor: audit.Token(tok.ID, tok.Name), Action: audit.TokenUse, ChannelID: tok.ChannelID,
				ClientAddr: client.Addr, UserAgent: client.UserAgent})
			return err
		})
		if err != nil {
			return Token{}, fmt.Errorf("api: record token use: %w", err)
		}
		tok.LastUsedAt = now
	}
	return tok, nil
}

func hashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}
