package authserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// ThrottlePolicy is a progressive delay: Free failures are allowed, then each
// further attempt must wait Base·2^(failures−Free), capped at Max. Failures
// older than Reset are forgotten. There is no hard lockout: the longest wait
// is Max.
type ThrottlePolicy struct {
	Free  int
	Base  time.Duration
	Max   time.Duration
	Reset time.Duration
}

// delay is the wait required after n failures.
func (p ThrottlePolicy) delay(n int) time.Duration {
	if n < p.Free {
		return 0
	}
	exp := n - p.Free
	if exp > 30 {
		return p.Max
	}
	d := time.Duration(float64(p.Base) * math.Pow(2, float64(exp)))
	return min(d, p.Max)
}

// ThrottleConfig configures brute-force protection. The three password
// policies apply together: a password attempt must be allowed by all.
type ThrottleConfig struct {
	// Disabled turns throttling off. It MUST NOT be set in production.
	Disabled bool
	// AccountIP limits guesses at one account from one address (default:
	// 5 free, then 1s doubling to 15 min).
	AccountIP ThrottlePolicy
	// Account limits guesses at one account from all addresses (default: 20
	// free, then 1s doubling to 30 s, so a distributed attack is slowed
	// while the real user waits at most 30 s).
	Account ThrottlePolicy
	// IP limits failures from one address across all accounts and client
	// secrets (default: 50 free, then 1s doubling to 15 min).
	IP ThrottlePolicy
	// Client limits wrong secrets for one client ID (default: 10 free, then
	// 1s doubling to 5 min).
	Client ThrottlePolicy
	// TrustedProxies are the networks whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
}

func (c *ThrottleConfig) setDefaults() {
	def := func(p *ThrottlePolicy, free int, max, reset time.Duration) {
		if *p == (ThrottlePolicy{}) {
			*p = ThrottlePolicy{Free: free, Base: time.Second, Max: max, Reset: reset}
		}
	}
	def(&c.AccountIP, 5, 15*time.Minute, time.Hour)
	def(&c.Account, 20, 30*time.Second, time.Hour)
	def(&c.IP, 50, 15*time.Minute, time.Hour)
	def(&c.Client, 10, 5*time.Minute, time.Hour)
}

// errThrottled carries the wait a throttled request is told about.
type errThrottled struct {
	key  string
	wait time.Duration
}

func (e *errThrottled) Error() string { return fmt.Sprintf("throttled for %s", e.wait) }

// throttler reserves attempts against shared counters in storage.
type throttler struct {
	cfg   ThrottleConfig
	store storage.Throttle
	now   func() time.Time
	// blocked caches, per instance, keys known to be throttled (client
	// secrets only, where a storage write per request would be too dear).
	mu      sync.Mutex
	blocked map[string]time.Time
	// flights are, per instance, the password attempts whose reservation
	// is held while their hash runs, by account key.
	fmu     sync.Mutex
	flights map[string]*flight
}

// flight counts the attempts in flight on one key of this instance.
type flight struct {
	n         int           // attempts holding a reservation
	waiting   int           // attempts waiting for one of them to succeed
	successes int           // attempts that ended in a successful sign-in
	done      chan struct{} // closed, and replaced, when one finishes
}

// begin records attempts in flight on keys.
func (th *throttler) begin(keys ...string) {
	th.fmu.Lock()
	defer th.fmu.Unlock()
	if th.flights == nil {
		th.flights = map[string]*flight{}
	}
	for _, k := range keys {
		f := th.flights[k]
		if f == nil {
			f = &flight{done: make(chan struct{})}
			th.flights[k] = f
		}
		f.n++
	}
}

// end records that an attempt begun on keys has finished (successfully or
// not), and wakes the attempts waiting for it.
func (th *throttler) end(success bool, keys ...string) {
	th.fmu.Lock()
	defer th.fmu.Unlock()
	for _, k := range keys {
		f := th.flights[k]
		if f == nil {
			continue
		}
		f.n--
		if success {
			f.successes++
		}
		close(f.done)
		f.done = make(chan struct{})
		if f.n == 0 && f.waiting == 0 {
			delete(th.flights, k)
		}
	}
}

// contended reports whether, besides the caller's own attempt, other
// attempts on keys are in flight or waiting on this instance.
func (th *throttler) contended(keys ...string) bool {
	th.fmu.Lock()
	defer th.fmu.Unlock()
	for _, k := range keys {
		if f := th.flights[k]; f != nil && (f.n > 1 || f.waiting > 0) {
			return true
		}
	}
	return false
}

// await waits until an attempt in flight on key ends in a successful
// sign-in (which resets the counters). It returns false at once when none
// is in flight on this instance, when all in flight have failed (their
// failures are real), or when ctx or timeout ends first.
func (th *throttler) await(ctx context.Context, key string, timeout <-chan time.Time) bool {
	th.fmu.Lock()
	f := th.flights[key]
	if f == nil || f.n == 0 {
		th.fmu.Unlock()
		return false
	}
	f.waiting++
	start := f.successes
	defer func() {
		f.waiting--
		if f.n == 0 && f.waiting == 0 && th.flights[key] == f {
			delete(th.flights, key)
		}
		th.fmu.Unlock()
	}()
	for {
		done := f.done
		th.fmu.Unlock()
		select {
		case <-done:
		case <-timeout:
			th.fmu.Lock()
			return false
		case <-ctx.Done():
			th.fmu.Lock()
			return false
		}
		th.fmu.Lock()
		if f.successes != start {
			return true
		}
		if f.n == 0 {
			return false
		}
	}
}

// unblock forgets the local blocks of keys (after a successful sign-in).
func (th *throttler) unblock(keys ...string) {
	th.mu.Lock()
	for _, k := range keys {
		delete(th.blocked, k)
	}
	th.mu.Unlock()
}

// reserve atomically admits one attempt under policy p for key, counting it
// as a failure until release. It returns *errThrottled when the key must wait.
// With count false it only checks (for counters that count real failures
// only, recorded afterwards by failed).
func (th *throttler) reserve(ctx context.Context, key string, p ThrottlePolicy, count bool) error {
	now := th.now().UTC()
	_, err := th.store.UpdateAttempts(ctx, key, func(a storage.Attempts) (storage.Attempts, error) {
		if !a.Last.IsZero() && now.Sub(a.Last) > p.Reset {
			a.Failures = 0
		}
		if wait := a.Last.Add(p.delay(a.Failures)).Sub(now); a.Failures >= p.Free && wait > 0 {
			return a, &errThrottled{key: key, wait: wait}
		}
		if count {
			a.Failures++
			a.Last = now
		}
		return a, nil
	})
	return err
}

// failed records a failure for key (used where verification is cheap and
// comes first) and reports the wait the key now owes.
func (th *throttler) failed(ctx context.Context, key string, p ThrottlePolicy) {
	now := th.now().UTC()
	a, err := th.store.UpdateAttempts(ctx, key, func(a storage.Attempts) (storage.Attempts, error) {
		if !a.Last.IsZero() && now.Sub(a.Last) > p.Reset {
			a.Failures = 0
		}
		a.Failures++
		a.Last = now
		return a, nil
	})
	if err != nil {
		return
	}
	if d := p.delay(a.Failures); d > 0 {
		th.block(key, d)
	}
}

// block remembers locally that key must wait.
func (th *throttler) block(key string, wait time.Duration) {
	th.mu.Lock()
	if len(th.blocked) >= maxBlocked {
		clear(th.blocked)
	}
	th.blocked[key] = th.now().Add(wait)
	th.mu.Unlock()
}

// maxBlocked bounds the local cache of throttled keys.
const maxBlocked = 100_000

// isBlocked reports the remaining wait of a key blocked by failed.
func (th *throttler) isBlocked(key string) time.Duration {
	th.mu.Lock()
	defer th.mu.Unlock()
	until, ok := th.blocked[key]
	if !ok {
		return 0
	}
	wait := until.Sub(th.now())
	if wait <= 0 {
		delete(th.blocked, key)
		return 0
	}
	return wait
}

// releaseWrites undo a successful attempt's reservation: the account's
// counters are forgotten (a successful login resets them). They are late
// writes of a group commit, one per counter, keyed by the counter
// (commitReq), or run on their own (Server.runLate).
func (th *throttler) releaseWrites(accountIP, account string) []lateWrite {
	ws := make([]lateWrite, 0, 2)
	for _, k := range []string{accountIP, account} {
		ws = append(ws, lateWrite{key: k, fn: func(ctx context.Context) error { return th.store.DeleteAttempts(ctx, k) }})
	}
	return ws
}

// throttledError is the response to a throttled request: 429 with
// Retry-After (RFC 6585). code is the §5.2 code the request would get.
func throttledError(code string, wait time.Duration) *oauthError {
	secs := retrySeconds(wait)
	return &oauthError{Code: code, Status: http.StatusTooManyRequests, RetryAfter: secs,
		Description: "Too many failed attempts; " + retryIn(secs)}
}

// loginThrottled counts and audits a password attempt refused for wait,
// and returns its 429 error. Every refusal is audited, those decided from
// memory too.
func (s *Server) loginThrottled(ctx context.Context, wait time.Duration) *oauthError {
	s.metrics.throttled.WithLabelValues("password").Inc()
	s.audit(ctx, "login_throttled", slog.String("retry_after", retryAfter(wait)))
	return throttledError(errInvalidGrant, wait)
}

// clientAuthThrottled counts and audits a client authentication refused for
// wait, and returns its 429 error.
func (s *Server) clientAuthThrottled(ctx context.Context, clientID string, wait time.Duration) *oauthError {
	s.metrics.throttled.WithLabelValues("client").Inc()
	s.audit(ctx, "client_auth_throttled", slog.String("client_id", safeParam(clientID)), slog.String("retry_after", retryAfter(wait)))
	return throttledError(errInvalidClient, wait)
}

// retryAfter is a wait as the audit log's retry_after ("3s", "15m0s").
func retryAfter(wait time.Duration) string { return wait.Round(time.Second).String() }

// retrySeconds is a wait in whole seconds, rounded up, at least 1: the
// value of a Retry-After header.
func retrySeconds(wait time.Duration) int {
	return max(int(math.Ceil(wait.Seconds())), 1)
}

// retryIn is the end of a 429's error_description: "retry in 1 second.",
// "retry in 30 seconds.".
func retryIn(secs int) string { return "retry in " + seconds(secs) + "." }

// seconds is a count of seconds in words: "1 second", "30 seconds".
func seconds(n int) string {
	if n == 1 {
		return "1 second"
	}
	return itoa(n) + " seconds"
}

// passwordKeys are the counters a password attempt is charged to.
func passwordKeys(email, ip string) (accountIP, account, addr string) {
	e := strings.ToLower(strings.TrimSpace(email))
	return "acct-ip:" + e + "|" + ip, "acct:" + e, "ip:" + ip
}

// reservePassword admits a password attempt or returns a 429 error. An
// admitted attempt holds a reservation on the account counters, counted as a
// failure until the sign-in succeeds (release), and must call
// s.throttle.end(success, kAI, kA) when its verification is over.
//
// Throttling counts failures, not attempts in flight: an attempt refused
// only because other attempts on the same account from this instance still
// hold reservations waits (up to HashQueueTimeout) for one of them to
// succeed, which resets the counters, and tries again; when they all fail it
// gets its 429. A correct password therefore frees the way for the others,
// while parallel wrong passwords still never get more verifications than
// the limit allows.
func (s *Server) reservePassword(ctx context.Context, email, ip string) *oauthError {
	if s.throttle == nil {
		return nil
	}
	kAI, kA, kIP := passwordKeys(email, ip)
	// Keys this instance already knows to be throttled are refused from
	// memory: a flood of attempts costs no database write.
	if wait := max(s.throttle.isBlocked(kAI), s.throttle.isBlocked(kA), s.throttle.isBlocked(kIP)); wait > 0 {
		return s.loginThrottled(ctx, wait)
	}
	var timeout <-chan time.Time
	for {
		err := s.reservePasswordOnce(ctx, kAI, kA, kIP)
		var te *errThrottled
		if errors.As(err, &te) {
			if te.key != kIP {
				if timeout == nil {
					t := time.NewTimer(s.cfg.HashQueueTimeout)
					defer t.Stop()
					timeout = t.C
				}
				if s.throttle.await(ctx, te.key, timeout) {
					continue
				}
			}
			s.throttle.block(te.key, te.wait)
			return s.loginThrottled(ctx, te.wait)
		}
		if err != nil {
			return unavailable(err)
		}
		return nil
	}
}

// reservePasswordOnce reserves one attempt on the account counters and
// checks the address counter; begin is called on success.
func (s *Server) reservePasswordOnce(ctx context.Context, kAI, kA, kIP string) error {
	// The account counters reserve the attempt (so parallel guesses at one
	// account cannot exceed its limit); the address counter is only checked
	// here and counts real failures afterwards, so that many concurrent
	// sign-ins from one address (a NAT, a proxy) are not mistaken for guesses.
	// All commit together: one write per attempt.
	// The counters commit lazily: a power loss may forget the last
	// attempts counted, which costs far less than a wait for the disk on
	// every sign-in (storage.LazyTransactor).
	tx, err := storage.BeginLazyTx(ctx, s.store)
	if err != nil {
		return err
	}
	committing := false
	defer func() {
		// Failed or panicked: roll back, so that the connection (on SQLite
		// the only write connection, which a lazy transaction pins) is
		// given back.
		if !committing {
			_ = s.store.RollbackTx(tx)
		}
	}()
	for _, r := range []struct {
		key   string
		p     ThrottlePolicy
		count bool
	}{{kAI, s.cfg.Throttle.AccountIP, true}, {kA, s.cfg.Throttle.Account, true}, {kIP, s.cfg.Throttle.IP, false}} {
		if err := s.throttle.reserve(tx, r.key, r.p, r.count); err != nil {
			return err
		}
	}
	// Counted in flight before the commit, so that an attempt refused
	// because of this reservation finds it and waits.
	s.throttle.begin(kAI, kA)
	committing = true
	if err := s.store.CommitTx(tx); err != nil {
		s.throttle.end(false, kAI, kA)
		return err
	}
	return nil
}

// clientIP is the caller's address: the peer address, or, when the peer is a
// trusted proxy, the right-most X-Forwarded-For address that is not one.
func (s *Server) clientIP(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := peer.Addr().Unmap()
	if !s.trusted(addr) {
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		a = a.Unmap()
		if !s.trusted(a) {
			return a.String()
		}
		addr = a
	}
	return addr.String()
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.Throttle.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
