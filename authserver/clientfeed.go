package authserver

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// Cached client registrations follow the storage client change feed:
//
//   - clientCache (clientauth.go) keeps verified client credentials for
//     ClientCacheTTL (default 10 minutes), but answers from an entry only
//     within ClientChangeMaxDelay of the storage read that filled it or of
//     the start of the last successful feed poll.
//   - clientFeed polls the feed in the background, every
//     ClientChangeMaxDelay/4 while anything is cached, and forgets the
//     entries of every client updated or deleted since the last poll. So a
//     client changed on any instance (admin API, registration management,
//     the CLI writing to the database) stops being answered from any
//     instance's cache within ClientChangeMaxDelay, and a cache hit costs
//     no storage read. The instance that makes a change forgets the client
//     at once.
//   - While the feed cannot be read, entries stop being trusted
//     ClientChangeMaxDelay after the last successful poll: clients are then
//     read from storage on every request, and the cache is cleared.
//
// As with the revocation feed (introspect_cache.go), PostgreSQL hands out
// sequence numbers before commit: the poller reads the entries above a gap
// again for clientChangeGapWait. A transaction that changes a client and
// commits later than that after taking its number is seen only when the
// entries expire (ClientCacheTTL) or the instance restarts.

const (
	defaultClientChangeMaxDelay = time.Second
	defaultClientCacheTTL       = 10 * time.Minute
	// clientChangePage is how many feed entries one query reads.
	clientChangePage = 1000
	// clientChangeGapWait is how long the poller waits for a feed entry
	// with a lower sequence number than one already read to commit.
	clientChangeGapWait = 10 * time.Second
	// clientChangeMaxGaps bounds the missing sequence numbers waited for:
	// those further below the newest entry read (garbage collected while
	// this instance was idle, or rolled back) are given up at once.
	clientChangeMaxGaps = 1000
	// clientChangePollTimeout bounds one poll.
	clientChangePollTimeout = 10 * time.Second
)

// clientFeed is the background poller of the client change feed.
type clientFeed struct {
	feed     storage.ClientChanges
	cache    *clientCache
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time // Config.Now, the clock of entry expiry

	mu      sync.Mutex // serialises polls; guards the fields below
	cursor  feedCursor
	failing bool
	pruned  time.Time

	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

func newClientFeed(feed storage.ClientChanges, cache *clientCache, log *slog.Logger, now func() time.Time) *clientFeed {
	return &clientFeed{feed: feed, cache: cache, interval: max(cache.maxDelay/4, time.Millisecond), log: log, now: now,
		cursor: newFeedCursor(clientChangeGapWait, clientChangeMaxGaps)}
}

// start runs the poller until stop.
func (f *clientFeed) start() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	go f.run(ctx)
}

// stop ends the poller and waits for it; it may be called more than once.
func (f *clientFeed) stop() {
	f.stopOnce.Do(func() {
		if f.cancel != nil {
			f.cancel()
			<-f.done
		}
	})
}

func (f *clientFeed) run(ctx context.Context) {
	defer close(f.done)
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.tick(ctx)
	}
}

// tick polls the feed when anything is cached: with an empty cache there
// is nothing to forget, and an idle instance costs the database nothing.
func (f *clientFeed) tick(ctx context.Context) {
	if f.cache.ttl <= 0 || f.cache.empty() {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, clientChangePollTimeout)
	err := f.poll(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case err != nil:
		if !f.failing {
			f.failing = true
			f.log.Warn("client change feed unreadable: cached client registrations are read from storage again after the client change max delay",
				"max_delay", f.cache.maxDelay, "err", err)
		}
		if f.cache.clock()-f.cache.polled.Load() > int64(f.cache.maxDelay) {
			f.cache.clearAll()
		}
	case f.failing:
		f.failing = false
		f.log.Info("client change feed readable again")
	}
}

// poll reads the feed past the cursor and forgets every client it names.
// Entries above a gap in the sequence are read again on the next poll until
// the gap fills or is given up after clientChangeGapWait.
func (f *clientFeed) poll(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	start, wall := f.cache.clock(), time.Now()
	after := f.cursor.pos
	for {
		page, err := f.feed.ListClientChanges(ctx, after, clientChangePage)
		if err != nil {
			return fmt.Errorf("authserver: read the client change feed: %w", err)
		}
		for _, c := range page {
			if f.cursor.add(c.Seq) {
				f.cache.forget(c.ClientID)
			}
		}
		if len(page) > 0 {
			after = page[len(page)-1].Seq
		}
		if len(page) < clientChangePage {
			break
		}
	}
	if f.cursor.advance(wall, after) > 0 {
		// A change that commits after its gap was given up is never read:
		// drop every cached registration, which the next requests read
		// again, rather than trust one such a change replaced.
		f.cache.clearAll()
	}
	f.cache.polled.Store(start)
	if now := f.now(); now.Sub(f.pruned) > time.Minute {
		f.pruned = now
		f.cache.prune(now)
	}
	return nil
}

// ForgetClient drops this instance's cached credentials of the client, so
// that a change made to it outside the server (such as through the admin
// API) takes effect here at once. Other instances see the change through
// the client change feed within Config.ClientChangeMaxDelay, as this one
// would without the call.
func (s *Server) ForgetClient(id string) { s.clientCache.forget(id) }

// Close stops the server's background work: the client change poller (and
// waits for the password hashes running and the collections after them to
// end; a hash started by a request served after Close is not waited for). It
// does not close the store. Requests served after Close stay correct: cached
// client registrations are then no longer trusted after
// Config.ClientChangeMaxDelay and are read from storage.
func (s *Server) Close() error {
	s.clientFeed.stop()
	s.hashing.Wait() // the process-wide collector target is restored
	return nil
}
