package sql

import (
	"context"

	"github.com/oauthkit/authserver/storage"
)

// ListClientChanges reads the client change feed that the triggers of
// migration 0010 write.
func (s *Store) ListClientChanges(ctx context.Context, after int64, limit int) ([]storage.ClientChange, error) {
	const op = "list client changes"
	rows, err := s.reader(ctx).QueryContext(ctx,
		`SELECT seq, client_id, changed_at FROM client_changes WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var out []storage.ClientChange
	for rows.Next() {
		var c storage.ClientChange
		if err := rows.Scan(&c.Seq, &c.ClientID, timeCol{&c.ChangedAt}); err != nil {
			return nil, s.wrap(op, err)
		}
		out = append(out, c)
	}
	return out, s.wrap(op, rows.Err())
}
