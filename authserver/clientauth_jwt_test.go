package authserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/oauthkit/authserver/internal/assertiontest"
	"github.com/oauthkit/authserver/storage"
)

const csjwtSecret = "csjwt-secret-0123456789-0123456789-abcdef"

// jwtClients are the clients of the JWT authentication tests.
type jwtClients struct {
	es, rs, rs2 *jwtKey
	// jwks serves the RS256 client's key set; swap it to rotate.
	jwks       atomic.Pointer[[]byte]
	jwksHits   atomic.Int64
	jwksURL    string
	jwksMaxAge string
}

type jwtKey struct {
	kid string
	alg jose.SignatureAlgorithm
	key any // private key
}

func (k *jwtKey) publicJWK() jose.JSONWebKey {
	var pub any
	switch p := k.key.(type) {
	case *ecdsa.PrivateKey:
		pub = p.Public()
	case *rsa.PrivateKey:
		pub = p.Public()
	}
	return jose.JSONWebKey{Key: pub, KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

func jwksOf(keys ...*jwtKey) []byte {
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, k.publicJWK())
	}
	b, _ := json.Marshal(set)
	return b
}

func newECKey(t testing.TB, kid string) *jwtKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &jwtKey{kid: kid, alg: jose.ES256, key: k}
}

func newRSAKey(t testing.TB, kid string) *jwtKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &jwtKey{kid: kid, alg: jose.RS256, key: k}
}

// seedJWTClients registers pk-es (ES256 key by value, code flow for PAR,
// introspection), pk-rs (RS256 key at a jwks_uri served by httptest) and
// cs-jwt (client_secret_jwt).
func seedJWTClients(t testing.TB, env *testEnv) *jwtClients {
	t.Helper()
	jc := &jwtClients{es: newECKey(t, "es-1"), rs: newRSAKey(t, "rs-1"), rs2: newRSAKey(t, "rs-2")}
	b := jwksOf(jc.rs)
	jc.jwks.Store(&b)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		jc.jwksHits.Add(1)
		if jc.jwksMaxAge != "" {
			w.Header().Set("Cache-Control", "max-age="+jc.jwksMaxAge)
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(*jc.jwks.Load())
	}))
	t.Cleanup(jwks.Close)
	jc.jwksURL = jwks.URL + "/jwks"
	sealed, err := env.as.secretBox.Seal("cs-jwt", []byte(csjwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for _, c := range []storage.Client{
		{ID: "pk-es", TokenEndpointAuthMethod: AuthMethodPrivateKey, JWKS: jwksOf(jc.es), Introspect: true,
			GrantTypes: []string{grantClientCredentials, grantAuthorizationCode}, Scopes: []string{"read"}, RedirectURIs: []string{"https://pk.example/cb"}},
		{ID: "pk-rs", TokenEndpointAuthMethod: AuthMethodPrivateKey, JWKSURI: jc.jwksURL, GrantTypes: []string{grantClientCredentials}, Scopes: []string{"read"}},
		{ID: "cs-jwt", TokenEndpointAuthMethod: AuthMethodSecretJWT, SecretCiphertext: sealed, GrantTypes: []string{grantClientCredentials}, Scopes: []string{"read"}},
	} {
		if err := ValidateClient(c, RegistrationNames{}); err != nil {
			t.Fatalf("%s: %v", c.ID, err)
		}
		c.CreatedAt, c.UpdatedAt = now, now
		if err := env.store.CreateClient(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	return jc
}

// goodClaims are valid assertion claims for client at aud.
func goodClaims(client, aud string) jwt.Claims {
	return assertiontest.Claims(client, client, aud, time.Minute)
}

func assertionForm(a string, extra ...string) url.Values {
	v := url.Values{"client_assertion_type": {clientAssertionType}, "client_assertion": {a}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

func (env *testEnv) clientCredentials(t testing.TB, a string) (int, map[string]any) {
	t.Helper()
	resp := env.post("/token", assertionForm(a, "grant_type", "client_credentials", "scope", "read"), "", "")
	return resp.StatusCode, decode(t, resp)
}

func TestPrivateKeyJWTAtEveryEndpoint(t *testing.T) {
	env := newTestEnv(t, openMemory(t), allowPrivateClientURLs) // pk-rs's jwks_uri is on 127.0.0.1
	jc := seedJWTClients(t, env)
	tokenURL := env.issuer + "/token"

	// ES256 by value, aud = the token endpoint, at /token.
	code, m := env.clientCredentials(t, assertiontest.Sign(t, jose.ES256, jc.es.key, jc.es.kid, goodClaims("pk-es", tokenURL)))
	if code != 200 {
		t.Fatalf("ES256 private_key_jwt: %d %v", code, m)
	}
	at := m["access_token"].(string)
	// RS256 from the jwks_uri, aud = the issuer, as an array.
	c := goodClaims("pk-rs", "x")
	c.Audience = jwt.Audience{"https://other.example", env.issuer}
	if code, m := env.clientCredentials(t, assertiontest.Sign(t, jose.RS256, jc.rs.key, jc.rs.kid, c)); code != 200 {
		t.Fatalf("RS256 private_key_jwt: %d %v", code, m)
	}

	// /introspect with aud = the introspection endpoint.
	resp := env.post("/introspect", assertionForm(assertiontest.Sign(t, jose.ES256, jc.es.key, jc.es.kid, goodClaims("pk-es", env.issuer+"/introspect")), "token", at), "", "")
	if m := decode(t, resp); resp.StatusCode != 200 || m["active"] != true {
		t.Fatalf("introspect: %d %v", resp.StatusCode, m)
	}
	// /par.
	form := assertionForm(assertiontest.Sign(t, jose.ES256, jc.es.key, jc.es.kid, goodClaims("pk-es", env.issuer+"/par")),
		"response_type", "code", "state", "state-0123", "client_id", "pk-es", "redirect_uri", "https://pk.example/cb", "scope", "read",
		"code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method", "S256")
	resp = env.post("/par", form, "", "")
	if m := decode(t, resp); resp.StatusCode != http.StatusCreated || m["request_uri"] == nil {
		t.Fatalf("par: %d %v", resp.StatusCode, m)
	}
	// /revoke, then the token is inactive.
	resp = env.post("/revoke", assertionForm(assertiontest.Sign(t, jose.ES256, jc.es.key, jc.es.kid, goodClaims("pk-es", env.issuer+"/revoke")), "token", at), "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d %v", resp.StatusCode, decode(t, resp))
	}
	resp.Body.Close()
	if m := env.introspect(at); m["active"] != false {
		t.Fatalf("revoked token: %v", m)
	}
	// The assertion for one endpoint is refused at another.
	resp = env.post("/introspect", assertionForm(assertiontest.Sign(t, jose.ES256, jc.es.key, jc.es.kid, goodClaims("pk-es", tokenURL)), "token", at), "", "")
	if m := decode(t, resp); resp.StatusCode != 401 || m["error"] != "invalid_client" {
		t.Fatalf("token-endpoint aud at /introspect: %d %v", resp.StatusCode, m)
	}
}

func TestClientAssertionRefusals(t *testing.T) {
	env := newTestEnv(t, openMemory(t), func(c *Config) { c.Throttle.Disabled = true })
	jc := seedJWTClients(t, env)
	tokenURL := env.issuer + "/token"
	now := time.Now()
	replayed := assertiontest.Sign(t, jose.ES256, jc.es.key, jc.es.kid, goodClaims("pk-es", tokenURL))
	if code, m := env.clientCredentials(t, replayed); code != 200 {
		t.Fatalf("first use: %d %v", code, m)
	}
	other := newECKey(t, "es-1") // same kid, a key the client never registered
	mod := func(f func(*jwt.Claims)) jwt.Claims {
		c := goodClaims("pk-es", tokenURL)
		f(&c)
		return c
	}
	esPub, _ := x509.MarshalPKIXPublicKey(jc.es.key.(*ecdsa.PrivateKey).Public())
	unsigned := func() string {
		h := `{"alg":"none","kid":"es-1"}`
		b, _ := json.Marshal(goodClaims("pk-es", tokenURL))
		return b64(h) + "." + b64(string(b)) + "."
	}
	for _, tc := range []struct {
		name, assertion string
	}{
		{"replayed jti", replayed},
		{"wrong aud", assertiontest.Sign(t, jose.ES256, jc.es.key, jc.es.kid, goodClaims("pk-es", "https://elsewhere.example/token"))},
		{"expired", assertiontest.Sign(t, jose.ES256, jc.es.key, jc.es.kid, mod(func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(now.Add(-2 * time.Minute)) }))},
		{"no exp", assertiontest.Sign(t, jose.ES256, jc.es.key, jc.es.kid, mod(func(c *jwt.Claims) { c.Expiry = nil }))},
		{"exp too far ahead", assertiontest.Sign(t, jose.ES256, jc.es.key, jc.es.kid, mod(func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(now.Add(10 * time.Minute)) }))},
		{"no jti", assertiontest.Sign(t, jose.ES256, jc.es.key, jc.es.kid, mod(func(c *jwt.Claims) { c.ID = "" }))},
		{"nbf in the future", assertiontest.Sign(t, jose.ES256, jc.es.key, jc.es.kid, mod(func(c *jwt.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(2 * time.Minute)) }))},
		{"sub differs", assertiontest.Sign(t, jose.ES256, jc.es.key, jc.es.kid, mod(func(c *jwt.Claims) { c.Subject = "someone" }))},
		{"key not in the client's set", assertiontest.Sign(t, jose.ES256, other.key, "es-1", goodClaims("pk-es", tokenURL))},
		{"unknown kid", assertiontest.Sign(t, jose.ES256, other.key, "es-9", goodClaims("pk-es", tokenURL))},
		{"alg none", unsigned()},
		{"HMAC key confusion", assertiontest.Sign(t, jose.HS256, esPub, jc.es.kid, goodClaims("pk-es", tokenURL))},
		{"HMAC key confusion with the JWK", assertiontest.Sign(t, jose.HS256, *jwksOfBytes(jc.es), jc.es.kid, goodClaims("pk-es", tokenURL))},
		{"client_secret_jwt with the wrong secret", assertiontest.Sign(t, jose.HS256, []byte("wrong-secret-0123456789-0123456789-abcdef"), "", goodClaims("cs-jwt", tokenURL))},
		{"private key assertion for a client_secret_jwt client", assertiontest.Sign(t, jose.ES256, jc.es.key, "", goodClaims("cs-jwt", tokenURL))},
		{"assertion for a secret client", assertiontest.Sign(t, jose.ES256, jc.es.key, "", goodClaims("app", tokenURL))},
		{"unknown client", assertiontest.Sign(t, jose.ES256, jc.es.key, "", goodClaims("nobody", tokenURL))},
		{"garbage", "not.a.jwt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := env.clientCredentials(t, tc.assertion)
			if code != 401 || m["error"] != "invalid_client" {
				t.Fatalf("%d %v, want 401 invalid_client", code, m)
			}
		})
	}
	t.Run("secret for a private_key_jwt client", func(t *testing.T) {
		resp := env.post("/token", url.Values{"grant_type": {"client_credentials"}}, "pk-es", "whatever-0123456789-0123456789-abcdef")
		if m := decode(t, resp); resp.StatusCode != 401 || m["error"] != "invalid_client" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("assertion and basic together", func(t *testing.T) {
		resp := env.post("/token", assertionForm(assertiontest.Sign(t, jose.ES256, jc.es.key, jc.es.kid, goodClaims("pk-es", tokenURL)), "grant_type", "client_credentials"), "app", appSecret)
		if m := decode(t, resp); resp.StatusCode != 400 || m["error"] != "invalid_request" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("wrong assertion type", func(t *testing.T) {
		f := assertionForm(assertiontest.Sign(t, jose.ES256, jc.es.key, jc.es.kid, goodClaims("pk-es", tokenURL)), "grant_type", "client_credentials")
		f.Set("client_assertion_type", "urn:example:saml")
		resp := env.post("/token", f, "", "")
		if m := decode(t, resp); resp.StatusCode != 400 || m["error"] != "invalid_request" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
}

func jwksOfBytes(k *jwtKey) *[]byte {
	b, _ := json.Marshal(k.publicJWK())
	return &b
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestClientSecretJWT(t *testing.T) {
	env := newTestEnv(t, openMemory(t))
	seedJWTClients(t, env)
	for _, alg := range []jose.SignatureAlgorithm{jose.HS256} {
		if code, m := env.clientCredentials(t, assertiontest.Sign(t, alg, []byte(csjwtSecret), "", goodClaims("cs-jwt", env.issuer+"/token"))); code != 200 {
			t.Fatalf("%s: %d %v", alg, code, m)
		}
	}
	// A client_secret_jwt registration without a sealed secret (or one
	// sealed with another server secret) is invalid_client, not a 500.
	now := time.Now().UTC()
	if err := env.store.CreateClient(t.Context(), storage.Client{ID: "cs-broken", TokenEndpointAuthMethod: AuthMethodSecretJWT,
		SecretCiphertext: []byte("not sealed"), GrantTypes: []string{grantClientCredentials}, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if code, m := env.clientCredentials(t, assertiontest.Sign(t, jose.HS256, []byte(csjwtSecret), "", goodClaims("cs-broken", env.issuer+"/token"))); code != 401 || m["error"] != "invalid_client" {
		t.Fatalf("client without a usable secret: %d %v", code, m)
	}
	// The stored record holds only ciphertext.
	c, err := env.store.GetClient(t.Context(), "cs-jwt")
	if err != nil || strings.Contains(string(c.SecretCiphertext), csjwtSecret) {
		t.Fatalf("secret stored in clear (%v)", err)
	}
}

// TestPrivateKeyJWTKeyRotation: the client publishes a new key at its
// jwks_uri; an assertion with the new kid makes the server refetch once,
// and random kids do not make it fetch on every request.
func TestPrivateKeyJWTKeyRotation(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	env := newTestEnv(t, openMemory(t), allowPrivateClientURLs, func(c *Config) { c.Now = now; c.Throttle.Disabled = true })
	jc := seedJWTClients(t, env)
	aud := env.issuer + "/token"
	cc := func(k *jwtKey) int {
		c := goodClaims("pk-rs", aud)
		c.IssuedAt, c.Expiry = jwt.NewNumericDate(now()), jwt.NewNumericDate(now().Add(time.Minute))
		code, _ := env.clientCredentials(t, assertiontest.Sign(t, k.alg, k.key, k.kid, c))
		return code
	}
	if code := cc(jc.rs); code != 200 {
		t.Fatalf("old key: %d", code)
	}
	for range 5 {
		if code := cc(jc.rs); code != 200 {
			t.Fatalf("old key again: %d", code)
		}
	}
	if n := jc.jwksHits.Load(); n != 1 {
		t.Fatalf("jwks fetched %d times for 6 requests, want 1 (cached)", n)
	}
	// Rotate: the new set has only the new key.
	b := jwksOf(jc.rs2)
	jc.jwks.Store(&b)
	advance(11 * time.Second) // past ClientJWKSMinRefetch
	if code := cc(jc.rs2); code != 200 {
		t.Fatalf("rotated key not picked up: %d", code)
	}
	if n := jc.jwksHits.Load(); n != 2 {
		t.Fatalf("jwks fetches = %d, want 2", n)
	}
	// Unknown kids within the refetch interval cost no fetch.
	stranger := newRSAKey(t, "rs-x")
	for range 5 {
		if code := cc(stranger); code != 401 {
			t.Fatalf("unknown key accepted: %d", code)
		}
	}
	if n := jc.jwksHits.Load(); n != 2 {
		t.Fatalf("unknown kids caused %d fetches, want none", n-2)
	}
	// The old key is gone once the set is refreshed.
	advance(6 * time.Minute)
	if code := cc(jc.rs); code != 401 {
		t.Fatalf("removed key still accepted: %d", code)
	}
}

// TestClientSecretExpiresAtEverywhere: a client whose secret expired
// (client_secret_expires_at, RFC 7591 §3.2.1) gets invalid_client at
// every endpoint, for secret and client_secret_jwt authentication alike.
func TestClientSecretExpiresAtEverywhere(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	env := newTestEnv(t, openMemory(t), func(c *Config) { c.Now = now; c.ClientCacheTTL = time.Hour; c.Throttle.Disabled = true })
	seedJWTClients(t, env)
	exp := clock.Add(time.Hour)
	for _, id := range []string{"rs", "cs-jwt"} {
		if _, err := env.store.UpdateClient(t.Context(), id, func(c storage.Client) (storage.Client, error) {
			c.SecretExpiresAt = exp
			c.GrantTypes = append(c.GrantTypes, grantAuthorizationCode)
			c.RedirectURIs = []string{"https://rs.example/cb"}
			return c, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	at, _ := env.passwordToken("alice@example.com", alicePW)
	par := url.Values{"response_type": {"code"}, "state": {"state-0123"}, "redirect_uri": {"https://rs.example/cb"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	type req struct {
		path string
		form url.Values
	}
	reqs := []req{{"/token", url.Values{"grant_type": {"client_credentials"}}}, {"/introspect", url.Values{"token": {at}}},
		{"/revoke", url.Values{"token": {"unknown"}}}, {"/par", par}}
	run := func(want int) {
		t.Helper()
		for _, rq := range reqs {
			resp := env.post(rq.path, rq.form, "rs", rsSecret)
			m := decode(t, resp)
			if (want == 200 && resp.StatusCode >= 300) || (want == 401 && (resp.StatusCode != 401 || m["error"] != "invalid_client")) {
				t.Errorf("%s with secret: %d %v, want %d", rq.path, resp.StatusCode, m, want)
			}
			f := url.Values{}
			for k, v := range rq.form {
				f[k] = v
			}
			c := goodClaims("cs-jwt", env.issuer+rq.path)
			c.IssuedAt, c.Expiry = jwt.NewNumericDate(now()), jwt.NewNumericDate(now().Add(time.Minute))
			f.Set("client_assertion_type", clientAssertionType)
			f.Set("client_assertion", assertiontest.Sign(t, jose.HS256, []byte(csjwtSecret), "", c))
			resp = env.post(rq.path, f, "", "")
			m = decode(t, resp)
			if rq.path == "/introspect" && want == 200 {
				continue // cs-jwt may not introspect; only the expiry matters
			}
			if (want == 200 && resp.StatusCode >= 300) || (want == 401 && (resp.StatusCode != 401 || m["error"] != "invalid_client")) {
				t.Errorf("%s with client_secret_jwt: %d %v, want %d", rq.path, resp.StatusCode, m, want)
			}
		}
	}
	run(200)
	mu.Lock()
	clock = exp.Add(time.Second)
	mu.Unlock()
	// The verified-credentials cache (an hour here) must not outlive the
	// expiry either.
	run(401)
}

// clientReads counts the storage reads of client registrations.
type clientReads struct {
	storage.Store
	n atomic.Int32
}

func (c *clientReads) GetClient(ctx context.Context, id string) (storage.Client, error) {
	c.n.Add(1)
	return c.Store.GetClient(ctx, id)
}

// An assertion client's registration comes from the client cache after
// the first request (the change feed keeps it current), and that entry,
// kept without a secret, never stands in for one: an empty client_secret
// for the client is refused.
func TestAssertionClientFromTheCache(t *testing.T) {
	st := &clientReads{Store: openMemory(t)}
	env := newTestEnv(t, st, func(c *Config) { c.Throttle.Disabled = true })
	jc := seedJWTClients(t, env)
	tokenURL := env.issuer + "/token"
	before := st.n.Load()
	for i := range 3 {
		if code, m := env.clientCredentials(t, assertiontest.Sign(t, jose.ES256, jc.es.key, jc.es.kid, goodClaims("pk-es", tokenURL))); code != 200 {
			t.Fatalf("assertion %d: %d %v", i, code, m)
		}
	}
	if n := st.n.Load() - before; n != 1 {
		t.Fatalf("3 assertions read the client %d times, want 1", n)
	}
	for _, how := range []string{"basic", "post"} {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}
		user, pass := "pk-es", ""
		if how == "post" {
			form.Set("client_id", "pk-es")
			form.Set("client_secret", "")
			user = ""
		}
		resp := env.post("/token", form, user, pass)
		if m := decode(t, resp); resp.StatusCode != 401 || m["error"] != "invalid_client" {
			t.Fatalf("empty client_secret (%s) for a cached private_key_jwt client: %d %v", how, resp.StatusCode, m)
		}
	}
	// A bad signature is still refused with the registration cached.
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if code, m := env.clientCredentials(t, assertiontest.Sign(t, jose.ES256, other, jc.es.kid, goodClaims("pk-es", tokenURL))); code != 401 {
		t.Fatalf("assertion signed with another key: %d %v", code, m)
	}
}

// A client's key set holds public signature keys only, RSA ones of 2048
// bits or more (RFC 7518 §3.3).
func TestParseClientJWKSRefusesWeakAndEncryptionKeys(t *testing.T) {
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec := newECKey(t, "ec")
	set := func(keys ...jose.JSONWebKey) []byte {
		b, _ := json.Marshal(jose.JSONWebKeySet{Keys: keys})
		return b
	}
	if _, err := ParseClientJWKS(jwksOf(ec)); err != nil {
		t.Fatalf("a P-256 key: %v", err)
	}
	for name, raw := range map[string][]byte{
		"RSA-1024":   set(jose.JSONWebKey{Key: weak.Public(), KeyID: "weak"}),
		"use enc":    set(jose.JSONWebKey{Key: ec.key.(*ecdsa.PrivateKey).Public(), KeyID: "enc", Use: "enc"}),
		"private EC": set(jose.JSONWebKey{Key: ec.key, KeyID: "priv"}),
	} {
		if _, err := ParseClientJWKS(raw); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// jwksServer serves a JWK Set document (and a status) the test can change.
type jwksServer struct {
	doc    atomic.Pointer[[]byte]
	status atomic.Int32
	url    string
}

func newJWKSServer(t *testing.T, doc []byte) *jwksServer {
	t.Helper()
	js := &jwksServer{}
	js.doc.Store(&doc)
	js.status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(int(js.status.Load()))
		w.Write(*js.doc.Load())
	}))
	t.Cleanup(srv.Close)
	js.url = srv.URL + "/jwks"
	return js
}

// set serves doc with status from now on.
func (js *jwksServer) set(status int, doc string) {
	b := []byte(doc)
	js.doc.Store(&b)
	js.status.Store(int32(status))
}

// createJWKSURIClient registers a private_key_jwt client whose keys are at
// jwksURI.
func createJWKSURIClient(t *testing.T, env *testEnv, id, jwksURI string) {
	t.Helper()
	now := time.Now().UTC()
	if err := env.store.CreateClient(t.Context(), storage.Client{ID: id, TokenEndpointAuthMethod: AuthMethodPrivateKey, JWKSURI: jwksURI,
		GrantTypes: []string{grantClientCredentials}, Scopes: []string{"read"}, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
}

// x25519JWK is an ECDH-ES encryption key of a type go-jose does not parse.
const x25519JWK = `{"kty":"OKP","crv":"X25519","use":"enc","kid":"x-1","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}`

// A jwks_uri document may hold keys we cannot verify with, next to the
// signing key: an encryption key (Keycloak's realm certs publish an
// RSA-OAEP "use":"enc" key by default) or a key of a type go-jose does not
// parse (X25519). They are ignored (RFC 7517 §5), not the whole document.
func TestPrivateKeyJWTFetchedJWKSIgnoresUnusableKeys(t *testing.T) {
	env := newTestEnv(t, openMemory(t), allowPrivateClientURLs, func(c *Config) { c.Throttle.Disabled = true })
	sig := newRSAKey(t, "sig-1")
	encKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sigJWK, _ := json.Marshal(sig.publicJWK())
	encJWK, _ := json.Marshal(jose.JSONWebKey{Key: encKey.Public(), KeyID: "enc-1", Algorithm: "RSA-OAEP", Use: "enc"})
	for i, tc := range []struct{ name, doc string }{
		{"sig and RSA enc key", `{"keys":[` + string(sigJWK) + `,` + string(encJWK) + `]}`},
		{"sig and X25519 key", `{"keys":[` + string(sigJWK) + `,` + x25519JWK + `]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("pk-mixed-%d", i)
			createJWKSURIClient(t, env, id, newJWKSServer(t, []byte(tc.doc)).url)
			code, m := env.clientCredentials(t, assertiontest.Sign(t, jose.RS256, sig.key, sig.kid, goodClaims(id, env.issuer+"/token")))
			if code != 200 {
				t.Errorf("assertion signed with the published signing key: %d %v", code, m)
			}
			// The encryption key is no signing key.
			code, _ = env.clientCredentials(t, assertiontest.Sign(t, jose.RS256, encKey, "enc-1", goodClaims(id, env.issuer+"/token")))
			if code != 401 {
				t.Errorf("assertion signed with the encryption key: %d", code)
			}
		})
	}
}

// parseFetchedJWKS skips what it cannot use and is as strict as
// ParseClientJWKS on the rest; a set registered by value stays strict.
func TestParseFetchedJWKSSkipsUnusableKeys(t *testing.T) {
	ec := newECKey(t, "ec")
	ecPub := ec.key.(*ecdsa.PrivateKey).Public()
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	js := func(keys ...any) []byte {
		var raw []json.RawMessage
		for _, k := range keys {
			switch k := k.(type) {
			case string:
				raw = append(raw, json.RawMessage(k))
			case jose.JSONWebKey:
				b, err := json.Marshal(k)
				if err != nil {
					t.Fatal(err)
				}
				raw = append(raw, b)
			}
		}
		b, _ := json.Marshal(map[string]any{"keys": raw})
		return b
	}
	sig := jose.JSONWebKey{Key: ecPub, KeyID: "sig", Algorithm: "ES256", Use: "sig"}
	for _, tc := range []struct {
		name string
		doc  []byte
		want int // keys kept; -1: refused
	}{
		{"signing key only", js(sig), 1},
		{"enc key skipped", js(sig, jose.JSONWebKey{Key: ecPub, KeyID: "enc", Use: "enc"}), 1},
		{"encryption alg skipped", js(sig, jose.JSONWebKey{Key: ecPub, KeyID: "ecdh", Algorithm: "ECDH-ES"}), 1},
		{"X25519 skipped", js(sig, x25519JWK), 1},
		{"unknown kty skipped", js(sig, `{"kty":"XYZ","kid":"x"}`), 1},
		{"unknown curve skipped", js(sig, `{"kty":"EC","crv":"secp256k1","kid":"k1","x":"AA","y":"AA"}`), 1},
		{"enc key sharing the kid skipped", js(sig, jose.JSONWebKey{Key: ecPub, KeyID: "sig", Use: "enc"}), 1},
		{"no usable key", js(jose.JSONWebKey{Key: ecPub, KeyID: "enc", Use: "enc"}), 0},
		{"empty set", []byte(`{"keys":[]}`), 0},
		{"private signing key", js(sig, jose.JSONWebKey{Key: ec.key, KeyID: "priv", Use: "sig"}), -1},
		{"weak RSA key", js(sig, jose.JSONWebKey{Key: weak.Public(), KeyID: "weak"}), -1},
		{"symmetric key", js(sig, `{"kty":"oct","kid":"hmac","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}`), -1},
		{"duplicate kid", js(sig, sig), -1},
		{"malformed RSA key", js(sig, `{"kty":"RSA","kid":"bad"}`), -1},
		{"not a JWK Set", []byte(`{"error":"gone"}`), -1},
		{"not JSON", []byte(`not found`), -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := parseFetchedJWKS(tc.doc)
			switch {
			case tc.want < 0 && err == nil:
				t.Fatalf("accepted: %d keys", len(set.Keys))
			case tc.want >= 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want >= 0 && len(set.Keys) != tc.want:
				t.Fatalf("%d keys kept, want %d", len(set.Keys), tc.want)
			}
		})
	}
	// Registered by value, a set with an encryption key is refused whole.
	if _, err := ParseClientJWKS(js(sig, jose.JSONWebKey{Key: ecPub, KeyID: "enc", Use: "enc"})); err == nil {
		t.Fatal("ParseClientJWKS accepted an encryption key")
	}
}

// A key withdrawn from a jwks_uri stops working. A document that has no
// usable key replaces the cached set when it is refetched (the owner
// withdrew its keys); a failed refetch (the document removed: 404) keeps
// the old set only until one more cache lifetime after it expired, then
// fails closed, and is logged.
func TestPrivateKeyJWTWithdrawnJWKSFailsClosed(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	var oplog lockedBuffer
	env := newTestEnv(t, openMemory(t), allowPrivateClientURLs, func(c *Config) {
		c.Now = now
		c.Throttle.Disabled = true
		c.Logger = slog.New(slog.NewTextHandler(&oplog, nil))
	})
	ttl := env.as.cfg.ClientJWKSCacheTTL // no Cache-Control: the default
	key := newRSAKey(t, "k-1")
	cc := func(id string) int {
		c := goodClaims(id, env.issuer+"/token")
		c.IssuedAt, c.Expiry = jwt.NewNumericDate(now()), jwt.NewNumericDate(now().Add(time.Minute))
		code, _ := env.clientCredentials(t, assertiontest.Sign(t, jose.RS256, key.key, key.kid, c))
		return code
	}
	// withdraw registers client id with a jwks_uri serving key, checks the
	// key works, then serves body with status there instead and lets the
	// cached set expire.
	withdraw := func(t *testing.T, id string, status int, body string) *jwksServer {
		t.Helper()
		js := newJWKSServer(t, jwksOf(key))
		createJWKSURIClient(t, env, id, js.url)
		if code := cc(id); code != 200 {
			t.Fatalf("key in place: %d", code)
		}
		js.set(status, body)
		advance(ttl + time.Second)
		return js
	}
	t.Run("empty key set", func(t *testing.T) {
		withdraw(t, "pk-w-empty", http.StatusOK, `{"keys":[]}`)
		if code := cc("pk-w-empty"); code != 401 {
			t.Errorf("key withdrawn (empty set) still accepted once the cache expired: %d", code)
		}
	})
	t.Run("only an encryption key left", func(t *testing.T) {
		withdraw(t, "pk-w-enc", http.StatusOK, `{"keys":[`+x25519JWK+`]}`)
		if code := cc("pk-w-enc"); code != 401 {
			t.Errorf("signing key withdrawn still accepted once the cache expired: %d", code)
		}
	})
	t.Run("document removed", func(t *testing.T) {
		// Expired: the refetch fails, the old set is served.
		js := withdraw(t, "pk-w-404", http.StatusNotFound, `not found`)
		if code := cc("pk-w-404"); code != 200 {
			t.Errorf("old set not served within the grace after a failed refetch: %d", code)
		}
		logged := false
		for _, line := range strings.Split(oplog.String(), "\n") {
			if strings.Contains(line, "jwks_uri failed") {
				logged = strings.Contains(line, "level=WARN") && strings.Contains(line, "status 404") && strings.Contains(line, "client:pk-w-404")
				if strings.Contains(line, js.url) {
					t.Errorf("the log names the whole URL: %q", line)
				}
			}
		}
		if !logged {
			t.Errorf("the failed fetch is not logged at WARN: %q", oplog.String())
		}
		advance(ttl) // past expiry + one lifetime
		if code := cc("pk-w-404"); code != 401 {
			t.Errorf("old set still accepted after the grace: %d", code)
		}
		advance(24 * time.Hour)
		if code := cc("pk-w-404"); code != 401 {
			t.Errorf("old set still accepted 24 h later: %d", code)
		}
		// Published again: picked up.
		js.set(http.StatusOK, string(jwksOf(key)))
		advance(time.Minute)
		if code := cc("pk-w-404"); code != 200 {
			t.Errorf("key published again not picked up: %d", code)
		}
	})
}
