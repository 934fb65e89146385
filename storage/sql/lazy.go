package sql

import (
	"context"
	"database/sql"
	"database/sql/driver"
)

// lazyTx is a transaction begun by BeginLazyTx on SQLite: it holds the
// write connection, whose synchronous setting is put back when it ends.
type lazyTx struct {
	tx   *sql.Tx
	conn *sql.Conn
}

// BeginLazyTx implements storage.LazyTransactor: BeginTx for a
// transaction whose commit need not be
// durable when CommitTx returns: a crash of this process never loses it,
// but a power loss or an OS crash (on PostgreSQL, also a crash of the
// database server) may, until the next durable commit, which makes it
// durable too (the log is written in order). It is meant for counters
// whose loss costs little, such as throttling counters; it saves the
// commit's wait for the disk (an fsync).
//
// On SQLite the transaction runs with synchronous=NORMAL, restored to FULL
// when it ends; on PostgreSQL with synchronous_commit off for the
// transaction (SET LOCAL).
func (s *Store) BeginLazyTx(ctx context.Context) (context.Context, error) {
	if s.d != sqliteDialect {
		tctx, err := s.BeginTx(ctx)
		if err != nil {
			return ctx, err
		}
		if _, err := s.txFrom(tctx).ExecContext(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			_ = s.RollbackTx(tctx)
			return ctx, s.wrap("begin", err)
		}
		return tctx, nil
	}
	if s.txFrom(ctx) != nil {
		return ctx, errNestedTx
	}
	// SQLite refuses to change the setting inside a transaction, so it is
	// changed around it, on the connection the transaction holds.
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return ctx, s.wrap("begin", err)
	}
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		s.endLazy(ctx, conn)
		return ctx, s.wrap("begin", err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		s.endLazy(ctx, conn)
		return ctx, s.wrap("begin", err)
	}
	return context.WithValue(ctx, txKey{s}, &lazyTx{tx: tx, conn: conn}), nil
}

// endLazy puts the write connection's synchronous setting back and
// returns the connection to the pool; a connection whose setting could
// not be restored is closed instead, so that no later transaction commits
// lazily by mistake.
func (s *Store) endLazy(ctx context.Context, conn *sql.Conn) {
	if _, err := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = FULL`); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	_ = conn.Close()
}

// lazyFrom reports whether ctx carries a transaction begun by
// BeginLazyTx on SQLite, and returns it.
func (s *Store) lazyFrom(ctx context.Context) (*lazyTx, bool) {
	lt, ok := ctx.Value(txKey{s}).(*lazyTx)
	return lt, ok
}
