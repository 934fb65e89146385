package resource

import (
	"context"
	"crypto/ecdsa"
	crand "crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// newKeySet returns a RemoteKeySet for the issuer's JWKS on its clock.
func newKeySet(t testing.TB, is *testIssuer, edit func(*RemoteKeySetConfig)) *RemoteKeySet {
	t.Helper()
	cfg := RemoteKeySetConfig{URL: is.jwksURL(), Now: is.clock.Now, Logger: discardLogger()}
	if edit != nil {
		edit(&cfg)
	}
	s, err := NewRemoteKeySet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.background.Wait)
	return s
}

func mustKey(t *testing.T, s KeySet, kid string) {
	t.Helper()
	if _, err := s.Key(t.Context(), kid); err != nil {
		t.Fatalf("Key(%q): %v", kid, err)
	}
}

func TestRemoteKeySetFetchesOnceForConcurrentRequests(t *testing.T) {
	is := newTestIssuer(t)
	is.set(func(is *testIssuer) { is.jwksDelay = 50 * time.Millisecond })
	s := newKeySet(t, is, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			if _, err := s.Key(t.Context(), "ec-1"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := is.jwksFetches.Load(); n != 1 {
		t.Errorf("%d fetches for 100 concurrent cold requests, want 1", n)
	}
}

func TestRemoteKeySetHonoursMaxAgeWithinBounds(t *testing.T) {
	cases := []struct {
		cacheControl string
		want         time.Duration
	}{
		{"public, max-age=600", 600 * time.Second},
		{"max-age=5", DefaultJWKSMinAge},        // raised to MinAge
		{"max-age=99999999", DefaultJWKSMaxAge}, // lowered to MaxAge
		{"no-store", DefaultJWKSMinAge},
		{"", DefaultJWKSAge},
		{"max-age=junk", DefaultJWKSAge},
	}
	for _, tc := range cases {
		t.Run(tc.cacheControl, func(t *testing.T) {
			is := newTestIssuer(t)
			is.set(func(is *testIssuer) { is.maxAge = tc.cacheControl })
			s := newKeySet(t, is, nil)
			mustKey(t, s, "ec-1")
			is.clock.Advance(tc.want - time.Second)
			mustKey(t, s, "ec-1")
			s.background.Wait()
			if n := is.jwksFetches.Load(); n != 1 {
				t.Fatalf("refetched before max-age: %d fetches", n)
			}
			is.clock.Advance(2 * time.Second)
			mustKey(t, s, "ec-1") // served from the cache, refresh in the background
			s.background.Wait()
			if n := is.jwksFetches.Load(); n != 2 {
				t.Fatalf("after max-age: %d fetches, want 2", n)
			}
		})
	}
}

func TestRemoteKeySetUsesETag(t *testing.T) {
	is := newTestIssuer(t)
	s := newKeySet(t, is, nil)
	mustKey(t, s, "ec-1")
	is.clock.Advance(301 * time.Second)
	mustKey(t, s, "ec-1")
	s.background.Wait()
	if n := is.notModified.Load(); n != 1 {
		t.Fatalf("%d 304 answers, want 1", n)
	}
	// The 304 renewed the cache's lifetime.
	is.clock.Advance(200 * time.Second)
	mustKey(t, s, "ec-1")
	s.background.Wait()
	if n := is.jwksFetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

func TestUnknownKidFloodFetchesOncePerCooldown(t *testing.T) {
	is := newTestIssuer(t)
	h := newAuth(t, is, nil).Middleware(okHandler)
	if w := serve(h, "Bearer "+is.mint(t)); w.Code != 200 { // warm: 1 fetch
		t.Fatalf("status %d", w.Code)
	}
	// 1,000 tokens with random kids, signed by an attacker's key, spread
	// over 95 seconds, 100 at a time concurrently.
	attacker := newECKey("")
	forged := make([]string, 1000)
	for i := range forged {
		attacker.kid = fmt.Sprintf("forged-%d", rand.Int64())
		forged[i] = mintWith(t, attacker, map[string]any{"typ": "at+jwt"}, is.claims())
	}
	start := is.clock.Now()
	for batch := range 10 {
		var wg sync.WaitGroup
		for _, tok := range forged[batch*100 : (batch+1)*100] {
			wg.Go(func() {
				if w := serve(h, "Bearer "+tok); w.Code != 401 {
					t.Errorf("status %d, want 401", w.Code)
				}
			})
		}
		wg.Wait()
		if batch < 9 {
			is.clock.Advance(95 * time.Second / 9)
		}
	}
	elapsed := is.clock.Now().Sub(start)
	maxFetches := 1 + int64(elapsed/DefaultJWKSRefreshCooldown) + 1
	if n := is.jwksFetches.Load(); n > maxFetches {
		t.Errorf("%d fetches over %v, want at most %d (one per %v cooldown)", n, elapsed, maxFetches, DefaultJWKSRefreshCooldown)
	}
	// Genuine tokens keep working.
	if w := serve(h, "Bearer "+is.mint(t)); w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
}

func TestIssuerDownForAMinuteFailsNoRequest(t *testing.T) {
	is := newTestIssuer(t)
	keys := newKeySet(t, is, nil)
	h := newAuth(t, is, func(c *Config) { c.KeySet = keys }).Middleware(okHandler)
	request := func() {
		t.Helper()
		if w := serve(h, "Bearer "+is.mint(t)); w.Code != 200 {
			t.Fatalf("at %v: status %d", is.clock.Now(), w.Code)
		}
		keys.background.Wait()
	}
	request()
	is.set(func(is *testIssuer) { is.status = http.StatusServiceUnavailable })
	// The cache expires after 300 s; the issuer stays down for a minute
	// after that, and requests come every second.
	is.clock.Advance(300 * time.Second)
	for range 61 {
		is.clock.Advance(time.Second)
		request()
	}
	if n := is.jwksFetches.Load(); n < 2 || n > 4 {
		t.Errorf("%d fetches while down, want a retry about every cooldown", n)
	}
	// Back up: the next refresh succeeds.
	is.set(func(is *testIssuer) { is.status = 0 })
	is.clock.Advance(DefaultJWKSRefreshCooldown)
	request()
	if st := keys.state.Load(); !st.expires.After(is.clock.Now()) {
		t.Error("the cache was not renewed after the issuer came back")
	}
}

func TestRemoteKeySetDoesNotBlockOnHangingIssuerWhenKeyIsCached(t *testing.T) {
	is := newTestIssuer(t)
	s := newKeySet(t, is, func(c *RemoteKeySetConfig) { c.FetchTimeout = 200 * time.Millisecond })
	mustKey(t, s, "ec-1")
	is.set(func(is *testIssuer) { is.hang = make(chan struct{}) })
	is.clock.Advance(time.Hour)
	start := time.Now()
	for range 10 {
		mustKey(t, s, "ec-1")
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("cached-key lookups took %v while the issuer hung", d)
	}
	s.background.Wait() // the background fetch gives up after FetchTimeout
	if n := is.jwksFetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

func TestRemoteKeySetFetchTimeout(t *testing.T) {
	is := newTestIssuer(t)
	is.set(func(is *testIssuer) { is.hang = make(chan struct{}) })
	s := newKeySet(t, is, func(c *RemoteKeySetConfig) { c.FetchTimeout = 100 * time.Millisecond })
	start := time.Now()
	_, err := s.Key(t.Context(), "ec-1")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("gave up after %v", d)
	}
	// The caller's context also bounds the wait.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	is.clock.Advance(time.Minute)
	if _, err := s.Key(ctx, "ec-1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestRemoteKeySetBoundsResponseSize(t *testing.T) {
	is := newTestIssuer(t)
	s := newKeySet(t, is, func(c *RemoteKeySetConfig) { c.MaxResponseSize = 4096 })
	mustKey(t, s, "ec-1")
	huge := `{"keys":[` + strings.Repeat(`{"kty":"oct","k":"AAAA"},`, 1000) + `{"kty":"oct","k":"AAAA"}]}`
	is.set(func(is *testIssuer) { is.jwksBody = []byte(huge) })
	is.clock.Advance(time.Hour)
	mustKey(t, s, "ec-1") // stale, refresh fails on size, old keys stay
	s.background.Wait()
	if _, err := s.Key(t.Context(), "ec-1"); err != nil {
		t.Fatalf("the last good keys were dropped: %v", err)
	}
	cold := newKeySet(t, is, func(c *RemoteKeySetConfig) { c.MaxResponseSize = 4096 })
	if _, err := cold.Key(t.Context(), "ec-1"); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("cold cache: err = %v", err)
	}
}

func TestRemoteKeySetSkipsUnusableKeys(t *testing.T) {
	is := newTestIssuer(t)
	good := newECKey("good")
	other := newECKey("x")
	weak, err := rsa.GenerateKey(crand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	marshal := func(k jose.JSONWebKey) string {
		b, err := k.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	body := `{"keys":[` + strings.Join([]string{
		`{"kty":"oct","kid":"hmac","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}`,
		marshal(jose.JSONWebKey{Key: other.priv.Public(), KeyID: "enc", Use: "enc"}),
		marshal(jose.JSONWebKey{Key: other.priv, KeyID: "private"}),
		marshal(jose.JSONWebKey{Key: weak.Public(), KeyID: "weak"}),
		marshal(jose.JSONWebKey{Key: other.priv.Public(), KeyID: "mislabelled", Algorithm: "RS256"}),
		marshal(jose.JSONWebKey{Key: other.priv.Public()}),
		`{"kty":"future-kty","kid":"future"}`,
		`{"kty":"EC","kid":"broken","crv":"P-256"}`,
		marshal(good.public()),
		marshal(jose.JSONWebKey{Key: other.priv.Public(), KeyID: "good"}), // duplicate kid
	}, ",") + `]}`
	is.set(func(is *testIssuer) { is.jwksBody = []byte(body) })
	s := newKeySet(t, is, nil)
	k, err := s.Key(t.Context(), "good")
	if err != nil {
		t.Fatal(err)
	}
	if !k.Key.(*ecdsa.PublicKey).Equal(good.priv.Public()) {
		t.Error("the duplicate kid replaced the first key")
	}
	for _, kid := range []string{"hmac", "enc", "private", "weak", "mislabelled", "", "future", "broken"} {
		if _, err := s.Key(t.Context(), kid); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("kid %q: err = %v, want ErrUnknownKey", kid, err)
		}
	}
}

func TestStaticKeySet(t *testing.T) {
	k := newEdKey("ed")
	s, err := NewStaticKeySet(k.public())
	if err != nil {
		t.Fatal(err)
	}
	mustKey(t, s, "ed")
	if _, err := s.Key(t.Context(), "other"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("err = %v", err)
	}
	if _, err := NewStaticKeySet(jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hmac"}); err == nil {
		t.Error("a symmetric key was accepted")
	}
	if _, err := NewStaticKeySet(k.public(), k.public()); err == nil {
		t.Error("a duplicate kid was accepted")
	}
}

func TestKeyRotationCausesNoFailedRequest(t *testing.T) {
	// The issuer rotates the way ours does: publish the next key, sign with
	// it once caches have had time to see it, retire the old one after the
	// longest token it signed has expired. Requests come every 10 seconds of
	// fake time, with tokens from the issuer's current key.
	is := newTestIssuer(t, newECKey("k1"))
	rks := newKeySet(t, is, nil)
	h := newAuth(t, is, func(c *Config) { c.KeySet = rks }).Middleware(okHandler)
	keys := []*testKey{is.signer}
	step := func(t *testing.T, d time.Duration) {
		t.Helper()
		for end := is.clock.Now().Add(d); is.clock.Now().Before(end); is.clock.Advance(10 * time.Second) {
			if w := serve(h, "Bearer "+is.mint(t)); w.Code != 200 {
				t.Fatalf("at %v: status %d, %s", is.clock.Now(), w.Code, w.Header().Get("WWW-Authenticate"))
			}
			rks.background.Wait() // let a background refresh read the clock before it moves
		}
	}
	for i := 2; i <= 4; i++ {
		step(t, 10*time.Minute)
		next := newECKey(fmt.Sprintf("k%d", i))
		keys = append(keys, next)
		is.publish(nil, keys...) // pre-publish
		step(t, 10*time.Minute)
		is.publish(next, keys...) // sign with it
		step(t, time.Hour+time.Minute)
		keys = keys[1:]
		is.publish(nil, keys...) // retire the old key
	}
	t.Run("SwitchWithoutPrepublication", func(t *testing.T) {
		// An issuer that signs with a new key at once still causes no
		// failure once the cooldown since the last fetch has passed: the
		// unknown kid triggers a fetch that the request waits for. (A
		// switch within the cooldown of the last fetch would fail until
		// the cooldown ends: that is what pre-publication is for.)
		is.clock.Advance(DefaultJWKSRefreshCooldown)
		next := newECKey("sudden")
		is.publish(next, append(keys, next)...)
		step(t, time.Minute)
	})
}
