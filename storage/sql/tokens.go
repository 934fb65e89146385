package sql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// The hot token writes, prepared at open (see writeStmt).
const (
	deleteTokenQuery     = `DELETE FROM tokens WHERE kind = $1 AND signature = $2`
	rotateTokenQuery     = `UPDATE tokens SET active = FALSE, rotated_at = $3, successor = $4 WHERE kind = $1 AND signature = $2 AND active`
	deactivateGrantQuery = `UPDATE tokens SET active = FALSE WHERE kind = $1 AND request_id = $2 AND active = TRUE`
	deleteGrantQuery     = `DELETE FROM tokens WHERE kind = $1 AND request_id = $2`
)

func scanToken(row scanner) (storage.Token, error) {
	var t storage.Token
	err := row.Scan(&t.Kind, &t.Signature, &t.RequestID, &t.ClientID, &t.Subject, &t.Active,
		timeCol{&t.RequestedAt}, timeCol{&t.ExpiresAt}, &t.Payload, &t.StatusList, &t.StatusIndex, nullTimeCol{&t.RotatedAt}, &t.Successor)
	return t, err
}

// CreateToken stores a new token record; a taken (Kind, Signature) gives
// ErrAlreadyExists. On PostgreSQL it first takes the grant's lock
// exclusively and its subject's and client's locks shared (see doc.go).
func (s *Store) CreateToken(ctx context.Context, t storage.Token) error {
	_, err := s.insertToken(ctx, "create token", s.d.createToken, t)
	return err
}

// CreateTokenIfAbsent is CreateToken (locks included) with ON CONFLICT DO
// NOTHING: a taken (Kind, Signature) stores nothing and reports false.
func (s *Store) CreateTokenIfAbsent(ctx context.Context, t storage.Token) (bool, error) {
	n, err := s.insertToken(ctx, "create token if absent", s.d.createTokenIfAbsent, t)
	return n == 1, err
}

// insertToken runs an insert of a token record (query takes the record's
// columns in order) and returns the rows inserted.
func (s *Store) insertToken(ctx context.Context, what, query string, t storage.Token) (int64, error) {
	payload := t.Payload
	if payload == nil {
		payload = []byte{} // the column is NOT NULL
	}
	return s.execCount(ctx, s.writer(ctx), what, query,
		string(t.Kind), t.Signature, t.RequestID, t.ClientID, t.Subject, t.Active,
		s.d.timeArg(t.RequestedAt), s.d.timeArg(t.ExpiresAt), payload, t.StatusList, t.StatusIndex)
}

// GetToken returns the record, active or not.
func (s *Store) GetToken(ctx context.Context, kind storage.TokenKind, signature string) (storage.Token, error) {
	t, err := scanToken(s.queryRow(ctx, s.getTokenStmt,
		`SELECT `+tokenColumns+` FROM tokens WHERE kind = $1 AND signature = $2`, string(kind), signature))
	return t, s.wrap("get token", err)
}

// DeleteToken deletes the record, or returns ErrNotFound.
func (s *Store) DeleteToken(ctx context.Context, kind storage.TokenKind, signature string) error {
	const op = "delete token"
	if tx := s.txFrom(ctx); tx != nil && s.d.lockToken != "" {
		// As RotateToken: the grant's lock first, then the subject's and
		// the client's shared, before the row's. Taken after the row's, a
		// revocation of the client holding the client's lock and waiting
		// for the row would close a cycle (a device code's poll).
		if _, err := tx.ExecContext(ctx, s.d.lockToken, string(kind), signature); err != nil {
			return s.wrap(op, err)
		}
	}
	return s.execOne(ctx, s.writer(ctx), op, deleteTokenQuery, string(kind), signature)
}

// DeactivateToken is one conditional UPDATE; no active record gives
// ErrNotFound. Inside a transaction on PostgreSQL it first takes the locks
// CreateToken takes for the token, so that the transaction's later writes to
// the grant cannot interleave with a revocation of it.
func (s *Store) DeactivateToken(ctx context.Context, kind storage.TokenKind, signature string) error {
	return s.RotateToken(ctx, kind, signature, time.Time{}, nil)
}

// RotateToken is DeactivateToken that also records the rotation time and
// the successor value in the same UPDATE.
func (s *Store) RotateToken(ctx context.Context, kind storage.TokenKind, signature string, at time.Time, successor []byte) error {
	const op = "deactivate token"
	if tx := s.txFrom(ctx); tx != nil && s.d.lockToken != "" {
		if _, err := tx.ExecContext(ctx, s.d.lockToken, string(kind), signature); err != nil {
			return s.wrap(op, err)
		}
	}
	var atArg any
	if !at.IsZero() {
		atArg = s.d.timeArg(at)
	}
	return s.execOne(ctx, s.writer(ctx), op,
		rotateTokenQuery,
		string(kind), signature, atArg, successor)
}

// DeactivateTokens deactivates every active record of kind in the grant and
// returns how many it changed.
func (s *Store) DeactivateTokens(ctx context.Context, kind storage.TokenKind, requestID string) (int64, error) {
	return s.grantWrite(ctx, "deactivate tokens", requestID,
		deactivateGrantQuery, string(kind), requestID)
}

// DeleteTokens deletes every record of kind in the grant and returns how many.
func (s *Store) DeleteTokens(ctx context.Context, kind storage.TokenKind, requestID string) (int64, error) {
	return s.grantWrite(ctx, "delete tokens", requestID,
		deleteGrantQuery, string(kind), requestID)
}

// grantWrite runs a statement that changes the tokens of one grant. On
// PostgreSQL it first takes the locks CreateToken takes, in the caller's
// transaction or in one of its own, so the statement's snapshot is taken
// after every transaction that wrote to the grant has committed.
func (s *Store) grantWrite(ctx context.Context, op, requestID, query string, args ...any) (int64, error) {
	if s.d.lockGrant == "" {
		return s.execCount(ctx, s.writer(ctx), op, query, args...)
	}
	return s.lockedWrite(ctx, op, []lock{{s.d.lockGrant, requestID}}, query, args...)
}

// lock is one advisory-lock statement and its argument.
type lock struct{ query, arg string }

// lockedWrite takes locks, then runs query, in the caller's transaction or in
// one of its own, and returns the number of rows query changed.
func (s *Store) lockedWrite(ctx context.Context, op string, locks []lock, query string, args ...any) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, l := range locks {
			if _, err := tx.ExecContext(ctx, l.query, l.arg); err != nil {
				return s.wrap(op, err)
			}
		}
		var err error
		n, err = s.execCount(ctx, tx, op, query, args...)
		return err
	})
	return n, err
}

// ListTokens returns the records of kind with the subject (the subject
// index), ordered by requested_at.
func (s *Store) ListTokens(ctx context.Context, kind storage.TokenKind, subject string) ([]storage.Token, error) {
	const op = "list tokens"
	rows, err := s.reader(ctx).QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE subject = $1 AND kind = $2
		ORDER BY requested_at, signature`, subject, string(kind))
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var out []storage.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, s.wrap(op, err)
		}
		out = append(out, t)
	}
	return out, s.wrap(op, rows.Err())
}

// RevokeTokens deletes every record matching f; f must set at least one
// field. On PostgreSQL it first takes one lock exclusively: the subject's,
// else the client's, or, with a RequestID, the grant's. That waits for every
// transaction writing a token that could match (each takes all three locks,
// the subject's and client's shared) and holds off new ones until the
// deletion commits. One lock, not the subject's and then the client's: a
// transaction writing tokens of several subjects and clients (a group
// commit) holds some of those locks shared in any order, and a second
// exclusive lock could close a cycle with it.
func (s *Store) RevokeTokens(ctx context.Context, f storage.TokenFilter) (int64, error) {
	const op = "revoke tokens"
	var (
		where []string
		args  []any
		locks []lock
	)
	if f.Subject != "" {
		args = append(args, f.Subject)
		where = append(where, fmt.Sprintf("subject = $%d", len(args)))
		locks = append(locks, lock{s.d.lockSubject, f.Subject})
	}
	if f.ClientID != "" {
		args = append(args, f.ClientID)
		where = append(where, fmt.Sprintf("client_id = $%d", len(args)))
		if len(locks) == 0 {
			locks = append(locks, lock{s.d.lockClient, f.ClientID})
		}
	}
	if f.RequestID != "" {
		// Only the grant's records can match: its lock (which every write
		// to them takes first, exclusively) is enough, and taking it alone
		// keeps the lock order of rotation.
		args = append(args, f.RequestID)
		where = append(where, fmt.Sprintf("request_id = $%d", len(args)))
		locks = []lock{{s.d.lockGrant, f.RequestID}}
	}
	if len(where) == 0 {
		return 0, errors.New("sql: revoke tokens: empty filter")
	}
	// Single-use records stay: deleted, their values could be used again.
	args = append(args, string(storage.UsedJTI))
	where = append(where, fmt.Sprintf("kind <> $%d", len(args)))
	query := `DELETE FROM tokens WHERE ` + strings.Join(where, " AND ")
	if s.d.lockSubject == "" {
		return s.execCount(ctx, s.writer(ctx), op, query, args...)
	}
	return s.lockedWrite(ctx, op, locks, query, args...)
}
