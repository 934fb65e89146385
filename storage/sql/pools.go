package sql

import "database/sql"

// Pools returns the store's connection pools by role ("write", "read"), for
// pool statistics (for example Prometheus' DB stats collector). On
// PostgreSQL one pool serves both roles and is returned once, as "main".
// Callers must not close them.
func (s *Store) Pools() map[string]*sql.DB {
	if s.w == s.r {
		return map[string]*sql.DB{"main": s.w}
	}
	return map[string]*sql.DB{"write": s.w, "read": s.r}
}
