package authserver

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// Introspection of JWT access tokens answers from memory once a token has been
// verified on this instance:
//
//   - introCache remembers, per token (keyed by its SHA-256), the claims of a
//     token whose signature verified and whose record was live, until the
//     token's exp. It holds at most Config.IntrospectionCacheSize entries and
//     evicts a random one when full.
//   - revocationSet holds the signatures (as hashes) of access tokens revoked
//     before they expired, read from the storage revocation feed. Every cache
//     hit is checked against it. It is polled from storage at most every
//     RevocationMaxDelay/4 while requests arrive; a hit is never answered from
//     a set older than RevocationMaxDelay, so a revocation on any instance is
//     seen on every instance within that delay. A revocation through this
//     instance's revocation endpoint polls the feed before answering, so it is
//     seen here at once.

const (
	defaultIntrospectionCacheSize = 10000
	defaultRevocationMaxDelay     = time.Second
	// revocationPage is how many feed entries one query reads.
	revocationPage = 1000
	// revocationGapWait is how long the poller waits for a feed entry with a
	// lower sequence number than one already read to commit (PostgreSQL hands
	// out sequence numbers before commit). A transaction that writes a
	// revocation and commits later than this is seen only by instances that
	// start after it.
	revocationGapWait = 10 * time.Second
	// revocationMaxGaps bounds the missing sequence numbers waited for
	// (feedCursor): at 3,500 revocations/s, the last 28 s of them, more
	// than revocationGapWait.
	revocationMaxGaps = 100_000
)

// revocationKey identifies a token signature in the revocation set.
type revocationKey [16]byte

func revocationKeyOf(sig string) revocationKey {
	h := sha256.Sum256([]byte(sig))
	return revocationKey(h[:16])
}

// cachedIntrospection is a verified, live access token's answer.
type cachedIntrospection struct {
	res *introspection
	verified
}

// verified is what a cache of verified access tokens keeps to decide a hit
// (lookupVerified): the token's expiry, the revocation key of its
// signature and its signing key.
type verified struct {
	exp int64
	sig revocationKey
	kid string
}

func (v verified) entry() verified { return v }

// cacheVerdict is what lookupVerified found.
type cacheVerdict int

const (
	cacheMiss    cacheVerdict = iota // verify the token and read its record
	cacheHit                         // answer from the entry
	cacheInvalid                     // the entry's token expired, its key was withdrawn, or it was revoked
)

// lookupVerified looks token up in c, a cache of verified access tokens
// (introspection's, UserInfo's): an entry answers while its signing key is
// still published, before its expiry, and while it is not revoked per a
// revocation set at most RevocationMaxDelay old; when the set is staler
// (storage unreachable), storage must answer. key is the token's cache key
// when cacheable is true (false: no cache, or too long a token).
func lookupVerified[V interface{ entry() verified }](ctx context.Context, s *Server, c *tokenCache[V], token string) (key [32]byte, cacheable bool, e V, verdict cacheVerdict) {
	if c == nil || len(token) > maxTokenLength {
		return key, false, e, cacheMiss
	}
	key = sha256.Sum256([]byte(token))
	e, ok := c.get(key)
	if !ok {
		return key, true, e, cacheMiss
	}
	v := e.entry()
	if _, published := s.keys.PublicKey(v.kid); !published || v.exp <= s.cfg.Now().Unix() {
		c.remove(key)
		return key, true, e, cacheInvalid
	}
	if !s.revoked.fresh(ctx) {
		return key, true, e, cacheMiss
	}
	if s.revoked.revoked(v.sig) {
		c.remove(key)
		return key, true, e, cacheInvalid
	}
	return key, true, e, cacheHit
}

// tokenCache is a bounded cache keyed by the SHA-256 of a token: the
// verified access tokens of introspection and of UserInfo.
type tokenCache[V any] struct {
	mu  sync.RWMutex
	m   map[[32]byte]V
	max int
}

// introCache is the cache of introspection answers.
type introCache = tokenCache[cachedIntrospection]

// newTokenCache returns a cache of at most size entries (the default size
// for 0), or nil (no cache) for a negative size.
func newTokenCache[V any](size int) *tokenCache[V] {
	if size < 0 {
		return nil
	}
	if size == 0 {
		size = defaultIntrospectionCacheSize
	}
	// The map grows with its entries: preallocated to 1,024 entries, the
	// three empty caches held half of an idle server's live heap (about
	// 0.7 of 2 MB, scanned by every collection).
	return &tokenCache[V]{m: make(map[[32]byte]V), max: size}
}

func newIntroCache(size int) *introCache { return newTokenCache[cachedIntrospection](size) }

func (c *tokenCache[V]) get(k [32]byte) (V, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	return e, ok
}

func (c *tokenCache[V]) put(k [32]byte, e V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for old := range c.m { // map order is random: a random eviction
			delete(c.m, old)
			break
		}
	}
	c.m[k] = e
}

func (c *tokenCache[V]) remove(k [32]byte) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

// clear drops every entry; a nil cache (disabled) has none.
func (c *tokenCache[V]) clear() {
	if c == nil {
		return
	}
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}

// len reports the number of entries (for tests and metrics).
func (c *tokenCache[V]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// revocationSet is this instance's copy of the revocation feed.
type revocationSet struct {
	feed     storage.Revocations
	interval time.Duration
	// onEntry, when set, is called with each new feed entry (status
	// lists set the token's bit).
	onEntry func(storage.Revocation)
	// onGaveUp, when set, is called when the cursor gives up a gap in the
	// feed: a revocation that commits after that is never read, so what
	// was verified and cached before must be verified again.
	onGaveUp func()
	maxDelay time.Duration

	mu sync.RWMutex
	m  map[revocationKey]int64 // → token expiry, Unix seconds

	// lastPoll is when the last successful poll started (UnixNano); zero
	// before the first.
	lastPoll atomic.Int64

	pollMu sync.Mutex // serialises polls; guards the fields below
	cursor feedCursor
	pruned time.Time
}

func newRevocationSet(feed storage.Revocations, maxDelay time.Duration) *revocationSet {
	if maxDelay <= 0 {
		maxDelay = defaultRevocationMaxDelay
	}
	return &revocationSet{feed: feed, interval: maxDelay / 4, maxDelay: maxDelay,
		m: map[revocationKey]int64{}, cursor: newFeedCursor(revocationGapWait, revocationMaxGaps)}
}

// revoked reports whether the token with signature key k was revoked.
func (r *revocationSet) revoked(k revocationKey) bool {
	r.mu.RLock()
	_, ok := r.m[k]
	r.mu.RUnlock()
	return ok
}

// fresh reports whether the set may answer now: it was polled successfully
// within maxDelay. It polls when the last poll is older than the interval;
// concurrent callers wait only when the set is too old to use.
func (r *revocationSet) fresh(ctx context.Context) bool {
	age := time.Since(time.Unix(0, r.lastPoll.Load()))
	if age < r.interval {
		return true
	}
	if r.pollMu.TryLock() {
		err := r.pollLocked(ctx)
		r.pollMu.Unlock()
		return err == nil || age < r.maxDelay
	}
	if age < r.maxDelay {
		return true // another request is polling
	}
	r.pollMu.Lock()
	defer r.pollMu.Unlock()
	if time.Since(time.Unix(0, r.lastPoll.Load())) < r.maxDelay {
		return true
	}
	return r.pollLocked(ctx) == nil
}

// sync polls the feed now, after any poll in flight; a revocation committed
// before the call is in the set when it returns nil.
func (r *revocationSet) sync(ctx context.Context) error {
	r.pollMu.Lock()
	defer r.pollMu.Unlock()
	return r.pollLocked(ctx)
}

// pollLocked reads the feed past the cursor. Entries above a gap in the
// sequence are read again on the next poll until the gap fills or is given
// up after revocationGapWait.
func (r *revocationSet) pollLocked(ctx context.Context) error {
	start := time.Now()
	after := r.cursor.pos
	for {
		page, err := r.feed.ListRevocations(ctx, after, revocationPage)
		if err != nil {
			return fmt.Errorf("authserver: read the revocation feed: %w", err)
		}
		fresh := page[:0:0]
		r.mu.Lock()
		for _, e := range page {
			if r.cursor.add(e.Seq) {
				r.m[revocationKeyOf(e.Signature)] = e.ExpiresAt.Unix()
				fresh = append(fresh, e)
			}
		}
		r.mu.Unlock()
		// Outside r.mu, which every cache hit read-locks.
		if r.onEntry != nil {
			for _, e := range fresh {
				r.onEntry(e)
			}
		}
		if len(page) > 0 {
			after = page[len(page)-1].Seq
		}
		if len(page) < revocationPage {
			break
		}
	}
	if r.cursor.advance(start, after) > 0 && r.onGaveUp != nil {
		r.onGaveUp()
	}
	if start.Sub(r.pruned) > time.Minute {
		r.prune(start)
	}
	r.lastPoll.Store(start.UnixNano())
	return nil
}

// prune drops the entries of tokens that have expired: they fail
// verification anyway.
func (r *revocationSet) prune(now time.Time) {
	r.pruned = now
	cutoff := now.Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, exp := range r.m {
		if exp < cutoff {
			delete(r.m, k)
		}
	}
}
