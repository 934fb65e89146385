// Package assertiontest signs JWT client assertions and authorization
// grants (RFC 7523) and writes the public key sets clients register, for
// tests. It is imported only by tests.
package assertiontest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Sign signs claims as a compact JWT (typ JWT) with key, a private key or
// an HMAC secret, under alg; kid goes in the header when it is set.
func Sign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Claims are valid assertion claims: issuer, subject and audience as given,
// a fresh jti, issued now and expiring in ttl.
func Claims(iss, sub, aud string, ttl time.Duration) jwt.Claims {
	now := time.Now()
	return jwt.Claims{Issuer: iss, Subject: sub, Audience: jwt.Audience{aud}, ID: rand.Text(),
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(ttl))}
}

// ECKey generates a P-256 key and the JWK Set of its public key (kid, ES256,
// use sig), as a client registers it.
func ECKey(t testing.TB, kid string) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.Public(), KeyID: kid, Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return k, b
}

// JWKSFile writes a JWK Set to a file of the test's temporary directory
// (for --jwks-file) and returns its path.
func JWKSFile(t testing.TB, jwks []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(p, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
