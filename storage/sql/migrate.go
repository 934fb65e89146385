package sql

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed migrations
var migrationFiles embed.FS

// migration is one numbered file of migrations/<dialect>/, NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads and checks every dialect's migrations once.
var loadMigrations = sync.OnceValues(func() (map[string][]migration, error) {
	out := map[string][]migration{}
	for _, d := range []*dialect{sqliteDialect, postgresDialect} {
		dir := path.Join("migrations", d.name)
		entries, err := fs.ReadDir(migrationFiles, dir)
		if err != nil {
			return nil, err
		}
		// ReadDir sorts by name, hence by version. Versions increase but may
		// have gaps: numbers are assigned to branches developed in parallel,
		// and Migrate applies every version the database lacks.
		var migs []migration
		last := 0
		for _, e := range entries {
			num, _, ok := strings.Cut(e.Name(), "_")
			v, err := strconv.Atoi(num)
			if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
				return nil, fmt.Errorf("migration %s/%s: want NNNN_name.sql", dir, e.Name())
			}
			if v <= last {
				return nil, fmt.Errorf("migration %s/%s: version %d, want more than %d", dir, e.Name(), v, last)
			}
			last = v
			b, err := migrationFiles.ReadFile(path.Join(dir, e.Name()))
			if err != nil {
				return nil, err
			}
			migs = append(migs, migration{version: v, name: e.Name(), sql: string(b)})
		}
		if len(migs) == 0 {
			return nil, fmt.Errorf("no migrations in %s", dir)
		}
		out[d.name] = migs
	}
	return out, nil
})

func migrations(d *dialect) ([]migration, error) {
	all, err := loadMigrations()
	if err != nil {
		return nil, fmt.Errorf("sql: embedded migrations: %w", err)
	}
	return all[d.name], nil
}

// Migrate applies the migrations the database lacks, in order, in one
// transaction, and records each in schema_migrations. Concurrent callers,
// in this process or others, are serialised (PostgreSQL: an advisory lock per
// schema; SQLite: the write lock), so each migration runs once. Open runs it;
// call it directly to migrate without serving. Versions newer than this
// binary knows are left alone.
func (s *Store) Migrate(ctx context.Context) error {
	migs, err := migrations(s.d)
	if err != nil {
		return err
	}
	return s.runTx(ctx, s.BeginTx, func(tx *sql.Tx) error {
		if s.d.migrateLock != "" {
			if _, err := tx.ExecContext(ctx, s.d.migrateLock); err != nil {
				return s.wrap("migrate: lock", err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.d.bootstrap); err != nil {
			return s.wrap("migrate: create schema_migrations", err)
		}
		applied := map[int]bool{}
		rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return s.wrap("migrate: read schema_migrations", err)
		}
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				_ = rows.Close()
				return s.wrap("migrate: read schema_migrations", err)
			}
			applied[v] = true
		}
		if err := rows.Err(); err != nil {
			return s.wrap("migrate: read schema_migrations", err)
		}
		for _, m := range migs {
			if applied[m.version] {
				continue
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return s.wrap("migrate: "+m.name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, s.d.timeArg(time.Now())); err != nil {
				return s.wrap("migrate: record "+m.name, err)
			}
		}
		return nil
	})
}
