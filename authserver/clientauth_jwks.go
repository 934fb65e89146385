package authserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/storage"
)

// Bounds of the client key cache (private_key_jwt).
const (
	// maxJWKSBytes bounds a client's JWK Set document.
	maxJWKSBytes = 64 << 10
	// jwksFetchTimeout bounds one fetch of a client's jwks_uri.
	jwksFetchTimeout = 5 * time.Second
	// minJWKSTTL and maxJWKSTTL clamp a jwks_uri's Cache-Control max-age.
	minJWKSTTL = 30 * time.Second
	maxJWKSTTL = time.Hour
	// maxCachedKeySets bounds the cache; it is cleared when full.
	maxCachedKeySets = 4096
)

// ValidateJWKSURI checks a client's jwks_uri (validateCallURL).
func ValidateJWKSURI(raw string) error { return validateCallURL("jwks_uri", raw) }

// validateCallURL checks a client URL the server calls (jwks_uri,
// backchannel_logout_uri): an absolute https URL, or http on a loopback
// host (127.0.0.1, [::1], localhost) for tests and development; no
// fragment, no user info. what names it in the error.
func validateCallURL(what, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" || strings.Contains(raw, "#") || u.User != nil {
		return fmt.Errorf("%s %q: must be an absolute URL without fragment or user info", what, raw)
	}
	if u.Scheme == "https" || (u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return nil
	}
	return fmt.Errorf("%s %q: must be https (http only on a loopback address)", what, raw)
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// minClientRSABits is the smallest RSA key a client or a trusted issuer may
// register (RFC 7518 §3.3: 2048 bits or more), as resource requires of
// token-signing keys.
const minClientRSABits = 2048

// ParseClientJWKS parses a client's JWK Set and checks that it holds at
// least one key, only public asymmetric signature keys (RSA ones of at
// least minClientRSABits), and no duplicate kid.
func ParseClientJWKS(raw []byte) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return set, fmt.Errorf("jwks: not a JWK Set: %w", err)
	}
	if len(set.Keys) == 0 {
		return set, errors.New("jwks: the set has no keys")
	}
	seen := map[string]bool{}
	for i, k := range set.Keys {
		if !k.Valid() || !k.IsPublic() {
			return set, fmt.Errorf("jwks: key %d is not a public key (private and symmetric keys are refused)", i)
		}
		if rk, ok := k.Key.(*rsa.PublicKey); ok && rk.N.BitLen() < minClientRSABits {
			return set, fmt.Errorf("jwks: key %d is an RSA key of %d bits; at least %d are required (RFC 7518 §3.3)", i, rk.N.BitLen(), minClientRSABits)
		}
		if k.Use != "" && k.Use != "sig" {
			return set, fmt.Errorf("jwks: key %d has use %q, not sig", i, k.Use)
		}
		if k.KeyID != "" && seen[k.KeyID] {
			return set, fmt.Errorf("jwks: kid %q appears twice", k.KeyID)
		}
		seen[k.KeyID] = true
	}
	return set, nil
}

// keySetCache holds the public keys of private_key_jwt clients: registered
// by value (parsed once per registration) or fetched from their jwks_uri,
// kept for the document's Cache-Control max-age (clamped to minJWKSTTL ..
// maxJWKSTTL; default ttl), and refetched early when an assertion names an
// unknown kid, at most once per minRefetch, so that a key rotated at the
// client is picked up without letting assertions with random kids make us
// fetch on every request. Fetches of one URL are deduplicated.
type keySetCache struct {
	client     *http.Client
	ttl        time.Duration
	minRefetch time.Duration
	now        func() time.Time
	fetches    atomic.Int64 // for tests and benchmarks

	mu sync.Mutex
	m  map[string]*cachedKeySet
}

type cachedKeySet struct {
	mu        sync.Mutex // held while fetching
	set       jose.JSONWebKeySet
	expires   time.Time
	fetchedAt time.Time
	err       error // of the last fetch, when no set is known
}

// newKeySetCache returns a cache whose fetches follow the outbound-URL
// policy (outbound.go) unless allowPrivate: a jwks_uri that resolves to a
// non-public address is never connected to, and the assertion fails
// closed (invalid_client). Redirects are not followed: a redirect could
// lead anywhere; the registered URL is the one.
func newKeySetCache(ttl, minRefetch time.Duration, now func() time.Time, allowPrivate bool) *keySetCache {
	return &keySetCache{
		client: newOutboundClient(jwksFetchTimeout, allowPrivate),
		ttl:    ttl, minRefetch: minRefetch, now: now, m: map[string]*cachedKeySet{},
	}
}

// entry returns the cache entry for a source key.
func (kc *keySetCache) entry(k string) *cachedKeySet {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	e, ok := kc.m[k]
	if !ok {
		if len(kc.m) >= maxCachedKeySets {
			clear(kc.m)
		}
		e = &cachedKeySet{}
		kc.m[k] = e
	}
	return e
}

// key returns the client's public key for an assertion with the header's
// kid and alg. Without a kid, the set must have exactly one key usable
// with alg, so that a request costs at most one verification.
func (kc *keySetCache) key(ctx context.Context, c storage.Client, kid, alg string) (any, *oauthError) {
	return kc.keyOf(ctx, "client:"+c.ID, c.JWKS, c.JWKSURI, kid, alg)
}

// keyOf is key for any owner of a key set (a client, a trusted issuer)
// registered by value (jwks) or by URL (jwksURI).
func (kc *keySetCache) keyOf(ctx context.Context, owner string, jwks []byte, jwksURI, kid, alg string) (any, *oauthError) {
	var e *cachedKeySet
	switch {
	case len(jwks) > 0:
		sum := sha256.Sum256(jwks)
		e = kc.entry("value:" + owner + ":" + string(sum[:]))
		e.mu.Lock()
		if e.set.Keys == nil && e.err == nil {
			e.set, e.err = ParseClientJWKS(jwks)
			e.expires = time.Unix(1<<62, 0)
		}
		e.mu.Unlock()
	case jwksURI != "":
		e = kc.entry("uri:" + jwksURI)
		if err := kc.refresh(ctx, e, jwksURI, false); err != nil {
			return nil, err
		}
	default:
		return nil, assertionError("No keys are registered for the assertion's issuer.")
	}
	e.mu.Lock()
	set, setErr := e.set, e.err
	e.mu.Unlock()
	if setErr != nil && len(set.Keys) == 0 {
		return nil, assertionError("The registered key set is unusable.")
	}
	if k, ok := pickKey(set, kid, alg); ok {
		return k, nil
	}
	if jwksURI != "" && len(jwks) == 0 {
		// Perhaps the owner rotated its keys: refetch, rate-limited.
		if err := kc.refresh(ctx, e, jwksURI, true); err != nil {
			return nil, err
		}
		e.mu.Lock()
		set = e.set
		e.mu.Unlock()
		if k, ok := pickKey(set, kid, alg); ok {
			return k, nil
		}
	}
	return nil, assertionError("No registered key matches the assertion's kid and alg.")
}

// pickKey selects the key for kid and alg: the one with that kid (whose
// alg, if it names one, must be alg), or without a kid the only key usable
// with alg.
func pickKey(set jose.JSONWebKeySet, kid, alg string) (any, bool) {
	var found *jose.JSONWebKey
	n := 0
	for i := range set.Keys {
		k := &set.Keys[i]
		if kid != "" && k.KeyID != kid {
			continue
		}
		if (k.Algorithm != "" && k.Algorithm != alg) || (k.Use != "" && k.Use != "sig") || !keyFitsAlg(k.Key, alg) {
			continue
		}
		found = k
		n++
	}
	if n != 1 {
		return nil, false
	}
	return found.Key, true
}

// keyFitsAlg reports whether a public key can verify alg.
func keyFitsAlg(k any, alg string) bool {
	switch k.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		return strings.HasPrefix(alg, "ES")
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// refresh fetches the JWK Set at uri when the entry has expired, or with
// force when the last fetch is older than minRefetch. A failed fetch keeps
// the previous set (until it is refreshed successfully) and is retried
// after minRefetch.
func (kc *keySetCache) refresh(ctx context.Context, e *cachedKeySet, uri string, force bool) *oauthError {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := kc.now()
	fresh := now.Before(e.expires)
	recent := now.Sub(e.fetchedAt) < kc.minRefetch
	if (fresh && !force) || (!e.fetchedAt.IsZero() && recent && (force || e.err != nil)) {
		if e.err != nil && len(e.set.Keys) == 0 {
			return assertionError("The registered key set could not be fetched.")
		}
		return nil
	}
	set, ttl, err := kc.fetch(ctx, uri)
	e.fetchedAt = now
	if err != nil {
		e.err = err
		if len(e.set.Keys) == 0 {
			return assertionError("The registered key set could not be fetched.")
		}
		return nil
	}
	e.set, e.err, e.expires = set, nil, now.Add(ttl)
	return nil
}

// fetch GETs a JWK Set, with a timeout and a size limit, and returns it
// with its cache lifetime.
func (kc *keySetCache) fetch(ctx context.Context, uri string) (jose.JSONWebKeySet, time.Duration, error) {
	kc.fetches.Add(1)
	if err := ValidateJWKSURI(uri); err != nil {
		return jose.JSONWebKeySet{}, 0, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return jose.JSONWebKeySet{}, 0, fmt.Errorf("jwks_uri: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := kc.client.Do(req)
	if err != nil {
		return jose.JSONWebKeySet{}, 0, fmt.Errorf("jwks_uri: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return jose.JSONWebKeySet{}, 0, fmt.Errorf("jwks_uri: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return jose.JSONWebKeySet{}, 0, fmt.Errorf("jwks_uri: read: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return jose.JSONWebKeySet{}, 0, fmt.Errorf("jwks_uri: document larger than %d bytes", maxJWKSBytes)
	}
	set, err := ParseClientJWKS(body)
	if err != nil {
		return set, 0, err
	}
	return set, kc.ttlOf(resp.Header.Get("Cache-Control")), nil
}

// ttlOf reads max-age from Cache-Control, clamped; the default otherwise.
func (kc *keySetCache) ttlOf(cc string) time.Duration {
	for _, d := range strings.Split(cc, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(d), "=")
		if !ok || !strings.EqualFold(name, "max-age") {
			continue
		}
		n, err := strconv.Atoi(strings.Trim(val, `"`))
		if err != nil || n < 0 {
			break
		}
		return min(max(time.Duration(n)*time.Second, minJWKSTTL), maxJWKSTTL)
	}
	return kc.ttl
}
