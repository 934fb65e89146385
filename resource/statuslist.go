package resource

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// Token Status List (draft-ietf-oauth-status-list, draft 21 and later)
// checks: a verified JWT access token with a status claim
//
//	"status": {"status_list": {"idx": N, "uri": "…"}}
//
// is refused when its entry in the referenced Status List Token is not 0
// (VALID). Lists are cached in memory and refreshed in the background with
// conditional GETs, at most once per StatusListConfig.Refresh per list, so a
// request makes no network call while its list is fresh; only the first
// request for a list (or one whose copy is older than MaxStaleness, or past
// the list token's exp) waits for a fetch, shared by every concurrent
// request (single flight). A 304 answer revalidates a copy only while its
// list token is unexpired.

// ErrTokenRevoked is wrapped (together with ErrInvalidToken) when the
// token's status list entry is not VALID.
var ErrTokenRevoked = errors.New("resource: token revoked (status list)")

// Defaults of StatusListConfig.
const (
	DefaultStatusRefresh      = 5 * time.Second
	DefaultStatusMaxStaleness = 5 * time.Minute
	DefaultStatusMaxLists     = 64
	DefaultStatusMaxBytes     = 1 << 20
)

// StatusListConfig configures the status list checks of local verification.
type StatusListConfig struct {
	// Refresh is how often a cached list is fetched again (conditionally);
	// default DefaultStatusRefresh. A revoked token is refused within about
	// Refresh after the issuer publishes the revocation.
	Refresh time.Duration
	// MaxStaleness bounds the age of the last successful fetch a request
	// may rely on; past it the request waits for a fetch and is answered
	// 503 when that fails (fail closed). Default DefaultStatusMaxStaleness.
	MaxStaleness time.Duration
	// MaxLists bounds the lists cached at once (default
	// DefaultStatusMaxLists); MaxBytes bounds a list's response and its
	// decompressed size (default DefaultStatusMaxBytes, 8 Mi entries).
	MaxLists int
	MaxBytes int64
	// SkipStatusCheck turns the checks off: revoked tokens are accepted
	// until they expire. It MUST NOT be set unless every token is also
	// introspected or very short-lived.
	SkipStatusCheck bool
	// SkipSameOriginCheck accepts list URIs outside the issuer (by default
	// a list URI must start with Issuer + "/"), so a token can make this
	// server fetch any URL its issuer names. It MUST NOT be set unless the
	// issuer publishes its lists elsewhere.
	SkipSameOriginCheck bool
}

// statusSnapshot is one verified copy of a list.
type statusSnapshot struct {
	raw     []byte // decompressed status array
	bits    int
	etag    string
	fetched time.Time // last successful fetch (200 or 304)
	exp     time.Time // the list token's exp; zero if none
}

// statusEntry is the cache entry of one list URI.
type statusEntry struct {
	snap       atomic.Pointer[statusSnapshot]
	attempted  atomic.Int64 // UnixNano of the last fetch started
	refreshing atomic.Bool
}

// statusChecker checks tokens against cached status lists.
type statusChecker struct {
	cfg     StatusListConfig
	issuer  string
	client  *http.Client
	timeout time.Duration
	keys    KeySet
	algs    []jose.SignatureAlgorithm
	leeway  time.Duration
	now     func() time.Time
	logger  *slog.Logger

	mu      sync.Mutex
	entries map[string]*statusEntry
	sf      singleflight.Group
}

func newStatusChecker(cfg StatusListConfig, issuer string, client *http.Client, timeout time.Duration,
	keys KeySet, algs []jose.SignatureAlgorithm, leeway time.Duration, now func() time.Time, logger *slog.Logger) *statusChecker {
	setDefault(&cfg.Refresh, DefaultStatusRefresh)
	setDefault(&cfg.MaxStaleness, DefaultStatusMaxStaleness)
	if cfg.MaxLists <= 0 {
		cfg.MaxLists = DefaultStatusMaxLists
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultStatusMaxBytes
	}
	return &statusChecker{cfg: cfg, issuer: strings.TrimSuffix(issuer, "/"), client: client, timeout: timeout,
		keys: keys, algs: algs, leeway: leeway, now: now, logger: logger, entries: map[string]*statusEntry{}}
}

// tokenStatus is an access token's status claim (draft §6.1).
type tokenStatus struct {
	StatusList *struct {
		Idx *int64 `json:"idx"`
		URI string `json:"uri"`
	} `json:"status_list"`
}

// check refuses c when its status list entry is not VALID.
func (s *statusChecker) check(ctx context.Context, c *Claims) error {
	if c.status == nil || c.status.StatusList == nil {
		return nil // no status, or another mechanism than a status list
	}
	ref := c.status.StatusList
	if ref.Idx == nil || *ref.Idx < 0 || ref.URI == "" {
		return fmt.Errorf("%w: malformed status_list claim", ErrInvalidToken)
	}
	if !s.cfg.SkipSameOriginCheck && !strings.HasPrefix(ref.URI, s.issuer+"/") {
		return fmt.Errorf("%w: status list URI outside the issuer", ErrInvalidToken)
	}
	snap, err := s.snapshot(ctx, ref.URI)
	if err != nil {
		return err
	}
	// Entry idx is in byte idx/perByte at bit (idx%perByte)*bits (draft
	// §4.1). Dividing rather than multiplying idx*bits keeps any index,
	// however large, from overflowing into a valid one.
	idx := *ref.Idx
	perByte := int64(8 / snap.bits)
	byteIdx := idx / perByte
	if byteIdx >= int64(len(snap.raw)) {
		return fmt.Errorf("%w: status index %d outside the list", ErrInvalidToken, idx)
	}
	v := snap.raw[byteIdx] >> ((idx % perByte) * int64(snap.bits)) & byte(1<<snap.bits-1)
	if v != 0 {
		return fmt.Errorf("%w: %w (status 0x%02x)", ErrInvalidToken, ErrTokenRevoked, v)
	}
	return nil
}

// snapshot returns a usable copy of the list at uri: the cached one,
// refreshed in the background when due, or a fetched one when none is
// usable.
func (s *statusChecker) snapshot(ctx context.Context, uri string) (*statusSnapshot, error) {
	e := s.entry(uri)
	now := s.now()
	snap := e.snap.Load()
	if snap != nil && s.usable(snap, now) {
		if now.Sub(time.Unix(0, e.attempted.Load())) >= s.cfg.Refresh && e.refreshing.CompareAndSwap(false, true) {
			go func() {
				defer e.refreshing.Store(false)
				if _, err := s.fetch(context.Background(), uri, e); err != nil {
					s.logger.Warn("resource: status list refresh failed", "uri", uri, "err", err)
				}
			}()
		}
		return snap, nil
	}
	snap, err := s.fetch(ctx, uri, e)
	if err != nil {
		return nil, fmt.Errorf("%w: status list: %w", ErrUnavailable, err)
	}
	return snap, nil
}

// usable reports whether snap may be relied on at now: fetched within
// MaxStaleness and not expired.
func (s *statusChecker) usable(snap *statusSnapshot, now time.Time) bool {
	if now.Sub(snap.fetched) > s.cfg.MaxStaleness {
		return false
	}
	return s.unexpired(snap, now)
}

// unexpired reports whether the list token of snap has no exp or an exp
// not yet past at now, with the leeway (draft §5.1: exp bounds how long the
// list may be relied on, whenever it was fetched).
func (s *statusChecker) unexpired(snap *statusSnapshot, now time.Time) bool {
	return snap.exp.IsZero() || now.Before(snap.exp.Add(s.leeway))
}

// entry returns the cache entry of uri, evicting a random one when full.
func (s *statusChecker) entry(uri string) *statusEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[uri]
	if e == nil {
		if len(s.entries) >= s.cfg.MaxLists {
			for k := range s.entries {
				delete(s.entries, k)
				break
			}
		}
		e = &statusEntry{}
		s.entries[uri] = e
	}
	return e
}

// fetch GETs the list (conditionally when a copy is cached), one request per
// URI at a time, and stores the result in e. The request serves every
// caller waiting for it, so it runs for at most the fetch timeout whatever
// becomes of ctx; a caller whose ctx ends stops waiting, alone.
func (s *statusChecker) fetch(ctx context.Context, uri string, e *statusEntry) (*statusSnapshot, error) {
	ch := s.sf.DoChan(uri, func() (any, error) {
		// One caller's cancellation must not fail the others (as in
		// RemoteKeySet.fetchIfDue).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		e.attempted.Store(s.now().UnixNano())
		old := e.snap.Load()
		snap, err := s.get(ctx, uri, old)
		if err != nil {
			return nil, err
		}
		e.snap.Store(snap)
		return snap, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*statusSnapshot), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("status list %s: %w", uri, ctx.Err())
	}
}

// get GETs the list, conditionally on old's ETag while old is unexpired: a
// 304 revalidates only a copy whose list token may still be relied on. An
// expired copy is dropped, and a 304 for a copy that expired meanwhile is
// answered with an unconditional request.
func (s *statusChecker) get(ctx context.Context, uri string, old *statusSnapshot) (*statusSnapshot, error) {
	if old != nil && !s.unexpired(old, s.now()) {
		old = nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, fmt.Errorf("status list request: %w", err)
	}
	req.Header.Set("Accept", "application/statuslist+jwt")
	if old != nil && old.etag != "" {
		req.Header.Set("If-None-Match", old.etag)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("status list: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("status list: %w", err)
	}
	now := s.now()
	switch {
	case resp.StatusCode == http.StatusNotModified && old != nil:
		if !s.unexpired(old, now) {
			return s.get(ctx, uri, nil) // the body is read: the connection is free
		}
		n := *old
		n.fetched = now
		return &n, nil
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("status list %s: HTTP %d", uri, resp.StatusCode)
	case int64(len(body)) > s.cfg.MaxBytes:
		return nil, fmt.Errorf("status list %s: larger than %d bytes", uri, s.cfg.MaxBytes)
	}
	snap, err := s.parse(ctx, uri, strings.TrimSpace(string(body)), now)
	if err != nil {
		return nil, err
	}
	snap.etag = resp.Header.Get("ETag")
	return snap, nil
}

// parse verifies a Status List Token (draft §5.1, §8.3) and decompresses it.
func (s *statusChecker) parse(ctx context.Context, uri, token string, now time.Time) (*statusSnapshot, error) {
	jws, err := jose.ParseSignedCompact(token, s.algs)
	if err != nil {
		return nil, fmt.Errorf("status list token: %w", err)
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); strings.TrimPrefix(strings.ToLower(typ), "application/") != "statuslist+jwt" {
		return nil, fmt.Errorf("status list token: typ %q", typ)
	}
	key, err := s.keys.Key(ctx, h.KeyID)
	if err != nil {
		return nil, fmt.Errorf("status list token: %w", err)
	}
	if key.Algorithm != "" && key.Algorithm != h.Algorithm || !algFitsKey(h.Algorithm, key.Key) {
		return nil, fmt.Errorf("status list token: alg %q does not fit key %q", h.Algorithm, h.KeyID)
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return nil, fmt.Errorf("status list token: %w", err)
	}
	var c struct {
		Sub        string `json:"sub"`
		Iat        *int64 `json:"iat"`
		Exp        int64  `json:"exp"`
		StatusList struct {
			Bits int    `json:"bits"`
			Lst  string `json:"lst"`
		} `json:"status_list"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("status list token: claims: %w", err)
	}
	if c.Sub != uri {
		return nil, fmt.Errorf("status list token: sub %q is not the list URI %q", c.Sub, uri)
	}
	if c.Iat == nil {
		return nil, errors.New("status list token: no iat")
	}
	var exp time.Time
	if c.Exp != 0 {
		exp = time.Unix(c.Exp, 0)
		if !now.Before(exp.Add(s.leeway)) {
			return nil, errors.New("status list token: expired")
		}
	}
	switch c.StatusList.Bits {
	case 1, 2, 4, 8:
	default:
		return nil, fmt.Errorf("status list token: bits %d", c.StatusList.Bits)
	}
	z, err := base64.RawURLEncoding.DecodeString(c.StatusList.Lst)
	if err != nil {
		return nil, fmt.Errorf("status list token: lst: %w", err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, fmt.Errorf("status list token: lst: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, s.cfg.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("status list token: lst: %w", err)
	}
	if int64(len(raw)) > s.cfg.MaxBytes {
		return nil, fmt.Errorf("status list token: more than %d bytes decompressed", s.cfg.MaxBytes)
	}
	return &statusSnapshot{raw: raw, bits: c.StatusList.Bits, fetched: now, exp: exp}, nil
}
