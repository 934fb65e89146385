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
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
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
	if err != nil || u.User != nil {
		// Not echoed: user info may hold a password, and so may the URL
		// that a parse error quotes.
		return fmt.Errorf("%s: must be an absolute URL without fragment or user info", what)
	}
	if !u.IsAbs() || u.Host == "" || u.Fragment != "" || strings.Contains(raw, "#") {
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
// least minClientRSABits), and no duplicate kid. It is the check of a key
// set registered by value (--jwks-file, registration jwks): the whole
// document is refused for any key that does not pass.
func ParseClientJWKS(raw []byte) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return set, fmt.Errorf("not a JWK Set: %w", err)
	}
	if len(set.Keys) == 0 {
		return set, errors.New("the set has no keys")
	}
	seen := map[string]bool{}
	for i := range set.Keys {
		if err := checkClientKey(i, &set.Keys[i], seen); err != nil {
			return set, err
		}
		if k := set.Keys[i]; k.Use != "" && k.Use != "sig" {
			return set, fmt.Errorf("key %d has use %q, not sig", i, k.Use)
		}
	}
	return set, nil
}

// checkClientKey refuses key i of a client's or a trusted issuer's set
// when it is private or symmetric, an RSA key of fewer than
// minClientRSABits, or has the kid of an earlier key (recorded in seen).
func checkClientKey(i int, k *jose.JSONWebKey, seen map[string]bool) error {
	if !k.Valid() || !k.IsPublic() {
		return fmt.Errorf("key %d is not a public key (private and symmetric keys are refused)", i)
	}
	if rk, ok := k.Key.(*rsa.PublicKey); ok && rk.N.BitLen() < minClientRSABits {
		return fmt.Errorf("key %d is an RSA key of %d bits; at least %d are required (RFC 7518 §3.3)", i, rk.N.BitLen(), minClientRSABits)
	}
	if k.KeyID != "" && seen[k.KeyID] {
		return fmt.Errorf("kid %q appears twice", k.KeyID)
	}
	seen[k.KeyID] = true
	return nil
}

// errNotJWKS is the error of a fetched document that is not a JWK Set.
var errNotJWKS = errors.New("jwks: not a JWK Set")

// parseFetchedJWKS parses a JWK Set fetched from a jwks_uri (a client's or
// a trusted issuer's) key by key. As RFC 7517 §5 asks, keys this server
// cannot use to verify a signature are ignored: those whose use is not
// "sig", whose alg is not one of PrivateKeyJWTAlgs (an encryption
// algorithm such as RSA-OAEP or ECDH-ES), and those of a key type or curve
// go-jose does not support (X25519, secp256k1, an RSA modulus beyond
// jose.MaxRSAModulusBits) or we do not verify with. Such documents are
// common: Keycloak's realm certs, for one, publish an encryption key
// beside the signing key. What remains is checked as strictly as a set
// registered by value (checkClientKey), and any failure, like a malformed
// key of a supported type, refuses the whole document.
//
// A document that is a JWK Set but has no usable key gives an empty set and
// no error: the owner withdrew its keys, and the empty set replaces the
// cached one.
func parseFetchedJWKS(raw []byte) (jose.JSONWebKeySet, error) {
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("%w: %w", errNotJWKS, err)
	}
	if doc.Keys == nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("%w: no keys member", errNotJWKS)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	seen := map[string]bool{}
	for i, rk := range *doc.Keys {
		var hdr struct {
			Use string `json:"use"`
			Alg string `json:"alg"`
		}
		if err := json.Unmarshal(rk, &hdr); err != nil {
			return jose.JSONWebKeySet{}, fmt.Errorf("jwks: key %d: %w", i, err)
		}
		if (hdr.Use != "" && hdr.Use != "sig") || (hdr.Alg != "" && !slices.Contains(PrivateKeyJWTAlgs, hdr.Alg)) {
			continue
		}
		var k jose.JSONWebKey
		if err := json.Unmarshal(rk, &k); err != nil {
			if errors.Is(err, jose.ErrUnsupportedKeyType) {
				continue
			}
			return jose.JSONWebKeySet{}, fmt.Errorf("jwks: key %d: %w", i, err)
		}
		if k.IsPublic() && !verifiesAssertions(k.Key) {
			continue // a public key of a type we do not verify with (ML-DSA)
		}
		if err := checkClientKey(i, &k, seen); err != nil {
			return jose.JSONWebKeySet{}, fmt.Errorf("jwks: %w", err)
		}
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

// verifiesAssertions reports whether a public key is of a type that
// verifies one of PrivateKeyJWTAlgs.
func verifiesAssertions(k any) bool {
	return slices.ContainsFunc(PrivateKeyJWTAlgs, func(alg string) bool { return keyFitsAlg(k, alg) })
}

// keySetCache holds the public keys of private_key_jwt clients and trusted
// issuers: registered by value (parsed once per registration) or fetched
// from their jwks_uri, kept for the document's Cache-Control max-age
// (clamped to minJWKSTTL .. maxJWKSTTL; default ttl), and refetched early
// when an assertion names an unknown kid, at most once per minRefetch, so
// that a key rotated at the owner is picked up without letting assertions
// with random kids make us fetch on every request. Fetches of one URL are
// deduplicated.
//
// A refetch that succeeds replaces the set, also by one with no usable key
// (the owner withdrew its keys: fail closed). A refetch that fails (network
// error, a status other than 200, a document that is not an acceptable JWK
// Set) keeps the old set for a bounded grace, until one more cache lifetime
// has passed after it expired, and then fails closed: a key the owner took
// down with its document stops working within two lifetimes.
type keySetCache struct {
	client     *http.Client
	ttl        time.Duration
	minRefetch time.Duration
	now        func() time.Time
	log        *slog.Logger
	fetches    atomic.Int64 // for tests and benchmarks

	mu sync.Mutex
	m  map[string]*cachedKeySet
}

type cachedKeySet struct {
	mu        sync.Mutex // held while fetching
	set       jose.JSONWebKeySet
	expires   time.Time
	fetchedAt time.Time
	// staleUntil ends the grace of a set whose refetch fails: its expiry
	// plus its lifetime (zero before the first successful fetch).
	staleUntil time.Time
	err        error // of the last fetch, when it failed
}

// newKeySetCache returns a cache whose fetches follow the outbound-URL
// policy (outbound.go) unless allowPrivate: a jwks_uri that resolves to a
// non-public address is never connected to, and the assertion fails
// closed (invalid_client). Redirects are not followed: a redirect could
// lead anywhere; the registered URL is the one. Failed fetches are logged
// to log at WARN.
func newKeySetCache(ttl, minRefetch time.Duration, now func() time.Time, allowPrivate bool, log *slog.Logger) *keySetCache {
	return &keySetCache{
		client: newOutboundClient(jwksFetchTimeout, allowPrivate),
		ttl:    ttl, minRefetch: minRefetch, now: now, log: log, m: map[string]*cachedKeySet{},
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
	var set jose.JSONWebKeySet
	switch {
	case len(jwks) > 0:
		sum := sha256.Sum256(jwks)
		e := kc.entry("value:" + owner + ":" + string(sum[:]))
		e.mu.Lock()
		if e.set.Keys == nil && e.err == nil {
			e.set, e.err = ParseClientJWKS(jwks)
			e.expires = time.Unix(1<<62, 0)
		}
		var setErr error
		set, setErr = e.set, e.err
		e.mu.Unlock()
		if setErr != nil {
			return nil, assertionError("The registered key set is unusable.")
		}
	case jwksURI != "":
		e := kc.entry("uri:" + jwksURI)
		var oe *oauthError
		if set, oe = kc.refresh(ctx, e, owner, jwksURI, false); oe != nil {
			return nil, oe
		}
		if k, ok := pickKey(set, kid, alg); ok {
			return k, nil
		}
		// Perhaps the owner rotated its keys: refetch, rate-limited.
		if set, oe = kc.refresh(ctx, e, owner, jwksURI, true); oe != nil {
			return nil, oe
		}
	default:
		return nil, assertionError("No keys are registered for the assertion's issuer.")
	}
	if k, ok := pickKey(set, kid, alg); ok {
		return k, nil
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

// refresh returns the key set of the entry for uri, fetching it first when
// it has expired, or with force when the last fetch is older than
// minRefetch. A failed fetch is retried after minRefetch; meanwhile, and
// until the grace of the last good set ends (staleUntil), that set is
// served; after it, or without one, the assertion fails closed. owner
// names the set's owner in the log.
func (kc *keySetCache) refresh(ctx context.Context, e *cachedKeySet, owner, uri string, force bool) (jose.JSONWebKeySet, *oauthError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := kc.now()
	fresh := now.Before(e.expires)
	recent := !e.fetchedAt.IsZero() && now.Sub(e.fetchedAt) < kc.minRefetch
	if !(fresh && !force) && !(recent && (force || e.err != nil)) {
		set, ttl, err := kc.fetch(ctx, uri)
		e.fetchedAt = now
		if err != nil {
			e.err = err
			attrs := []any{"owner", owner, "host", hostOf(uri), "err", err}
			if now.Before(e.staleUntil) {
				attrs = append(attrs, "old_set_kept_until", e.staleUntil)
			} else {
				attrs = append(attrs, "failing_closed", true)
			}
			kc.log.WarnContext(ctx, "fetching a jwks_uri failed", attrs...)
		} else {
			e.set, e.err, e.expires, e.staleUntil = set, nil, now.Add(ttl), now.Add(2*ttl)
		}
	}
	if e.err != nil && !now.Before(e.staleUntil) {
		return jose.JSONWebKeySet{}, assertionError("The registered key set could not be fetched.")
	}
	return e.set, nil
}

// hostOf is the host of a URL, for the log: the rest of a registered URL
// could carry a credential.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// fetch GETs a JWK Set, with a timeout and a size limit, and returns it
// (parseFetchedJWKS) with its cache lifetime. Its errors do not name the
// URL.
func (kc *keySetCache) fetch(ctx context.Context, uri string) (jose.JSONWebKeySet, time.Duration, error) {
	kc.fetches.Add(1)
	if err := ValidateJWKSURI(uri); err != nil {
		return jose.JSONWebKeySet{}, 0, errors.New("jwks_uri: not an acceptable URL")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return jose.JSONWebKeySet{}, 0, fmt.Errorf("jwks_uri: %w", withoutURL(err))
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := kc.client.Do(req)
	if err != nil {
		return jose.JSONWebKeySet{}, 0, fmt.Errorf("jwks_uri: %w", withoutURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return jose.JSONWebKeySet{}, 0, fmt.Errorf("jwks_uri: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return jose.JSONWebKeySet{}, 0, fmt.Errorf("jwks_uri: read: %w", withoutURL(err))
	}
	if len(body) > maxJWKSBytes {
		return jose.JSONWebKeySet{}, 0, fmt.Errorf("jwks_uri: document larger than %d bytes", maxJWKSBytes)
	}
	set, err := parseFetchedJWKS(body)
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
