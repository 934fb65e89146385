package sql

import (
	"context"

	"github.com/oauthkit/authserver/storage"
)

// ListRevocations reads the revocation feed that the triggers of migration
// 0005 write.
func (s *Store) ListRevocations(ctx context.Context, after int64, limit int) ([]storage.Revocation, error) {
	const op = "list revocations"
	rows, err := s.reader(ctx).QueryContext(ctx,
		`SELECT seq, signature, expires_at, status_list, status_idx FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var out []storage.Revocation
	for rows.Next() {
		var r storage.Revocation
		if err := rows.Scan(&r.Seq, &r.Signature, timeCol{&r.ExpiresAt}, &r.StatusList, &r.StatusIndex); err != nil {
			return nil, s.wrap(op, err)
		}
		out = append(out, r)
	}
	return out, s.wrap(op, rows.Err())
}
