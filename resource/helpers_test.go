package resource

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// fakeClock is an injectable clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testKey is a signing key of the test issuer.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func (k *testKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

var (
	rsaKeysOnce sync.Once
	rsaKeys     [2]*rsa.PrivateKey
)

// rsaKey returns one of two RSA keys generated once per test binary:
// generating 2048-bit keys is slow.
func rsaKey(i int) *rsa.PrivateKey {
	rsaKeysOnce.Do(func() {
		for j := range rsaKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys[j] = k
		}
	})
	return rsaKeys[i]
}

func newRSAKey(kid string, i int) *testKey {
	return &testKey{kid: kid, alg: jose.RS256, priv: rsaKey(i)}
}

func newECKey(kid string) *testKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return &testKey{kid: kid, alg: jose.ES256, priv: k}
}

func newEdKey(kid string) *testKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return &testKey{kid: kid, alg: jose.EdDSA, priv: k}
}

// testIssuer is an httptest authorization server: RFC 8414 metadata, a JWKS
// with Cache-Control and ETag, and an RFC 7662 introspection endpoint.
type testIssuer struct {
	srv   *httptest.Server
	clock *fakeClock

	mu        sync.Mutex
	published []*testKey
	signer    *testKey
	maxAge    string // Cache-Control value; "" sends none
	jwksBody  []byte // overrides the JWKS body when set
	jwksDelay time.Duration
	status    int                   // non-zero: JWKS answers this status
	hang      chan struct{}         // non-nil: JWKS blocks until closed
	revoked   map[string]bool       // introspection: jti → revoked
	introResp func() map[string]any // overrides the introspection answer

	jwksFetches  atomic.Int64
	notModified  atomic.Int64
	introCalls   atomic.Int64
	metaFetches  atomic.Int64
	lastIntroTok atomic.Value // string
}

const (
	introClientID     = "api-introspector"
	introClientSecret = "s3cret:with/odd chars"
)

func newTestIssuer(t testing.TB, keys ...*testKey) *testIssuer {
	t.Helper()
	is := &testIssuer{clock: newFakeClock(), maxAge: "public, max-age=300", revoked: map[string]bool{}}
	if len(keys) == 0 {
		keys = []*testKey{newECKey("ec-1")}
	}
	is.published = keys
	is.signer = keys[0]
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", is.serveMetadata)
	mux.HandleFunc("GET /.well-known/jwks.json", is.serveJWKS)
	mux.HandleFunc("POST /introspect", is.serveIntrospect)
	is.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		is.mu.Lock()
		if is.hang != nil {
			select {
			case <-is.hang:
			default:
				close(is.hang)
			}
		}
		is.mu.Unlock()
		is.srv.Close()
	})
	return is
}

func (is *testIssuer) URL() string      { return is.srv.URL }
func (is *testIssuer) audience() string { return is.srv.URL + "/api" }
func (is *testIssuer) jwksURL() string  { return is.srv.URL + "/.well-known/jwks.json" }

func (is *testIssuer) serveMetadata(w http.ResponseWriter, r *http.Request) {
	is.metaFetches.Add(1)
	writeJSON(w, map[string]any{
		"issuer":                 is.srv.URL,
		"jwks_uri":               is.jwksURL(),
		"introspection_endpoint": is.srv.URL + "/introspect",
		"token_endpoint":         is.srv.URL + "/token",
	})
}

func (is *testIssuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	is.jwksFetches.Add(1)
	is.mu.Lock()
	hang, status, delay, maxAge, body := is.hang, is.status, is.jwksDelay, is.maxAge, is.jwksBody
	var set jose.JSONWebKeySet
	for _, k := range is.published {
		set.Keys = append(set.Keys, k.public())
	}
	is.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		return
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	if status != 0 {
		http.Error(w, "down", status)
		return
	}
	if body == nil {
		body, _ = json.Marshal(set)
	}
	etag := fmt.Sprintf(`"%x"`, hashBytes(body))
	if maxAge != "" {
		w.Header().Set("Cache-Control", maxAge)
	}
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		is.notModified.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_, _ = w.Write(body)
}

func hashBytes(b []byte) uint64 {
	var h uint64 = 14695981039346656037
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h
}

// serveIntrospect answers like our authorization server: active with the
// token's claims unless revoked, expired or unparseable. It decodes the JWT
// payload without verifying it: the test server minted it.
func (is *testIssuer) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	is.introCalls.Add(1)
	id, secret, ok := r.BasicAuth()
	if !ok || id != url.QueryEscape(introClientID) || secret != url.QueryEscape(introClientSecret) {
		w.Header().Set("WWW-Authenticate", `Basic realm="introspect"`)
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	tok := r.PostFormValue("token")
	is.lastIntroTok.Store(tok)
	is.mu.Lock()
	override, revoked := is.introResp, is.revoked
	is.mu.Unlock()
	if override != nil {
		writeJSON(w, override())
		return
	}
	claims, err := unverifiedClaims(tok)
	if err != nil {
		writeJSON(w, map[string]any{"active": false})
		return
	}
	is.mu.Lock()
	dead := revoked[fmt.Sprint(claims["jti"])]
	is.mu.Unlock()
	if exp, _ := claims["exp"].(float64); dead || float64(is.clock.Now().Unix()) > exp {
		writeJSON(w, map[string]any{"active": false})
		return
	}
	claims["active"] = true
	claims["token_type"] = "Bearer"
	writeJSON(w, claims)
}

func unverifiedClaims(tok string) (map[string]any, error) {
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		return nil, err
	}
	var m map[string]any
	err = json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &m)
	return m, err
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// publish replaces the published keys; signer, if non-nil, becomes the
// signing key.
func (is *testIssuer) publish(signer *testKey, keys ...*testKey) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.published = keys
	if signer != nil {
		is.signer = signer
	}
}

func (is *testIssuer) set(f func(is *testIssuer)) {
	is.mu.Lock()
	defer is.mu.Unlock()
	f(is)
}

var jtiCounter atomic.Int64

// claims returns the claims our authorization server puts in a user's
// access token, at the issuer's clock.
func (is *testIssuer) claims() map[string]any {
	now := is.clock.Now()
	return map[string]any{
		"iss":       is.srv.URL,
		"sub":       "user-42",
		"aud":       []string{is.audience()},
		"exp":       now.Add(time.Hour).Unix(),
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"jti":       "jti-" + strconv.FormatInt(jtiCounter.Add(1), 10),
		"client_id": "web-app",
		"scope":     "openid profile read:items",
		"roles":     []string{"user", "editor"},
		"email":     "ada@example.com",
		"name":      "Ada Lovelace",
	}
}

// mint signs claims with the issuer's current key, after applying edits.
func (is *testIssuer) mint(t testing.TB, edits ...func(map[string]any)) string {
	t.Helper()
	is.mu.Lock()
	k := is.signer
	is.mu.Unlock()
	return mintWith(t, k, map[string]any{"typ": "at+jwt"}, is.claims(), edits...)
}

// mintWith signs claims with k under the given extra headers. Headers map
// to nil are removed.
func mintWith(t testing.TB, k *testKey, headers map[string]any, claims map[string]any, edits ...func(map[string]any)) string {
	t.Helper()
	for _, e := range edits {
		e(claims)
	}
	opts := &jose.SignerOptions{}
	for name, v := range headers {
		opts.WithHeader(jose.HeaderKey(name), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawJWS builds a compact JWS from a header and payload, signed by sign
// (nil for an empty signature). It forges what a library would refuse to
// produce.
func rawJWS(t testing.TB, header, payload map[string]any, sign func(input []byte) []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	input := b64(h) + "." + b64(p)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + b64(sig)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// newAuth builds an Authenticator for the issuer with the fake clock and a
// discarding logger; edit adjusts the config.
func newAuth(t testing.TB, is *testIssuer, edit func(*Config), opts ...Option) *Authenticator {
	t.Helper()
	cfg := Config{
		Issuer:   is.URL(),
		Audience: is.audience(),
		JWKSURL:  is.jwksURL(),
		Now:      is.clock.Now,
		Logger:   discardLogger(),
		Introspection: IntrospectionConfig{
			ClientID:     introClientID,
			ClientSecret: introClientSecret,
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	a, err := New(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serve runs h on a GET request with the given Authorization header values
// and returns the recorder.
func serve(h http.Handler, authorization ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/api/thing", nil)
	for _, v := range authorization {
		r.Header.Add("Authorization", v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// okHandler answers 200 with the subject of the claims in the context.
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	c, ok := FromContext(r.Context())
	if !ok {
		http.Error(w, "no claims", http.StatusInternalServerError)
		return
	}
	_, _ = io.WriteString(w, c.Subject)
})
