package resource

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// IntrospectionConfig configures the RFC 7662 client used by
// ModeIntrospect and ModeLocalThenIntrospect.
//
// An active answer is checked like a JWT: it must carry iss equal to
// Config.Issuer, an aud containing Config.Audience and an exp not in the
// past, and a token_type, if present, of Bearer or DPoP (so a refresh token
// cannot pass for an access token); a DPoP token_type (RFC 9449 §5) must
// come with cnf.jkt. RFC 7662 makes these members optional; our
// authorization server always sends them.
type IntrospectionConfig struct {
	// URL is the introspection endpoint. Default: the introspection_endpoint
	// of the issuer metadata, else {Issuer}/introspect.
	URL string
	// ClientID and ClientSecret authenticate this resource server at the
	// endpoint with client_secret_basic (RFC 6749 §2.3.1). Required.
	ClientID     string
	ClientSecret string
	// CacheTTL, when positive, caches active answers for at most this long,
	// and never past the token's exp. A token revoked at the issuer is then
	// still accepted for up to CacheTTL: choose it as the longest delay
	// the service tolerates between revocation and refusal (a few seconds
	// to a minute). Zero disables the cache. Inactive answers are never
	// cached.
	CacheTTL time.Duration
	// MaxCacheEntries bounds the cache; default 10000.
	MaxCacheEntries int
}

// introspector is an RFC 7662 client with an optional cache.
type introspector struct {
	url, clientID, clientSecret string
	client                      *http.Client
	timeout                     time.Duration
	now                         func() time.Time
	logger                      *slog.Logger
	maxSize                     int64

	ttl        time.Duration
	maxEntries int
	mu         sync.Mutex
	cache      map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	claims  *Claims
	expires time.Time
}

// introspect asks the endpoint about rawToken and returns its claims when it
// is active. The answer's claims are checked like a JWT's: iss exact, aud
// containing audience, exp and nbf with leeway.
func (in *introspector) introspect(ctx context.Context, rawToken, issuer, audience string, leeway time.Duration) (*Claims, error) {
	// The cache is keyed by a hash so that it holds no bearer tokens.
	var key [sha256.Size]byte
	if in.ttl > 0 {
		key = sha256.Sum256([]byte(rawToken))
		if c, ok := in.cached(key); ok {
			return c, nil
		}
	}
	cs, raw, err := in.call(ctx, rawToken)
	if err != nil {
		return nil, fmt.Errorf("%w: introspection: %w", ErrUnavailable, err)
	}
	if !cs.Active {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, ErrTokenInactive)
	}
	if err := checkTokenType(cs); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	now := in.now()
	if err := cs.validate(issuer, audience, now, leeway); err != nil {
		return nil, fmt.Errorf("%w: introspected claims: %w", ErrInvalidToken, err)
	}
	c := cs.claims(raw)
	if in.ttl > 0 {
		expires := now.Add(in.ttl)
		if c.Expiry.Before(expires) {
			expires = c.Expiry
		}
		in.store(key, c, expires)
	}
	return c, nil
}

// checkTokenType checks an active answer's token_type (RFC 7662 §2.2):
// optional, but when present it must name an access token type, so that a
// refresh token cannot pass for one. That is "Bearer", or "DPoP" (RFC 9449
// §5) for a DPoP-bound token, which must then name its key in cnf.jkt
// (RFC 9449 §6.2); both case-insensitively (RFC 6749 §5.1).
func checkTokenType(cs *claimSet) error {
	switch {
	case cs.TokenType == "" || strings.EqualFold(cs.TokenType, "bearer"):
		return nil
	case strings.EqualFold(cs.TokenType, "dpop"):
		if cs.Cnf.JKT == "" {
			return errors.New("introspected token_type DPoP without cnf.jkt")
		}
		return nil
	}
	return fmt.Errorf("introspected token_type %q is not Bearer or DPoP", cs.TokenType)
}

// call POSTs the token to the endpoint (RFC 7662 §2.1).
func (in *introspector) call(ctx context.Context, rawToken string) (*claimSet, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	form := url.Values{"token": {rawToken}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.url, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: the client ID and secret are form-encoded before
	// being used as Basic credentials.
	req.SetBasicAuth(url.QueryEscape(in.clientID), url.QueryEscape(in.clientSecret))
	resp, err := in.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusUnauthorized {
			in.logger.LogAttrs(ctx, slog.LevelError, "resource: the introspection endpoint refused this resource server's client credentials",
				slog.String("url", in.url), slog.String("client_id", in.clientID))
		}
		return nil, nil, fmt.Errorf("unexpected status %s", resp.Status)
	}
	body, err := readLimited(resp.Body, in.maxSize)
	if err != nil {
		return nil, nil, err
	}
	cs := new(claimSet)
	if err := json.Unmarshal(body, cs); err != nil {
		return nil, nil, fmt.Errorf("decoding response: %w", err)
	}
	return cs, body, nil
}

func (in *introspector) cached(key [sha256.Size]byte) (*Claims, bool) {
	in.mu.Lock()
	e, ok := in.cache[key]
	in.mu.Unlock()
	if !ok || !in.now().Before(e.expires) {
		return nil, false
	}
	c := *e.claims // a copy, so one handler's edits cannot reach another
	return &c, true
}

func (in *introspector) store(key [sha256.Size]byte, c *Claims, expires time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cache == nil {
		in.cache = make(map[[sha256.Size]byte]cacheEntry)
	}
	if len(in.cache) >= in.maxEntries {
		now := in.now()
		for k, e := range in.cache {
			if !now.Before(e.expires) {
				delete(in.cache, k)
			}
		}
		// Still full: drop a tenth, arbitrarily. It is only a cache, and
		// dropping in bulk keeps the sweep above rare.
		for k := range in.cache {
			if len(in.cache) < in.maxEntries-in.maxEntries/10 {
				break
			}
			delete(in.cache, k)
		}
	}
	cp := *c
	in.cache[key] = cacheEntry{claims: &cp, expires: expires}
}

// errNoIntrospection is returned when a mode needs introspection that is
// not configured.
var errNoIntrospection = errors.New("resource: introspection needs Introspection.ClientID and ClientSecret")
