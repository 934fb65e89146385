package authserver

import (
	"context"
	"sync"

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
	mu    sync.Mutex
	queue []*commitReq
	busy  bool
}

// commitReq is one response's writes.
type commitReq struct {
	tokens  []storage.Token
	release func(ctx context.Context) error
	done    chan error
}

// maxBatch bounds one transaction.
const maxBatch = 256

// submit queues the writes and waits until a transaction holding them has
// committed (or failed). If no commit is running, the caller runs it.
func (c *committer) submit(ctx context.Context, tokens []storage.Token, release func(context.Context) error) error {
	req := &commitReq{tokens: tokens, release: release, done: make(chan error, 1)}
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
	err := c.write(ctx, batch)
	if err == nil || len(batch) == 1 {
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	for _, r := range batch {
		r.done <- c.write(ctx, []*commitReq{r})
	}
}

func (c *committer) write(ctx context.Context, batch []*commitReq) error {
	tx, err := c.store.BeginTx(ctx)
	if err != nil {
		return err
	}
	for _, r := range batch {
		for _, t := range r.tokens {
			if err = c.store.CreateToken(tx, t); err != nil {
				break
			}
		}
		if err == nil && r.release != nil {
			err = r.release(tx)
		}
		if err != nil {
			break
		}
	}
	if err != nil {
		_ = c.store.RollbackTx(tx)
		return err
	}
	return c.store.CommitTx(tx)
}
