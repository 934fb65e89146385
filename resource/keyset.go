package resource

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// KeySet finds the public key that verifies a token, by the kid in the
// token's header. Implementations must be safe for concurrent use.
//
// The returned key is shared: callers must not modify it. When no key has
// the ID, Key returns an error wrapping ErrUnknownKey; when the keys cannot
// be obtained at all, an error wrapping ErrUnavailable.
type KeySet interface {
	Key(ctx context.Context, kid string) (*jose.JSONWebKey, error)
}

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
const minRSABits = 2048

// StaticKeySet is a fixed KeySet, for tests and for services that pin the
// issuer's keys in configuration.
type StaticKeySet struct {
	keys map[string]*jose.JSONWebKey
}

// NewStaticKeySet returns a key set holding keys. Every key must be a public
// signature key (RSA of at least 2048 bits, ECDSA or Ed25519) with a unique
// key ID.
func NewStaticKeySet(keys ...jose.JSONWebKey) (*StaticKeySet, error) {
	m := make(map[string]*jose.JSONWebKey, len(keys))
	for i := range keys {
		k := keys[i]
		if err := checkVerificationKey(&k); err != nil {
			return nil, fmt.Errorf("resource: key %q: %w", k.KeyID, err)
		}
		if _, dup := m[k.KeyID]; dup {
			return nil, fmt.Errorf("resource: duplicate key ID %q", k.KeyID)
		}
		m[k.KeyID] = &k
	}
	return &StaticKeySet{keys: m}, nil
}

// Key implements KeySet.
func (s *StaticKeySet) Key(_ context.Context, kid string) (*jose.JSONWebKey, error) {
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// checkVerificationKey accepts only keys fit to verify signatures: a key ID,
// use absent or "sig", and a public asymmetric key. Symmetric keys are
// refused outright, so no HMAC algorithm can ever be verified with a public
// key's bytes (RFC 8725 §2.1).
func checkVerificationKey(k *jose.JSONWebKey) error {
	if k.KeyID == "" {
		return errors.New("no key ID")
	}
	if k.Use != "" && k.Use != "sig" {
		return fmt.Errorf("use is %q, not sig", k.Use)
	}
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		if key.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits is too small", key.N.BitLen())
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return fmt.Errorf("key type %T is not a public signature key", k.Key)
	}
	if k.Algorithm != "" && !algFitsKey(k.Algorithm, k.Key) {
		return fmt.Errorf("alg %q does not fit the key type", k.Algorithm)
	}
	return nil
}

// Defaults of RemoteKeySetConfig.
const (
	DefaultJWKSMinAge          = time.Minute
	DefaultJWKSMaxAge          = 24 * time.Hour
	DefaultJWKSAge             = 5 * time.Minute
	DefaultJWKSRefreshCooldown = 30 * time.Second
	DefaultFetchTimeout        = 10 * time.Second
	DefaultMaxResponseSize     = 1 << 20
)

// RemoteKeySetConfig configures a RemoteKeySet. Zero fields take the
// defaults named in their comments.
type RemoteKeySetConfig struct {
	// URL is the JWKS URL (the issuer metadata's jwks_uri). Required.
	URL string
	// HTTPClient fetches the key set; default http.DefaultClient. The fetch
	// timeout is applied through the request context.
	HTTPClient *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives fetch failures and skipped keys; default slog.Default().
	Logger *slog.Logger
	// MinAge and MaxAge bound the Cache-Control max-age honoured; defaults
	// DefaultJWKSMinAge and DefaultJWKSMaxAge. DefaultAge applies when the
	// response has no max-age; default DefaultJWKSAge.
	MinAge, MaxAge, DefaultAge time.Duration
	// RefreshCooldown is the least time between two fetches; default
	// DefaultJWKSRefreshCooldown. It bounds the fetches a flood of tokens
	// with unknown kids can cause. The issuer must publish a new key at
	// least this long before signing with it.
	RefreshCooldown time.Duration
	// FetchTimeout bounds one fetch; default DefaultFetchTimeout.
	FetchTimeout time.Duration
	// MaxResponseSize bounds the JWKS body in bytes; default
	// DefaultMaxResponseSize.
	MaxResponseSize int64
}

// RemoteKeySet is a KeySet backed by a JWKS URL. It caches the parsed keys
// and refetches:
//
//   - when the cache is older than its max-age (from Cache-Control, bounded
//     by MinAge and MaxAge). The request that notices it is answered from
//     the cache and the fetch runs in the background, so an unreachable
//     issuer never delays or fails a request whose key is cached;
//   - when a token names an unknown kid, at most once per RefreshCooldown;
//     that request waits for the fetch.
//
// One fetch is in flight at a time (single-flight). A failed fetch keeps the
// last good key set. Conditional requests use the ETag. Responses are bounded
// in size and time.
type RemoteKeySet struct {
	cfg RemoteKeySetConfig

	state atomic.Pointer[keyCache]
	group singleflight.Group

	mu          sync.Mutex  // guards lastAttempt
	lastAttempt time.Time   // start of the latest fetch, successful or not
	fetching    atomic.Bool // a fetch is in flight

	backgroundPending atomic.Bool    // a background refresh is starting or running
	background        sync.WaitGroup // background refreshes, for tests
}

// keyCache is an immutable snapshot of a fetched key set.
type keyCache struct {
	keys    map[string]*jose.JSONWebKey
	expires time.Time
	etag    string
}

// NewRemoteKeySet returns a key set that fetches cfg.URL lazily, on first
// use.
func NewRemoteKeySet(cfg RemoteKeySetConfig) (*RemoteKeySet, error) {
	if cfg.URL == "" {
		return nil, errors.New("resource: RemoteKeySetConfig.URL is required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	setDefault(&cfg.MinAge, DefaultJWKSMinAge)
	setDefault(&cfg.MaxAge, DefaultJWKSMaxAge)
	setDefault(&cfg.DefaultAge, DefaultJWKSAge)
	setDefault(&cfg.RefreshCooldown, DefaultJWKSRefreshCooldown)
	setDefault(&cfg.FetchTimeout, DefaultFetchTimeout)
	if cfg.MaxResponseSize <= 0 {
		cfg.MaxResponseSize = DefaultMaxResponseSize
	}
	if cfg.MaxAge < cfg.MinAge {
		return nil, errors.New("resource: RemoteKeySetConfig.MaxAge is below MinAge")
	}
	return &RemoteKeySet{cfg: cfg}, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Key implements KeySet.
func (s *RemoteKeySet) Key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	st := s.state.Load()
	if st != nil {
		if k, ok := st.keys[kid]; ok {
			if s.cfg.Now().After(st.expires) {
				s.refreshInBackground()
			}
			return k, nil
		}
		// Order matters: a fetch sets fetching before lastAttempt and clears
		// it after storing the new keys, so a request that sees "not due,
		// not fetching" also sees the keys of any fetch that made it so.
		if !s.due() && !s.fetching.Load() {
			if k, ok := s.state.Load().keys[kid]; ok {
				return k, nil
			}
			return nil, ErrUnknownKey
		}
	}
	// Unknown kid (or nothing cached yet): join the fetch in flight or start
	// one; fetchIfDue re-checks the cooldown.
	ch := s.group.DoChan("", func() (any, error) { return s.fetchIfDue(ctx) })
	var res singleflight.Result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
	if st = s.state.Load(); st == nil {
		return nil, fmt.Errorf("%w: no key set: %w", ErrUnavailable, res.Err)
	}
	if k, ok := st.keys[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// refreshInBackground starts a fetch without waiting for it, unless one is
// in flight or started within the cooldown.
func (s *RemoteKeySet) refreshInBackground() {
	// Many requests notice the expiry at once; one goroutine is enough.
	if !s.due() || !s.backgroundPending.CompareAndSwap(false, true) {
		return
	}
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		defer s.backgroundPending.Store(false)
		_, _, _ = s.group.Do("", func() (any, error) { return s.fetchIfDue(context.Background()) })
	}()
}

// due reports whether the cooldown since the latest fetch has passed.
func (s *RemoteKeySet) due() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dueLocked()
}

// dueLocked is due with s.mu held. While no key set was ever loaded the
// cooldown is at most one second, so a service that started while the issuer
// was down recovers quickly.
func (s *RemoteKeySet) dueLocked() bool {
	cooldown := s.cfg.RefreshCooldown
	if s.state.Load() == nil {
		cooldown = min(cooldown, time.Second)
	}
	return s.lastAttempt.IsZero() || s.cfg.Now().Sub(s.lastAttempt) >= cooldown
}

// fetchIfDue runs inside the single flight: it fetches unless a fetch
// started within the cooldown, which closes the race between a caller's
// check and a flight that finished just before it joined.
func (s *RemoteKeySet) fetchIfDue(ctx context.Context) (any, error) {
	s.mu.Lock()
	if !s.dueLocked() {
		s.mu.Unlock()
		return nil, errors.New("refresh cooldown")
	}
	s.fetching.Store(true)
	s.lastAttempt = s.cfg.Now()
	s.mu.Unlock()
	defer s.fetching.Store(false)

	// The fetch serves every waiting caller: one caller's cancellation must
	// not fail the others.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.FetchTimeout)
	defer cancel()
	if err := s.fetch(ctx); err != nil {
		s.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "resource: JWKS fetch failed; keeping the cached keys",
			slog.String("url", s.cfg.URL), slog.Any("error", err))
		return nil, err
	}
	return nil, nil
}

// fetch GETs the key set and installs it.
func (s *RemoteKeySet) fetch(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	old := s.state.Load()
	if old != nil && old.etag != "" {
		req.Header.Set("If-None-Match", old.etag)
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	now := s.cfg.Now()
	age := s.maxAge(resp.Header)

	if resp.StatusCode == http.StatusNotModified && old != nil {
		next := *old
		next.expires = now.Add(age)
		s.state.Store(&next)
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unexpected status %s", resp.Status)
	}
	body, err := readLimited(resp.Body, s.cfg.MaxResponseSize)
	if err != nil {
		return err
	}
	keys, err := s.parse(ctx, body)
	if err != nil {
		return err
	}
	s.state.Store(&keyCache{keys: keys, expires: now.Add(age), etag: resp.Header.Get("ETag")})
	return nil
}

// parse decodes a JWKS, keeping the usable signature keys. A key that is
// malformed, of an unknown type, private, symmetric or meant for encryption
// is skipped, not fatal: an issuer may publish keys this package does not
// use.
func (s *RemoteKeySet) parse(ctx context.Context, body []byte) (map[string]*jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decoding JWKS: %w", err)
	}
	if set.Keys == nil {
		return nil, errors.New("JWKS has no keys member")
	}
	keys := make(map[string]*jose.JSONWebKey, len(set.Keys))
	for _, raw := range set.Keys {
		k := new(jose.JSONWebKey)
		err := k.UnmarshalJSON(raw)
		if err == nil {
			err = checkVerificationKey(k)
		}
		if err == nil {
			if _, dup := keys[k.KeyID]; dup {
				err = errors.New("duplicate key ID")
			}
		}
		if err != nil {
			s.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "resource: skipping JWKS key",
				slog.String("url", s.cfg.URL), slog.String("kid", k.KeyID), slog.Any("error", err))
			continue
		}
		keys[k.KeyID] = k
	}
	return keys, nil
}

// maxAge returns how long a response may be cached: its Cache-Control
// max-age within [MinAge, MaxAge], MinAge for no-cache or no-store, and
// DefaultAge when there is no directive.
func (s *RemoteKeySet) maxAge(h http.Header) time.Duration {
	age, ok := cacheControlMaxAge(h.Values("Cache-Control"))
	if !ok {
		return s.cfg.DefaultAge
	}
	return max(s.cfg.MinAge, min(age, s.cfg.MaxAge))
}

// cacheControlMaxAge reads max-age from Cache-Control values (RFC 9111
// §5.2.2.1). no-store and no-cache count as zero.
func cacheControlMaxAge(values []string) (time.Duration, bool) {
	age, found := time.Duration(0), false
	for _, v := range values {
		for d := range strings.SplitSeq(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return 0, true
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(arg), `"`), 10, 64)
				if err != nil || n < 0 {
					continue
				}
				const maxSeconds = int64(1<<63-1) / int64(time.Second)
				age, found = time.Duration(min(n, maxSeconds))*time.Second, true
			}
		}
	}
	return age, found
}

// readLimited reads r to the end, failing if it holds more than limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading response: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("response exceeds %d bytes", limit)
	}
	return body, nil
}
