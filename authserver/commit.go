package authserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// committer writes the token records of many concurrent token responses in
// one transaction (group commit), and with them the single-use records of
// client assertions (useOnce), each a request of its own. A response is sent only after the
// transaction holding its records has committed, so durability is unchanged:
// what changes is that one fsync serves every request that arrived while the
// previous commit was running. On SQLite, where commits are serialised, this
// turns the token endpoint's ceiling from "one fsync per token" into "one
// fsync per batch".
//
// When commits are quick and the CPU is the bottleneck (RS256 signing, say),
// requests reach the committer one at a time, and each would pay for a
// transaction and an fsync of its own, which cost CPU too. So a commit that
// would carry fewer than minBatch requests waits, at most linger, while other
// responses announced with expect are still being built: a request that no
// other announced response follows is committed at once, and so is one that
// arrives when the previous commit ended more than linger ago (at such a
// rate, a transaction per request costs little, and waiting would only add
// latency). Whoever drains lingers, a revocation (which is not announced)
// included, so a request waits at most one linger more than before.
type committer struct {
	store storage.Store
	// observe, if set, is told the size and duration of each transaction.
	observe func(requests int, d time.Duration)
	// minBatch and linger: see above; a zero linger (the zero committer)
	// never waits.
	minBatch int
	linger   time.Duration
	wake     chan struct{} // buffered 1
	// coming counts the responses announced by expect and not yet queued.
	coming  atomic.Int64
	mu      sync.Mutex
	queue   []*commitReq
	busy    bool
	waiting bool      // the draining goroutine lingers
	lastEnd time.Time // when the last transaction ended
}

// The server's group-commit linger (see committer).
const (
	defaultMinBatch = 16
	defaultLinger   = 4 * time.Millisecond
)

// newCommitter returns a committer on store that lingers as described above.
func newCommitter(store storage.Store, minBatch int, linger time.Duration, observe func(requests int, d time.Duration)) *committer {
	return &committer{store: store, minBatch: minBatch, linger: linger, wake: make(chan struct{}, 1), observe: observe}
}

// commitReq is one response's writes. guard, if set, runs first: when it
// fails with storage.ErrNotFound (a lost compare-and-swap, which changes
// nothing) the request fails alone, its writes are skipped, and the batch
// goes on. Any other error aborts the batch, whose requests are then retried
// one by one.
//
// key is the grant (request ID) whose lock the writes take first on
// PostgreSQL, exclusively (a single-use record's is its own signature; a
// device code's poll, whose guard deletes the code's row, the code's): a
// batch runs in the keys' lock order (storage.LockOrder, the advisory
// lock's own 32-bit key, then the key), so two instances' batches take those
// locks in one order. In arrival order, batches holding the same two keys
// the other way round (the same two DPoP proofs replayed to two instances
// at once) waited for each other until PostgreSQL's deadlock check
// (deadlock_timeout, 1 s) failed one of them, stalling every response in
// both; in the keys' string order, so did four distinct proofs whose lock
// keys collide pairwise, which a client can search for.
//
// late are writes that take row locks of their own (the throttling
// counters a successful sign-in releases): they run after every request's
// other writes, all of the batch's together in key order, the order in
// which every other transaction takes those rows, so that they cannot close
// a cycle either.
type commitReq struct {
	key    string
	order  int32 // storage.LockOrder(key)
	late   []lateWrite
	guard  func(ctx context.Context) error
	writes []func(ctx context.Context) error
	done   chan error
}

// lateWrite is a write a batch runs last, in key order across the batch
// (see commitReq).
type lateWrite struct {
	key string
	fn  func(ctx context.Context) error
}

// maxBatch bounds one transaction.
const maxBatch = 256

// expect announces a response that is about to be built and will most
// likely submit. The returned func withdraws the announcement; submit calls
// it once the writes are queued, and the caller calls it again (a no-op
// then) in case it never submitted. A commit lingers only while announced
// responses are still on their way.
func (c *committer) expect() (arrived func()) {
	if c.linger <= 0 {
		return func() {}
	}
	c.coming.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			c.coming.Add(-1)
			c.mu.Lock()
			c.poke()
			c.mu.Unlock()
		})
	}
}

// poke wakes a lingering drainer once waiting longer cannot grow its batch
// or the batch is big enough. c.mu must be held.
func (c *committer) poke() {
	if c.waiting && (len(c.queue) >= c.minBatch || c.coming.Load() <= 0) {
		c.waiting = false
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// submit queues the writes and waits until a transaction holding them has
// committed (or failed). If no commit is running, the caller runs it.
// arrived, if not nil, is the caller's withdrawal from expect; key orders
// the request in its batch and late runs at the batch's end (see
// commitReq).
func (c *committer) submit(ctx context.Context, arrived func(), key string, late []lateWrite, guard func(context.Context) error, writes ...func(context.Context) error) error {
	req := &commitReq{key: key, order: storage.LockOrder(key), late: late, guard: guard, writes: writes, done: make(chan error, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, req)
	c.poke()
	run := !c.busy
	c.busy = true
	c.mu.Unlock()
	if arrived != nil {
		arrived()
	}
	if run {
		c.drain(context.WithoutCancel(ctx), req)
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
		c.lingerLocked()
		n := min(len(c.queue), maxBatch)
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		c.mu.Unlock()
		// In lock order (stable: one grant's requests keep their arrival
		// order).
		slices.SortStableFunc(batch, func(a, b *commitReq) int {
			return cmp.Or(cmp.Compare(a.order, b.order), strings.Compare(a.key, b.key))
		})

		c.commit(ctx, batch)
		c.mu.Lock()
		c.lastEnd = time.Now()
		if own != nil && len(own.done) == 1 {
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
		c.mu.Unlock()
	}
}

// lingerLocked waits, at most c.linger, for a small batch to grow while
// announced responses are on their way. c.mu is held on entry and on return.
func (c *committer) lingerLocked() {
	if c.linger <= 0 || len(c.queue) >= c.minBatch || c.coming.Load() <= 0 ||
		time.Since(c.lastEnd) > c.linger {
		return
	}
	select { // a stale wake-up from an earlier linger
	case <-c.wake:
	default:
	}
	c.waiting = true
	c.mu.Unlock()
	t := time.NewTimer(c.linger)
	select {
	case <-c.wake:
	case <-t.C:
	}
	t.Stop()
	c.mu.Lock()
	c.waiting = false
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
//
// A panic in a write rolls the transaction back and becomes the batch's
// error, so the committer goes on serving: a panic escaping here would leave
// busy set and every later request waiting forever.
func (c *committer) write(ctx context.Context, batch []*commitReq) (lost []error, err error) {
	lost = make([]error, len(batch))
	start := time.Now()
	tx, err := c.store.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			_ = c.store.RollbackTx(tx)
			lost, err = nil, fmt.Errorf("authserver: token write panicked: %v", p)
		}
	}()
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
	if err == nil {
		err = runBatchLate(tx, batch, lost)
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

// runBatchLate runs the late writes of the batch's requests that did not lose
// their compare-and-swap, in key order.
func runBatchLate(tx context.Context, batch []*commitReq, lost []error) error {
	var late []lateWrite
	for i, r := range batch {
		if lost[i] == nil {
			late = append(late, r.late...)
		}
	}
	slices.SortStableFunc(late, func(a, b lateWrite) int { return strings.Compare(a.key, b.key) })
	for _, w := range late {
		if err := w.fn(tx); err != nil {
			return err
		}
	}
	return nil
}
