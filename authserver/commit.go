package authserver

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// committer writes the token records of many concurrent token responses in
// one transaction (group commit). A response is sent only after the
// transaction holding its records has committed, so durability is unchanged:
// what changes is that one fsync serves every request that arrived while the
// previous commit was running. On SQLite, where commits are serialised, this
// turns the token endpoint's ceiling from "one fsync per token" into "one
// fsync per batch".
type committer struct {
	store storage.Store
	// observe, if set, is told the size and duration of each transaction.
	observe func(requests int, d time.Duration)
	mu      sync.Mutex
	queue   []*commitReq
	busy    bool
}

// commitReq is one response's writes. guard, if set, runs first: when it
// fails with storage.ErrNotFound (a lost compare-and-swap, which changes
// nothing) the request fails alone, its writes are skipped, and the batch
// goes on. Any other error aborts the batch, whose requests are then retried
// one by one.
type commitReq struct {
	guard  func(ctx context.Context) error
	writes []func(ctx context.Context) error
	done   chan error
}

// maxBatch bounds one transaction.
const maxBatch = 256

// submit queues the writes and waits until a transaction holding them has
// committed (or failed). If no commit is running, the caller runs it.
func (c *committer) submit(ctx context.Context, guard func(context.Context) error, writes ...func(context.Context) error) error {
	req := &commitReq{guard: guard, writes: writes, done: make(chan error, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, req)
	if !c.busy {
		c.busy = true
		c.mu.Unlock()
		c.drain(context.WithoutCancel(ctx), req)
	} else {
		c.mu.Unlock()
	}
	return <-req.done
}

// drain commits queued batches until the caller's own request is done; if
// more work is queued by then, a goroutine carries on, so no caller waits
// behind others' batches.
func (c *committer) drain(ctx context.Context, own *commitReq) {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.busy = false
			c.mu.Unlock()
			return
		}
		n := min(len(c.queue), maxBatch)
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		c.mu.Unlock()

		c.commit(ctx, batch)
		if own != nil && len(own.done) == 1 {
			c.mu.Lock()
			more := len(c.queue) > 0
			if !more {
				c.busy = false
			}
			c.mu.Unlock()
			if more {
				go c.drain(ctx, nil)
			}
			return
		}
	}
}

// commit writes a batch in one transaction. If it fails and holds several
// requests, each is retried alone, so one bad request cannot fail others.
func (c *committer) commit(ctx context.Context, batch []*commitReq) {
	lost, err := c.write(ctx, batch)
	if err == nil || len(batch) == 1 {
		for i, r := range batch {
			if err == nil && lost[i] != nil {
				r.done <- lost[i]
			} else {
				r.done <- err
			}
		}
		return
	}
	for _, r := range batch {
		lost, err := c.write(ctx, []*commitReq{r})
		if err == nil {
			err = lost[0]
		}
		r.done <- err
	}
}

// write runs the batch in one transaction; lost[i] is the guard error of a
// request that lost its compare-and-swap.
func (c *committer) write(ctx context.Context, batch []*commitReq) ([]error, error) {
	lost := make([]error, len(batch))
	start := time.Now()
	tx, err := c.store.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	for i, r := range batch {
		if r.guard != nil {
			if gerr := r.guard(tx); gerr != nil {
				if errors.Is(gerr, storage.ErrNotFound) {
					lost[i] = gerr
					continue
				}
				err = gerr
				break
			}
		}
		for _, w := range r.writes {
			if err = w(tx); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if err != nil {
		_ = c.store.RollbackTx(tx)
		return nil, err
	}
	err = c.store.CommitTx(tx)
	if c.observe != nil {
		c.observe(len(batch), time.Since(start))
	}
	return lost, err
}
