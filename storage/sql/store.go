package sql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/oauthkit/authserver/storage"
)

// Store is a storage.Store on SQLite or PostgreSQL. Open it with Open,
// OpenSQLite or OpenPostgres; it is safe for concurrent use.
type Store struct {
	d *dialect
	// w runs writes and transactions; r runs reads outside transactions. On
	// SQLite w has a single connection and r several read-only ones; on
	// PostgreSQL both are the same pool.
	w, r *sql.DB
	// Prepared on r for the hot reads.
	getUserStmt, getUserByEmailStmt, getClientStmt, getTokenStmt *sql.Stmt
	// wstmts holds the hot writes prepared on w at open, by query text
	// (writeStmt); read-only after open.
	wstmts map[string]*sql.Stmt
}

var _ storage.Store = (*Store)(nil)

// Option configures OpenSQLite, OpenPostgres and Open.
type Option func(*options)

type options struct {
	maxOpenConns     int
	connMaxLifetime  time.Duration
	statementTimeout time.Duration
	busyTimeout      time.Duration
	cacheKiB         int
}

// WithMaxOpenConns sets the size of the connection pool: on PostgreSQL the
// whole pool (default 10), on SQLite the read-only pool (default the larger
// of 4 and GOMAXPROCS); SQLite always writes through one connection. Idle
// connections are kept up to the same number.
func WithMaxOpenConns(n int) Option { return func(o *options) { o.maxOpenConns = n } }

// WithConnMaxLifetime closes connections after d, so that a PostgreSQL pool
// follows failovers and DNS changes. The default is 30 minutes on PostgreSQL
// and unlimited on SQLite; 0 means unlimited.
func WithConnMaxLifetime(d time.Duration) Option {
	return func(o *options) { o.connMaxLifetime = d }
}

// WithStatementTimeout sets PostgreSQL's statement_timeout for every
// connection, which also bounds waits for row and advisory locks. The default
// is the server's. SQLite ignores it; see WithBusyTimeout.
func WithStatementTimeout(d time.Duration) Option {
	return func(o *options) { o.statementTimeout = d }
}

// WithBusyTimeout sets how long a SQLite connection waits for another
// connection's write lock before failing with an error that wraps
// storage.ErrConflict (default 5s). PostgreSQL ignores it.
func WithBusyTimeout(d time.Duration) Option { return func(o *options) { o.busyTimeout = d } }

// WithSQLiteCache sets the page cache of the SQLite writer connection in KiB
// (default DefaultSQLiteCacheKiB); each read-only connection gets an eighth
// of it, at least 512 KiB. The caches fill with the pages that writes and
// reads touch and are kept for the life of the connection, outside the Go
// heap, so they are a large part of the resident memory of a busy server:
// a bigger cache saves re-reading B-tree pages from the operating system's
// file cache when the token tables outgrow it. PostgreSQL ignores it.
func WithSQLiteCache(kib int) Option { return func(o *options) { o.cacheKiB = kib } }

// DefaultSQLiteCacheKiB is the SQLite writer's page cache without
// WithSQLiteCache: 8 MiB. See BENCHMARKS.md ("SQLite page cache") for what
// 32 MiB cost in memory and what 8 MiB costs in CPU.
const DefaultSQLiteCacheKiB = 8 << 10

func newOptions(opts []Option, maxOpen int, lifetime time.Duration) options {
	o := options{maxOpenConns: maxOpen, connMaxLifetime: lifetime, busyTimeout: 5 * time.Second, cacheKiB: DefaultSQLiteCacheKiB}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Open opens PostgreSQL when dsn starts with "postgres://" or
// "postgresql://", and otherwise treats dsn as the path of a SQLite file.
// Migrations run before it returns.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return OpenPostgres(ctx, dsn, opts...)
	}
	return OpenSQLite(ctx, dsn, opts...)
}

// OpenSQLite opens (creating it if missing, with its parent directory) the
// SQLite database file at path and applies pending migrations.
//
// The file is opened in WAL mode with synchronous=FULL, foreign keys on and a
// busy timeout. Writes go through a single connection whose transactions
// start with BEGIN IMMEDIATE, so they take the write lock up front and never
// deadlock upgrading a read lock; reads outside transactions go through a
// pool of read-only connections and do not wait for writers.
//
// Durability: in WAL mode synchronous=NORMAL already survives a crash or
// SIGKILL of the process, but a power loss or OS crash can lose the last
// transactions committed before it, that is tokens already handed to
// clients. FULL syncs the WAL on every commit, which closes that window at the
// cost of one fsync per write transaction.
//
// path must be a file name: ":memory:", "file:" URIs and names containing '?'
// are rejected. A new file is created readable by its owner only.
func OpenSQLite(ctx context.Context, path string, opts ...Option) (*Store, error) {
	if path == "" || strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file:") || strings.Contains(path, "?") {
		return nil, fmt.Errorf("sql: open sqlite: %q is not a plain file path", path)
	}
	o := newOptions(opts, max(4, runtime.GOMAXPROCS(0)), 0)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sql: open sqlite: %w", err)
	}
	// The database holds password hashes and token payloads.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sql: open sqlite: %w", err)
	}
	_ = f.Close()

	// The writer checkpoints the log into the database file every 4,000
	// pages (16 MiB at the default 4 KiB page) instead of SQLite's 1,000: a
	// page written by many commits in between is copied once, and the
	// database file is synced a quarter as often. Under sustained refreshes
	// this cut the bytes written per refresh from 37 to 32 KB and raised the
	// rate by about 8%. The -wal file is reused, not truncated, so it stays
	// at about 16 MiB on disk once a busy period has grown it.
	common := path + "?_pragma=busy_timeout(" + strconv.FormatInt(o.busyTimeout.Milliseconds(), 10) + ")&_pragma=foreign_keys(1)"
	if o.cacheKiB <= 0 {
		return nil, fmt.Errorf("sql: open sqlite: page cache of %d KiB", o.cacheKiB)
	}
	readerKiB := max(512, o.cacheKiB/8)
	w, err := sql.Open("sqlite", common+"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=cache_size(-"+strconv.Itoa(o.cacheKiB)+")&_pragma=wal_autocheckpoint(4000)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sql: open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	r, err := sql.Open("sqlite", common+"&_pragma=query_only(1)&_pragma=cache_size(-"+strconv.Itoa(readerKiB)+")")
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sql: open sqlite %s: %w", path, err)
	}
	r.SetMaxOpenConns(o.maxOpenConns)
	r.SetMaxIdleConns(o.maxOpenConns)
	r.SetConnMaxLifetime(o.connMaxLifetime)
	return start(ctx, &Store{d: sqliteDialect, w: w, r: r})
}

// OpenPostgres connects to the PostgreSQL database dsn names (a URL or a
// key=value string as pgx accepts it, including runtime parameters such as
// search_path) and applies pending migrations under an advisory lock, so that
// instances starting together do not race.
func OpenPostgres(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o := newOptions(opts, 10, 30*time.Minute)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("sql: open postgres: %w", err)
	}
	if o.statementTimeout > 0 {
		cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(o.statementTimeout.Milliseconds(), 10)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(o.maxOpenConns)
	db.SetMaxIdleConns(o.maxOpenConns)
	db.SetConnMaxLifetime(o.connMaxLifetime)
	return start(ctx, &Store{d: postgresDialect, w: db, r: db})
}

// start migrates and prepares a new store, closing it on failure.
func start(ctx context.Context, s *Store) (*Store, error) {
	if err := s.open(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) open(ctx context.Context) error {
	// A new SQLite file is switched to WAL by the first connection; a second
	// process or handle connecting at that instant gets SQLITE_BUSY from the
	// journal_mode pragma, which the busy timeout does not cover. Retry.
	var err error
	for attempt := 0; ; attempt++ {
		if err = s.w.PingContext(ctx); err == nil || attempt == 50 || !strings.Contains(err.Error(), "SQLITE_BUSY") {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sql: open %s: %w", s.d.name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("sql: open %s: %w", s.d.name, err)
	}
	if err := s.Migrate(ctx); err != nil {
		return err
	}
	if err := s.prepareWrites(ctx); err != nil {
		return err
	}
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&s.getUserStmt, `SELECT ` + userColumns + ` FROM users WHERE id = $1`},
		{&s.getUserByEmailStmt, `SELECT ` + userColumns + ` FROM users WHERE email_lower = $1`},
		{&s.getClientStmt, `SELECT ` + clientColumns + ` FROM clients WHERE id = $1`},
		{&s.getTokenStmt, `SELECT ` + tokenColumns + ` FROM tokens WHERE kind = $1 AND signature = $2`},
	} {
		stmt, err := s.r.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("sql: open %s: prepare: %w", s.d.name, err)
		}
		*p.stmt = stmt
	}
	return nil
}

// Close closes the connection pools.
func (s *Store) Close() error {
	var errs []error
	for _, stmt := range []*sql.Stmt{s.getUserStmt, s.getUserByEmailStmt, s.getClientStmt, s.getTokenStmt} {
		if stmt != nil {
			errs = append(errs, stmt.Close())
		}
	}
	for _, stmt := range s.wstmts {
		errs = append(errs, stmt.Close())
	}
	if s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sql: close: %w", err)
	}
	return nil
}

// Ping fails unless the database answers and every migration this binary
// knows is applied.
func (s *Store) Ping(ctx context.Context) error {
	migs, err := migrations(s.d)
	if err != nil {
		return err
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version <= $1`,
		migs[len(migs)-1].version).Scan(&n); err != nil {
		return s.wrap("ping", err)
	}
	if n != len(migs) {
		return fmt.Errorf("sql: ping: %d of %d migrations applied", n, len(migs))
	}
	return nil
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// txKey is the context key of a transaction. It includes the store, so a
// transaction is seen only by the Store that began it.
type txKey struct{ s *Store }

func (s *Store) txFrom(ctx context.Context) *sql.Tx {
	switch tx := ctx.Value(txKey{s}).(type) {
	case *sql.Tx:
		return tx
	case *lazyTx:
		return tx.tx
	}
	return nil
}

// writer returns the transaction ctx carries, or the write pool.
func (s *Store) writer(ctx context.Context) querier {
	if tx := s.txFrom(ctx); tx != nil {
		return tx
	}
	return s.w
}

// reader returns the transaction ctx carries, or the read pool.
func (s *Store) reader(ctx context.Context) querier {
	if tx := s.txFrom(ctx); tx != nil {
		return tx
	}
	return s.r
}

// queryRow runs a hot read: inside the transaction ctx carries, or through
// its prepared statement.
func (s *Store) queryRow(ctx context.Context, stmt *sql.Stmt, query string, args ...any) *sql.Row {
	if tx := s.txFrom(ctx); tx != nil {
		return tx.QueryRowContext(ctx, query, args...)
	}
	return stmt.QueryRowContext(ctx, args...)
}

// BeginTx starts a transaction and returns a context carrying it. On SQLite
// it holds the store's only write connection until CommitTx or RollbackTx,
// so other writes through this Store wait; a write with a context that does
// not carry the transaction, made while it is open by the goroutine that
// opened it, deadlocks. The transaction is rolled back if ctx is cancelled.
func (s *Store) BeginTx(ctx context.Context) (context.Context, error) {
	if s.txFrom(ctx) != nil {
		return ctx, errNestedTx
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return ctx, s.wrap("begin", err)
	}
	return context.WithValue(ctx, txKey{s}, tx), nil
}

// errNestedTx refuses a transaction inside another.
var errNestedTx = errors.New("sql: begin: the context already carries a transaction")

// CommitTx commits the transaction ctx carries.
func (s *Store) CommitTx(ctx context.Context) error {
	tx := s.txFrom(ctx)
	if tx == nil {
		return errors.New("sql: commit: no transaction in context")
	}
	err := s.wrap("commit", tx.Commit())
	if lt, ok := s.lazyFrom(ctx); ok {
		s.endLazy(ctx, lt.conn)
	}
	return err
}

// RollbackTx rolls back the transaction ctx carries.
func (s *Store) RollbackTx(ctx context.Context) error {
	tx := s.txFrom(ctx)
	if tx == nil {
		return errors.New("sql: rollback: no transaction in context")
	}
	err := s.wrap("rollback", tx.Rollback())
	if lt, ok := s.lazyFrom(ctx); ok {
		s.endLazy(ctx, lt.conn)
	}
	return err
}

// maxAttempts bounds how often inTx runs a transaction of its own that failed
// with ErrConflict.
const maxAttempts = 5

// inTx runs fn in the transaction ctx carries or, if none, in a transaction
// of its own that it commits, retried on ErrConflict. Errors from fn are
// returned as they are.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.retryTx(ctx, s.BeginTx, fn)
}

// inLazyTx is inTx with a transaction of its own begun by BeginLazyTx.
func (s *Store) inLazyTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.retryTx(ctx, s.BeginLazyTx, fn)
}

func (s *Store) retryTx(ctx context.Context, begin func(context.Context) (context.Context, error), fn func(tx *sql.Tx) error) error {
	if tx := s.txFrom(ctx); tx != nil {
		return fn(tx)
	}
	for attempt := 1; ; attempt++ {
		err := s.runTx(ctx, begin, fn)
		if attempt == maxAttempts || !errors.Is(err, storage.ErrConflict) {
			return err
		}
		// Back off a little, with jitter, before trying again.
		select {
		case <-time.After(time.Duration(attempt) * time.Duration(1+rand.IntN(5)) * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
}

func (s *Store) runTx(ctx context.Context, begin func(context.Context) (context.Context, error), fn func(tx *sql.Tx) error) error {
	tctx, err := begin(ctx)
	if err != nil {
		return err
	}
	committing := false
	defer func() {
		// fn failed or panicked: roll back, so that the connection (on
		// SQLite the only write connection, which a lazy transaction pins)
		// is given back.
		if !committing {
			_ = s.RollbackTx(tctx)
		}
	}()
	if err := fn(s.txFrom(tctx)); err != nil {
		return err
	}
	committing = true
	return s.CommitTx(tctx)
}

// wrap adds context to a driver error and maps it to the storage sentinels.
func (s *Store) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sql: %s: %w", op, storage.ErrNotFound)
	}
	if sentinel := s.d.classify(err); sentinel != nil {
		return fmt.Errorf("sql: %s: %w: %w", op, sentinel, err)
	}
	return fmt.Errorf("sql: %s: %w", op, err)
}

// execCount runs a statement and returns the number of rows it changed.
func (s *Store) execCount(ctx context.Context, q querier, op, query string, args ...any) (int64, error) {
	var res sql.Result
	var err error
	if stmt := s.writeStmt(ctx, q, query); stmt != nil {
		res, err = stmt.ExecContext(ctx, args...)
	} else {
		res, err = q.ExecContext(ctx, query, args...)
	}
	if err != nil {
		return 0, s.wrap(op, err)
	}
	n, err := res.RowsAffected()
	return n, s.wrap(op, err)
}

// writeStmt returns query prepared for q when it is one of the hot writes
// prepared at open and q is the write pool or a transaction on it, so that
// those writes are parsed once rather than on every call (on SQLite's single
// writer connection, parsing was a large share of each write). Otherwise it
// returns nil and the caller runs the query as is.
func (s *Store) writeStmt(ctx context.Context, q querier, query string) *sql.Stmt {
	stmt, ok := s.wstmts[query]
	if !ok {
		return nil
	}
	switch q := q.(type) {
	case *sql.Tx:
		return q.StmtContext(ctx, stmt)
	case *sql.DB:
		if q == s.w {
			return stmt
		}
	}
	return nil
}

// prepareWrites prepares the hot write statements on w, at open (preparing
// later could wait for the connection a transaction of the same goroutine
// holds).
func (s *Store) prepareWrites(ctx context.Context) error {
	s.wstmts = map[string]*sql.Stmt{}
	for _, q := range []string{s.d.createToken, s.d.createTokenIfAbsent, rotateTokenQuery, deactivateGrantQuery, deleteGrantQuery, deleteTokenQuery} {
		stmt, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("sql: open %s: prepare: %w", s.d.name, err)
		}
		s.wstmts[q] = stmt
	}
	return nil
}

// execOne runs a statement that must change one row, and returns ErrNotFound
// if it changed none.
func (s *Store) execOne(ctx context.Context, q querier, op, query string, args ...any) error {
	n, err := s.execCount(ctx, q, op, query, args...)
	if err == nil && n == 0 {
		err = fmt.Errorf("sql: %s: %w", op, storage.ErrNotFound)
	}
	return err
}
