// Package resourcetest provides a fake authorization server for tests of
// APIs protected with package resource: it serves RFC 8414 metadata and a
// JWKS from an httptest.Server and signs RFC 9068 access tokens, so handler
// tests run against real tokens and the real middleware.
//
// Like net/http/httptest, it is meant for tests only.
package resourcetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Issuer is a fake authorization server with one ES256 signing key.
type Issuer struct {
	// URL is the issuer identifier, the base URL of the server.
	URL string
	// Now is the clock used for iat and exp; default time.Now.
	Now func() time.Time

	key    *ecdsa.PrivateKey
	kid    string
	signer jose.Signer
	jti    atomic.Int64
}

// NewIssuer starts an Issuer; it stops when the test ends.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is := &Issuer{Now: time.Now, key: key, kid: "test-key-1"}
	is.signer, err = jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: is.kid}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]string{
			"issuer":                 is.URL,
			"jwks_uri":               is.URL + "/.well-known/jwks.json",
			"introspection_endpoint": is.URL + "/introspect",
		})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: key.Public(), KeyID: is.kid, Algorithm: string(jose.ES256), Use: "sig"},
		}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	is.URL = srv.URL
	return is
}

// Audience returns the default audience of the issuer's tokens, {URL}/api.
func (is *Issuer) Audience() string { return is.URL + "/api" }

// Claims returns the claims of a user's access token as our authorization
// server issues it: subject sub, the given roles, one hour of validity, and
// scope "openid profile email". Edit the map before passing it to Sign.
func (is *Issuer) Claims(sub string, roles ...string) map[string]any {
	now := is.Now()
	if roles == nil {
		roles = []string{}
	}
	return map[string]any{
		"iss":       is.URL,
		"sub":       sub,
		"aud":       []string{is.Audience()},
		"exp":       now.Add(time.Hour).Unix(),
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"jti":       "jti-" + strconv.FormatInt(is.jti.Add(1), 10),
		"client_id": "test-client",
		"scope":     "openid profile email",
		"roles":     roles,
	}
}

// Sign returns claims as a signed access token (typ at+jwt).
func (is *Issuer) Sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := is.signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Token is Sign(t, Claims(sub, roles...)).
func (is *Issuer) Token(t testing.TB, sub string, roles ...string) string {
	t.Helper()
	return is.Sign(t, is.Claims(sub, roles...))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
