package coupon

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/store"
)

// MaxImport bounds the codes of one import: one transaction holds them all.
const MaxImport = 100_000

// maxLineProblems bounds the lines an import error lists; a wrong file tends to be
// wrong on every line.
const maxLineProblems = 20

// ImportCodes adds codes to an imported coupon's pool. codes[i] is line i+1 of the
// staff's file; surrounding spaces are trimmed and blank lines skipped. A code already in
// the pool, or earlier in the file, is counted in duplicates and not added. Any invalid
// line refuses the whole import with message.Problems naming the lines (never the codes).
func (s *Service) ImportCodes(ctx context.Context, channelID, key string, codes []string) (added, duplicates int, err error) {
	var ps message.Problems
	bad, inFile := 0, 0
	seen := make(map[string]bool, len(codes))
	unique := make([]string, 0, len(codes))
	for i, raw := range codes {
		code := strings.TrimSpace(raw)
		switch {
		case code == "":
		case !ValidCode(code):
			bad++
			if bad <= maxLineProblems {
				ps = append(ps, message.Problem{Path: fmt.Sprintf("line %d", i+1),
					JA: fmt.Sprintf("%d行目: コードは英数字・「_」「-」の1〜%d文字にしてください", i+1, maxCodeLen),
					EN: fmt.Sprintf("line %d: a code must be 1 to %d of A-Z, a-z, 0-9, _ and -", i+1, maxCodeLen)})
			}
		case seen[code]:
			inFile++
		default:
			seen[code] = true
			unique = append(unique, code)
		}
	}
	if bad > maxLineProblems {
		ps = append(ps, message.Problem{Path: "lines",
			JA: fmt.Sprintf("ほかに%d行に誤りがあります", bad-maxLineProblems),
			EN: fmt.Sprintf("%d more lines are wrong", bad-maxLineProblems)})
	}
	switch {
	case len(ps) > 0:
		return 0, 0, ps
	case len(unique) == 0:
		return 0, 0, message.Problems{{Path: "codes", JA: "コードがありません。1行に1つずつ書いてください",
			EN: "there are no codes; write one code per line"}}
	case len(unique) > MaxImport:
		return 0, 0, message.Problems{{Path: "codes",
			JA: fmt.Sprintf("一度に取り込めるコードは%d件までです（%d件あります）。分けて取り込んでください", MaxImport, len(unique)),
			EN: fmt.Sprintf("one import takes at most %d codes (this one has %d); split the file", MaxImport, len(unique))}}
	}
	err = s.db.WriteTx(ctx, func(tx *store.Tx) error {
		added = 0
		c, err := get(ctx, tx, channelID, key)
		if err != nil {
			return err
		}
		if c.CodePolicy != PolicyImported {
			return message.Problems{{Path: "code_policy",
				JA: "コードを取り込めるのは、方式が imported のクーポンだけです",
				EN: "codes can only be imported into a coupon whose code policy is imported"}}
		}
		now := store.Millis(s.clock.Now())
		const chunk = 500
		for start := 0; start < len(unique); start += chunk {
			part := unique[start:min(start+chunk, len(unique))]
			args := make([]any, 0, 3*len(part))
			for _, code := range part {
				args = append(args, c.ID, code, now)
			}
			res, err := tx.ExecContext(ctx, "INSERT INTO coupon_codes (coupon_id, code, created_at) VALUES "+
				store.Placeholders(len(part), 3)+" ON CONFLICT (coupon_id, code) DO NOTHING", args...)
			if err != nil {
				return fmt.Errorf("coupon: import codes into %s: %w", key, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("coupon: import codes into %s: %w", key, err)
			}
			added += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return added, inFile + len(unique) - added, nil
}

// codeAlphabet has no 0, 1, I or O: a code is read out and typed at the till. 32 symbols
// make a random byte's low five bits an unbiased pick.
const codeAlphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

const generatedLen = 8

func newCode() string {
	var b [generatedLen]byte
	rand.Read(b[:]) // never fails (Go 1.24+)
	for i := range b {
		b[i] = codeAlphabet[b[i]&31]
	}
	return string(b[:])
}

// maxGenerateTries: 32^8 codes make a collision rare even with a million issued; several
// in a row mean something else is wrong.
const maxGenerateTries = 10

// takeCode gives the friend a code of c: the shared one, a new unique one, or the next
// free imported one.
func takeCode(ctx context.Context, q store.Querier, c Coupon, friendID int64, now time.Time) (string, error) {
	switch c.CodePolicy {
	case PolicyShared:
		return c.SharedCode, nil
	case PolicyGenerated:
		for range maxGenerateTries {
			code := newCode()
			// DO NOTHING rather than an error: on PostgreSQL a failed statement would
			// abort the caller's whole transaction.
			res, err := q.ExecContext(ctx, `INSERT INTO coupon_codes (coupon_id, code, friend_id, assigned_at, created_at)
				VALUES (?, ?, ?, ?, ?) ON CONFLICT (coupon_id, code) DO NOTHING`,
				c.ID, code, friendID, store.Millis(now), store.Millis(now))
			if err != nil {
				return "", fmt.Errorf("coupon: generate code for %s: %w", c.Key, err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				return code, nil
			}
		}
		return "", fmt.Errorf("coupon: generate code for %s: %d collisions in a row", c.Key, maxGenerateTries)
	case PolicyImported:
		pick := "SELECT id FROM coupon_codes WHERE coupon_id = ? AND assigned_at IS NULL ORDER BY id LIMIT 1"
		if q.Dialect() == store.Postgres {
			// Instances issuing at once each take a code the others have not locked.
			// SQLite has one writer.
			pick += " FOR UPDATE SKIP LOCKED"
		}
		var code string
		err := q.QueryRowContext(ctx, "UPDATE coupon_codes SET friend_id = ?, assigned_at = ? WHERE id = ("+pick+") RETURNING code",
			friendID, store.Millis(now), c.ID).Scan(&code)
		if isNoRows(err) {
			return "", fmt.Errorf("coupon %s: %w", c.Key, ErrExhausted)
		}
		if err != nil {
			return "", fmt.Errorf("coupon: take code of %s: %w", c.Key, err)
		}
		return code, nil
	}
	return "", fmt.Errorf("coupon %s: unknown code policy %q", c.Key, c.CodePolicy)
}
