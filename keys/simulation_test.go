package keys

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

var allAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// signToken returns a compact JWS of claims made with s, "kid" in the header.
func signToken(t testing.TB, s Signer, claims any) string {
	t.Helper()
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(s.Algorithm), Key: s.Key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", s.KeyID),
	)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	compact, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return compact
}

// verifyWithJWKS verifies a parsed token against a JWK Set, selecting the key
// by the token's kid.
func verifyWithJWKS(obj *jose.JSONWebSignature, set *jose.JSONWebKeySet) error {
	kid := obj.Signatures[0].Header.KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		return fmt.Errorf("kid %s: %d keys in JWKS", kid, len(keys))
	}
	if _, err := obj.Verify(&keys[0]); err != nil {
		return fmt.Errorf("kid %s: %w", kid, err)
	}
	return nil
}

// fetchJWKS fetches the JWKS from m's handler and returns the body, ETag and
// the max-age of its Cache-Control header.
func fetchJWKS(t testing.TB, m *Manager) (body []byte, etag string, maxAge time.Duration) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.JWKSHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/jwks", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /jwks: %d", rec.Code)
	}
	cc := rec.Header().Get("Cache-Control")
	n, err := strconv.Atoi(strings.TrimPrefix(cc, "public, max-age="))
	if err != nil {
		t.Fatalf("Cache-Control %q", cc)
	}
	return rec.Body.Bytes(), rec.Header().Get("ETag"), time.Duration(n) * time.Second
}

// TestTokensVerifyThroughRotation simulates months of automatic rotation on
// two instances sharing one store, and checks that every token verifies, at
// every moment until it expires, against any JWKS a cache may hold.
//
// Instance a performs Run's step every 10 minutes; instance b only every
// ReloadInterval (20 minutes), and before a within the same minute, so it
// is a full ReloadInterval behind storage at worst. Both sign a token at
// every step. Twelve caching verifiers, each fetching from one of the two
// instances with its own phase, refetch only once their copy is older than
// the max-age the handler announces.
func TestTokensVerifyThroughRotation(t *testing.T) {
	cases := []struct {
		alg    string
		days   int
		period time.Duration
	}{
		{EdDSA, 90, 7 * 24 * time.Hour},
		{ES256, 90, 10 * 24 * time.Hour},
		{RS256, 10, 3 * 24 * time.Hour},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%dDays", tc.alg, tc.days), func(t *testing.T) {
			t.Parallel()
			days := tc.days
			if testing.Short() {
				days = min(days, 21)
			}
			simulateRotation(t, tc.alg, days, tc.period)
		})
	}
}

func simulateRotation(t *testing.T, alg string, days int, period time.Duration) {
	const step = 10 * time.Minute
	clk := newClock()
	cfg := testConfig(clk, alg)
	cfg.RotationPeriod = period
	cfg.ReloadInterval = 2 * step
	store := newFakeStore()
	a := mustNew(t, store, cfg)
	b := mustNew(t, store.handle(), cfg)
	instances := []*Manager{a, b}
	lifetime := cfg.TokenLifetime

	type verifier struct {
		src     *Manager
		start   time.Time
		etag    string
		fetched time.Time
		maxAge  time.Duration
	}
	var verifiers []*verifier
	for i := range 12 {
		verifiers = append(verifiers, &verifier{src: instances[i%2], start: epoch.Add(time.Duration(i/2) * step)})
	}
	type token struct {
		id     int
		obj    *jose.JSONWebSignature
		issued time.Time
		by     string
	}
	type memoKey struct {
		token int
		etag  string
	}
	var (
		live     []token
		nextID   int
		sets     = make(map[string]*jose.JSONWebKeySet) // parsed JWKS by ETag
		checked  = make(map[memoKey]bool)
		kids     = make(map[string]bool) // keys that signed
		verified int
		failures int
	)

	end := epoch.Add(time.Duration(days) * 24 * time.Hour)
	for i := 0; ; i++ {
		now := epoch.Add(time.Duration(i) * step)
		if now.After(end) {
			break
		}
		clk.Set(now)
		if i%2 == 1 {
			if err := b.Step(t.Context()); err != nil {
				t.Fatalf("%v: b.Step: %v", now, err)
			}
		}
		if err := a.Step(t.Context()); err != nil {
			t.Fatalf("%v: a.Step: %v", now, err)
		}

		for j, m := range instances {
			s, err := m.Current()
			if err != nil {
				t.Fatal(err)
			}
			kids[s.KeyID] = true
			compact := signToken(t, s, map[string]any{"iat": now.Unix(), "exp": now.Add(lifetime).Unix(), "n": nextID})
			obj, err := jose.ParseSignedCompact(compact, allAlgs)
			if err != nil {
				t.Fatal(err)
			}
			live = append(live, token{id: nextID, obj: obj, issued: now, by: string(rune('a' + j))})
			nextID++
		}
		for len(live) > 0 && now.After(live[0].issued.Add(lifetime)) {
			live = live[1:]
		}

		for vi, v := range verifiers {
			if now.Before(v.start) {
				continue
			}
			if v.etag == "" || now.Sub(v.fetched) > v.maxAge {
				var body []byte
				body, v.etag, v.maxAge = fetchJWKS(t, v.src)
				if v.maxAge != cfg.JWKSMaxAge {
					t.Fatalf("max-age %v, want %v", v.maxAge, cfg.JWKSMaxAge)
				}
				v.fetched = now
				if sets[v.etag] == nil {
					var set jose.JSONWebKeySet
					if err := json.Unmarshal(body, &set); err != nil {
						t.Fatal(err)
					}
					sets[v.etag] = &set
				}
			}
			for _, tok := range live {
				k := memoKey{tok.id, v.etag}
				if checked[k] {
					continue
				}
				checked[k] = true
				verified++
				if err := verifyWithJWKS(tok.obj, sets[v.etag]); err != nil {
					failures++
					if failures <= 10 {
						t.Errorf("at %v: token issued %v by %s fails with verifier %d's JWKS fetched %v: %v",
							now, tok.issued, tok.by, vi, v.fetched, err)
					}
				}
			}
		}
	}

	rotations := len(kids) - 1
	t.Logf("%s: %d tokens, %d distinct (token, JWKS) verifications, %d keys signed (%d rotations), %d failures",
		alg, nextID, verified, len(kids), rotations, failures)
	if failures > 0 {
		t.Errorf("%d verification failures", failures)
	}
	if rotations < 2 {
		t.Errorf("only %d rotations in %d days", rotations, days)
	}
	store.assertHealthy(t)
	// Old keys are deleted: at most next, active and the retired keys of
	// the retention window remain.
	if n := len(store.stored(t).Keys); n > 3 {
		t.Errorf("%d keys in the set at the end, want at most 3", n)
	}
}
