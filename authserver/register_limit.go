package authserver

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// rateLimiter is a token bucket per address, in memory: each address may
// make burst requests at once and rate per second after that. It is per
// instance; the limit over n instances is n times higher.
type rateLimiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the limiter's memory; full buckets are dropped first.
const maxBuckets = 10000

func newRateLimiter(perMinute float64, burst int, now func() time.Time) *rateLimiter {
	return &rateLimiter{rate: perMinute / 60, burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// take spends a token of key's bucket and returns 0, or returns how long to
// wait until one is available.
func (l *rateLimiter) take(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+el*l.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// prune drops the buckets that have refilled (they hold no state worth
// keeping); if none has, it drops them all.
func (l *rateLimiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxBuckets {
		clear(l.buckets)
	}
}

// limitKey is the bucket of an address: the address itself for IPv4, its
// /64 for IPv6, which a single subscriber usually holds whole (one bucket
// per IPv6 address would give each of them 2^64).
func limitKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Unmap().Is4() {
		return ip
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}

// regLimit applies the registration rate limit to an address: 429 with
// Retry-After when its bucket is empty.
func (s *Server) regLimit(ctx context.Context, ip string) *oauthError {
	wait := s.regLimiter.take(limitKey(ip))
	if wait <= 0 {
		return nil
	}
	s.metrics.throttled.WithLabelValues("register").Inc()
	s.audit(ctx, "registration_throttled", slog.String("retry_after", retryAfter(wait)))
	secs := retrySeconds(wait)
	return &oauthError{Code: errTemporarilyUnavailable, Status: http.StatusTooManyRequests, RetryAfter: secs,
		Description: "Too many registration requests; " + retryIn(secs)}
}
