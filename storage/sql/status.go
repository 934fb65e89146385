package sql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/oauthkit/authserver/storage"
)

const statusListColumns = `id, size, perm_key, next, created_at, expires_at`

func scanStatusList(row scanner) (storage.StatusList, error) {
	var l storage.StatusList
	err := row.Scan(&l.ID, &l.Size, &l.Key, &l.Next, timeCol{&l.CreatedAt}, timeCol{&l.ExpiresAt})
	return l, err
}

// AllocateStatusBlock takes count positions of the newest list with room in
// one conditional UPDATE (which PostgreSQL re-checks on the row's newest
// version, so concurrent allocators on any number of handles never share a
// position), or inserts a new list when none has room: one round trip on the
// common path, two when a list starts.
func (s *Store) AllocateStatusBlock(ctx context.Context, size, count int64, now, expiresAt time.Time) (storage.StatusBlock, error) {
	const op = "allocate status block"
	if count <= 0 || size <= 0 || size%count != 0 {
		return storage.StatusBlock{}, errors.New("sql: allocate status block: size must be a positive multiple of count")
	}
	greatest := "greatest"
	if s.d.name == "sqlite" {
		greatest = "max"
	}
	l, err := scanStatusList(s.writer(ctx).QueryRowContext(ctx,
		`UPDATE status_lists SET next = next + $2, expires_at = `+greatest+`(expires_at, $4)
		WHERE id = (SELECT id FROM status_lists WHERE size = $1 AND next + $2 <= size AND expires_at > $3 ORDER BY id DESC LIMIT 1)
		AND next + $2 <= size AND expires_at > $3
		RETURNING `+statusListColumns,
		size, count, s.d.timeArg(now), s.d.timeArg(expiresAt)))
	if err == nil {
		return storage.StatusBlock{List: l, Start: l.Next - count, Count: count}, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return storage.StatusBlock{}, s.wrap(op, err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return storage.StatusBlock{}, fmt.Errorf("sql: %s: key: %w", op, err)
	}
	l, err = scanStatusList(s.writer(ctx).QueryRowContext(ctx,
		`INSERT INTO status_lists (size, perm_key, next, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)
		RETURNING `+statusListColumns,
		size, key, count, s.d.timeArg(now), s.d.timeArg(expiresAt)))
	if err != nil {
		return storage.StatusBlock{}, s.wrap(op, err)
	}
	return storage.StatusBlock{List: l, Start: 0, Count: count}, nil
}

// GetStatusList reads one list.
func (s *Store) GetStatusList(ctx context.Context, id int64) (storage.StatusList, error) {
	l, err := scanStatusList(s.reader(ctx).QueryRowContext(ctx,
		`SELECT `+statusListColumns+` FROM status_lists WHERE id = $1`, id))
	return l, s.wrap("get status list", err)
}

// ListStatusLists reads the lists that have not expired.
func (s *Store) ListStatusLists(ctx context.Context, now time.Time) ([]storage.StatusList, error) {
	const op = "list status lists"
	rows, err := s.reader(ctx).QueryContext(ctx,
		`SELECT `+statusListColumns+` FROM status_lists WHERE expires_at > $1 ORDER BY id`, s.d.timeArg(now))
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var out []storage.StatusList
	for rows.Next() {
		l, err := scanStatusList(rows)
		if err != nil {
			return nil, s.wrap(op, err)
		}
		out = append(out, l)
	}
	return out, s.wrap(op, rows.Err())
}
