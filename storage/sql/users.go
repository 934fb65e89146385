package sql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/oauthkit/authserver/storage"
)

const userColumns = `id, email, name, roles, disabled, password_hash, created_at, updated_at, must_change_password`

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanUser(row scanner) (storage.User, error) {
	var u storage.User
	var roles string
	if err := row.Scan(&u.ID, &u.Email, &u.Name, &roles, &u.Disabled, &u.PasswordHash,
		timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt}, &u.MustChangePassword); err != nil {
		return u, err
	}
	return u, decodeStrings(roles, &u.Roles)
}

// stored returns t as it reads back from the database: in UTC, truncated to
// the microsecond.
func stored(t time.Time) time.Time { return time.UnixMicro(t.UnixMicro()).UTC() }

// emailKey is what the unique email_lower column holds.
func emailKey(email string) string { return strings.ToLower(email) }

func encodeStrings(v []string) string {
	if len(v) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(v) // cannot fail for []string
	return string(b)
}

func decodeStrings(s string, dst *[]string) error {
	if err := json.Unmarshal([]byte(s), dst); err != nil {
		return fmt.Errorf("decode string list: %w", err)
	}
	if len(*dst) == 0 {
		*dst = nil
	}
	return nil
}

// CreateUser stores a new user; a taken ID or email gives ErrAlreadyExists.
func (s *Store) CreateUser(ctx context.Context, u storage.User) error {
	_, err := s.writer(ctx).ExecContext(ctx,
		`INSERT INTO users (id, email, email_lower, name, roles, disabled, password_hash, created_at, updated_at, must_change_password)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		u.ID, u.Email, emailKey(u.Email), u.Name, encodeStrings(u.Roles), u.Disabled, u.PasswordHash,
		s.d.timeArg(u.CreatedAt), s.d.timeArg(u.UpdatedAt), u.MustChangePassword)
	return s.wrap("create user", err)
}

// GetUser returns the user with the given ID.
func (s *Store) GetUser(ctx context.Context, id string) (storage.User, error) {
	u, err := scanUser(s.queryRow(ctx, s.getUserStmt, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	return u, s.wrap("get user", err)
}

// GetUserByEmail returns the user whose email matches case-insensitively.
func (s *Store) GetUserByEmail(ctx context.Context, email string) (storage.User, error) {
	u, err := scanUser(s.queryRow(ctx, s.getUserByEmailStmt,
		`SELECT `+userColumns+` FROM users WHERE email_lower = $1`, emailKey(email)))
	return u, s.wrap("get user by email", err)
}

// ListUsers returns every user, ordered by ID.
func (s *Store) ListUsers(ctx context.Context) ([]storage.User, error) {
	rows, err := s.reader(ctx).QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY id`)
	if err != nil {
		return nil, s.wrap("list users", err)
	}
	defer rows.Close()
	var out []storage.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, s.wrap("list users", err)
		}
		out = append(out, u)
	}
	return out, s.wrap("list users", rows.Err())
}

// ListUsersPage returns one page of users (see storage.Users): a range
// of the primary key, or with an email prefix a range of the email index
// (byte order on PostgreSQL too, whatever the database's collation).
func (s *Store) ListUsersPage(ctx context.Context, q storage.UserQuery) ([]storage.User, error) {
	const op = "list users page"
	if q.Limit <= 0 {
		return nil, fmt.Errorf("sql: %s: limit must be positive", op)
	}
	query := `SELECT ` + userColumns + ` FROM users WHERE id > $1 ORDER BY id LIMIT $2`
	args := []any{q.After, q.Limit}
	if prefix := emailKey(q.EmailPrefix); prefix != "" {
		col := `email_lower` + s.d.byteOrder
		query = `SELECT ` + userColumns + ` FROM users WHERE ` + col + ` >= $1 AND ` + col + ` > $2`
		args = []any{prefix, q.After}
		if end := storage.PrefixEnd(prefix); end != "" {
			query += ` AND ` + col + ` < $4`
			args = append(args, q.Limit, end)
		} else {
			args = append(args, q.Limit)
		}
		query += ` ORDER BY ` + col + ` LIMIT $3`
	}
	rows, err := s.reader(ctx).QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var out []storage.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, s.wrap(op, err)
		}
		out = append(out, u)
	}
	return out, s.wrap(op, rows.Err())
}

// UpdateUser applies fn to the stored user in a transaction that holds the
// row locked (the caller's, or one of its own). fn must not use the store.
func (s *Store) UpdateUser(ctx context.Context, id string, fn func(storage.User) (storage.User, error)) (storage.User, error) {
	var next storage.User
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`+s.d.forUpdate, id))
		if err != nil {
			return s.wrap("update user", err)
		}
		if next, err = fn(cur); err != nil {
			return err
		}
		if next.ID != id {
			return fmt.Errorf("sql: update user %q: the ID cannot change (got %q)", id, next.ID)
		}
		_, err = tx.ExecContext(ctx,
			`UPDATE users SET email = $2, email_lower = $3, name = $4, roles = $5, disabled = $6,
			password_hash = $7, created_at = $8, updated_at = $9, must_change_password = $10 WHERE id = $1`,
			id, next.Email, emailKey(next.Email), next.Name, encodeStrings(next.Roles), next.Disabled,
			next.PasswordHash, s.d.timeArg(next.CreatedAt), s.d.timeArg(next.UpdatedAt), next.MustChangePassword)
		return s.wrap("update user", err)
	})
	if err != nil {
		return storage.User{}, err
	}
	next.CreatedAt, next.UpdatedAt = stored(next.CreatedAt), stored(next.UpdatedAt)
	return next, nil
}

// DeleteUser deletes the user, or returns ErrNotFound.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return s.execOne(ctx, s.writer(ctx), "delete user", `DELETE FROM users WHERE id = $1`, id)
}
