package sql

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/oauthkit/authserver/storage"
)

// dialect holds what differs between SQLite and PostgreSQL. Everything else
// is shared SQL: both accept $N placeholders, ON CONFLICT DO NOTHING, TRUE and
// FALSE, and row-value IN.
type dialect struct {
	name string
	// bootstrap creates the migrations table if it is missing.
	bootstrap string
	// migrateLock serialises migrations between instances; "" when the
	// migration transaction already does (SQLite's BEGIN IMMEDIATE).
	migrateLock string
	// forUpdate ends a SELECT that reads a row in order to update it.
	forUpdate string
	// gcBatch ends the subquery that picks one garbage-collection batch.
	gcBatch string
	// createToken inserts a token; $1..$9 are kind, signature, request_id,
	// client_id, subject, active, requested_at, expires_at, payload.
	createToken string
	// lockGrant, lockGrantOfToken and lockGrantsWhere take the grant locks
	// described in doc.go; they are empty where writers are serialised
	// anyway.
	lockGrant        string                    // $1 = request_id
	lockGrantOfToken string                    // $1 = kind, $2 = signature
	lockGrantsWhere  func(where string) string // every grant with a token matching where
	// timeArg converts a time to the column's representation.
	timeArg func(time.Time) any
	// classify returns the storage sentinel a driver error stands for, or nil.
	classify func(error) error
}

const tokenColumns = `kind, signature, request_id, client_id, subject, active, requested_at, expires_at, payload`

var sqliteDialect = &dialect{
	name:        "sqlite",
	bootstrap:   `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`,
	gcBatch:     ` LIMIT 1000`,
	createToken: `INSERT INTO tokens (` + tokenColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
	timeArg:     func(t time.Time) any { return t.UnixMicro() },
	classify: func(err error) error {
		var se *sqlite.Error
		if !errors.As(err, &se) {
			return nil
		}
		switch code := se.Code(); {
		case code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, code == sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return storage.ErrAlreadyExists
		case code&0xff == sqlite3.SQLITE_BUSY, code&0xff == sqlite3.SQLITE_LOCKED:
			return storage.ErrConflict
		}
		return nil
	},
}

// pgGrantLocks is the first key of the two-key advisory locks on grants
// ("oaut"); the second is hashtext(request_id). pgMigrateLock keys the
// migration lock, with hashtext(current_schema()) as the second key.
const (
	pgGrantLocks  = "1868657012"
	pgMigrateLock = "1868657013"
)

var postgresDialect = &dialect{
	name:        "postgres",
	bootstrap:   `CREATE TABLE IF NOT EXISTS schema_migrations (version integer NOT NULL PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)`,
	migrateLock: `SELECT pg_advisory_xact_lock(` + pgMigrateLock + `, hashtext(coalesce(current_schema(), '')))`,
	forUpdate:   ` FOR UPDATE`,
	gcBatch:     ` LIMIT 1000 FOR UPDATE SKIP LOCKED`,
	// The lock and the insert are one statement, so that a token created
	// outside a transaction costs one round trip. An INSERT reads no
	// snapshot, so taking the lock first within the statement is enough.
	createToken: `INSERT INTO tokens (` + tokenColumns + `)
		SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::boolean, $7::timestamptz, $8::timestamptz, $9::bytea
		FROM (SELECT pg_advisory_xact_lock(` + pgGrantLocks + `, hashtext($3::text))) AS grant_lock`,
	lockGrant:        `SELECT pg_advisory_xact_lock(` + pgGrantLocks + `, hashtext($1))`,
	lockGrantOfToken: `SELECT pg_advisory_xact_lock(` + pgGrantLocks + `, hashtext(request_id)) FROM tokens WHERE kind = $1 AND signature = $2`,
	// Locks are taken in hash order so that two bulk revocations cannot
	// deadlock each other.
	lockGrantsWhere: func(where string) string {
		return `SELECT pg_advisory_xact_lock(` + pgGrantLocks + `, h)
			FROM (SELECT DISTINCT hashtext(request_id) AS h FROM tokens WHERE ` + where + ` ORDER BY h) AS grants`
	},
	timeArg: func(t time.Time) any { return t.UTC() },
	classify: func(err error) error {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			return nil
		}
		switch pe.Code {
		case "23505": // unique_violation
			return storage.ErrAlreadyExists
		case "40001", "40P01", "55P03": // serialization_failure, deadlock_detected, lock_not_available
			return storage.ErrConflict
		}
		return nil
	},
}

// timeCol scans a time column, Unix microseconds (SQLite) or timestamptz
// (PostgreSQL), into a UTC time.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case int64:
		*c.t = time.UnixMicro(v).UTC()
	case time.Time:
		*c.t = v.UTC()
	default:
		return fmt.Errorf("cannot scan %T into a time", src)
	}
	return nil
}
