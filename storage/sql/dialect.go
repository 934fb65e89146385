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
	// skipLocked ends the subquery that picks one garbage-collection batch.
	skipLocked string
	// createToken inserts a token; $1..$11 are kind, signature, request_id,
	// client_id, subject, active, requested_at, expires_at, payload,
	// status_list, status_idx.
	createToken string
	// createTokenIfAbsent is createToken that inserts nothing when the key
	// is taken (CreateTokenIfAbsent).
	createTokenIfAbsent string
	// The advisory locks described in doc.go (PostgreSQL only; empty where
	// writers are serialised anyway).
	lockGrant   string // $1 = request_id: the locks CreateToken takes for the grant's tokens
	lockToken   string // $1 = kind, $2 = signature: the locks CreateToken took for that token
	lockSubject string // $1 = subject: the subject lock, exclusive
	lockClient  string // $1 = client_id: the client lock, exclusive
	// byteOrder follows a text column to compare and sort it by bytes, as
	// an index made for prefix ranges does (migration 0009).
	byteOrder string
	// timeArg converts a time to the column's representation.
	timeArg func(time.Time) any
	// classify returns the storage sentinel a driver error stands for, or nil.
	classify func(error) error
}

const insertTokenColumns = `kind, signature, request_id, client_id, subject, active, requested_at, expires_at, payload, status_list, status_idx`

// tokenColumns are the columns GetToken reads (migration 0002 added the last
// two, 0008 the status list columns of insertTokenColumns).
const tokenColumns = insertTokenColumns + `, rotated_at, successor`

// onTokenConflictDoNothing turns a createToken statement into
// createTokenIfAbsent: a taken key inserts nothing (zero rows) instead of
// failing, which on PostgreSQL would abort the transaction. At READ
// COMMITTED an INSERT that meets another transaction's uncommitted row of
// the key waits for that transaction, then inserts only if it rolled back.
const onTokenConflictDoNothing = ` ON CONFLICT (kind, signature) DO NOTHING`

const sqliteCreateToken = `INSERT INTO tokens (` + insertTokenColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`

var sqliteDialect = &dialect{
	name:                "sqlite",
	bootstrap:           `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`,
	createToken:         sqliteCreateToken,
	createTokenIfAbsent: sqliteCreateToken + onTokenConflictDoNothing,
	timeArg:             func(t time.Time) any { return t.UnixMicro() },
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

// First keys of the two-key advisory locks ("oaut" and up); the second key is
// hashtext() of the request ID, subject, client ID or, for migrations, the
// current schema.
const (
	pgGrantLock   = "1868657012"
	pgMigrateLock = "1868657013"
	pgSubjectLock = "1868657014"
	pgClientLock  = "1868657015"
)

// pgTokenLocks are the locks a writer of one token takes, in the order every
// statement takes them: the grant exclusively, then its subject and its
// client shared. g, s and c are SQL expressions for the three values.
func pgTokenLocks(g, s, c string) string {
	return `pg_advisory_xact_lock(` + pgGrantLock + `, hashtext(` + g + `)), ` +
		`pg_advisory_xact_lock_shared(` + pgSubjectLock + `, hashtext(` + s + `)), ` +
		`pg_advisory_xact_lock_shared(` + pgClientLock + `, hashtext(` + c + `))`
}

// pgCreateToken takes the locks and inserts in one statement, so that a
// token created outside a transaction costs one round trip. An INSERT reads
// no snapshot, so taking the locks first within the statement is enough.
var pgCreateToken = `INSERT INTO tokens (` + insertTokenColumns + `)
		SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::boolean, $7::timestamptz, $8::timestamptz, $9::bytea, $10::bigint, $11::bigint
		FROM (SELECT ` + pgTokenLocks(`$3::text`, `$5::text`, `$4::text`) + `) AS locks`

var postgresDialect = &dialect{
	name:                "postgres",
	bootstrap:           `CREATE TABLE IF NOT EXISTS schema_migrations (version integer NOT NULL PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)`,
	migrateLock:         `SELECT pg_advisory_xact_lock(` + pgMigrateLock + `, hashtext(coalesce(current_schema(), '')))`,
	forUpdate:           ` FOR UPDATE`,
	skipLocked:          ` FOR UPDATE SKIP LOCKED`,
	byteOrder:           ` COLLATE "C"`,
	createToken:         pgCreateToken,
	createTokenIfAbsent: pgCreateToken + onTokenConflictDoNothing,
	// The subject and client of a grant are the same on all its tokens and
	// never change, so they can be read before the locks are taken. (A
	// device authorization's records share its device code's signature as
	// request ID: the code's and user code's without a subject, the
	// approval's mark with the user's; only deletions take this lock for
	// them.) A grant without tokens gets the grant lock alone
	// (hashtext(NULL) locks nothing).
	lockGrant: `SELECT ` + pgTokenLocks(`g.id`, `t.subject`, `t.client_id`) + `
		FROM (SELECT $1::text AS id) AS g
		LEFT JOIN LATERAL (SELECT subject, client_id FROM tokens WHERE request_id = g.id LIMIT 1) AS t ON TRUE`,
	lockToken:   `SELECT ` + pgTokenLocks(`request_id`, `subject`, `client_id`) + ` FROM tokens WHERE kind = $1 AND signature = $2`,
	lockSubject: `SELECT pg_advisory_xact_lock(` + pgSubjectLock + `, hashtext($1))`,
	lockClient:  `SELECT pg_advisory_xact_lock(` + pgClientLock + `, hashtext($1))`,
	timeArg:     func(t time.Time) any { return t.UTC() },
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
		case "22021", "22P05": // character_not_in_repertoire (a NUL, invalid UTF-8), untranslatable_character
			return storage.ErrInvalidText
		}
		return nil
	},
}

// timeCol scans a time column, Unix microseconds (SQLite) or timestamptz
// (PostgreSQL), into a UTC time.
type timeCol struct{ t *time.Time }

// nullTimeCol scans a nullable time; NULL is the zero time.
type nullTimeCol struct{ t *time.Time }

func (c nullTimeCol) Scan(src any) error {
	if src == nil {
		*c.t = time.Time{}
		return nil
	}
	return timeCol(c).Scan(src)
}

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
