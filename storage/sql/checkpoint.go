package sql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// SQLite copies committed pages from the write-ahead log back into the
// database file at checkpoints. By default the connection whose commit takes
// the log past 1000 pages runs the checkpoint inside that commit: every few
// group commits one of them also writes megabytes into the database file and
// fsyncs it, while every other writer waits (the writer is single). The store
// turns that off on its writer (wal_autocheckpoint=0) and checkpoints from a
// connection of its own in the background instead. A PASSIVE checkpoint runs
// beside the writer and readers without blocking them; commits keep their own
// fsync of the log, so durability is unchanged.

// checkpointInterval is how often the background checkpointer runs.
const checkpointInterval = 100 * time.Millisecond

// checkpointer runs PASSIVE checkpoints on its own connection until stopped.
type checkpointer struct {
	db     *sql.DB
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	last   checkpointResult
	logger *slog.Logger
}

// checkpointResult is what PRAGMA wal_checkpoint returned: busy is 1 when
// the checkpoint could not complete, frames the log's size in pages and
// copied how many of them are in the database file.
type checkpointResult struct {
	busy, frames, copied int64
}

func startCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{db: db, stop: make(chan struct{}), done: make(chan struct{}), logger: slog.Default()}
	go c.run()
	return c
}

func (c *checkpointer) run() {
	defer close(c.done)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		_, err := c.checkpoint(context.Background(), "PASSIVE")
		switch {
		case err != nil && !failing:
			c.logger.Warn("sqlite checkpoint failed; the write-ahead log grows until it succeeds", "err", err)
			failing = true
		case err == nil && failing:
			c.logger.Info("sqlite checkpoint succeeds again")
			failing = false
		}
	}
}

// checkpoint runs one checkpoint in the given mode.
func (c *checkpointer) checkpoint(ctx context.Context, mode string) (checkpointResult, error) {
	var r checkpointResult
	err := c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&r.busy, &r.frames, &r.copied)
	if err != nil {
		return r, fmt.Errorf("sql: checkpoint: %w", err)
	}
	c.mu.Lock()
	c.last = r
	c.mu.Unlock()
	return r, nil
}

// close stops the loop, runs a last checkpoint that also empties the log
// (TRUNCATE; skipped quietly when other connections are still busy) and
// closes the connection.
func (c *checkpointer) close() error {
	var err error
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, cerr := c.checkpoint(ctx, "TRUNCATE")
		err = errors.Join(cerr, c.db.Close())
	})
	return err
}
