package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://Server.Example.COM/token", "https://server.example.com/token"},
		{"HTTPS://server.example.com:443/token?x=1#f", "https://server.example.com/token"},
		{"http://server.example.com:80", "http://server.example.com/"},
		{"http://127.0.0.1:8080/a/b", "http://127.0.0.1:8080/a/b"},
		{"http://[::1]:8080/t", "http://[::1]:8080/t"},
	} {
		got, err := Normalize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"/token", "token", "urn:x:y", "http://"} {
		if _, err := Normalize(bad); err == nil {
			t.Errorf("Normalize(%q) accepted", bad)
		}
	}
}

func TestNoncesRotate(t *testing.T) {
	n := NewNonces([]byte("0123456789abcdef0123456789abcdef"), time.Minute)
	now := time.Unix(1_800_000_000, 0)
	cur := n.Current(now)
	if !n.Valid(cur, now) || !n.Valid(cur, now.Add(time.Minute)) {
		t.Fatal("a nonce is refused in its step or the next")
	}
	if n.Valid(cur, now.Add(2*time.Minute)) || n.Valid("", now) || n.Valid("x", now) {
		t.Fatal("a stale, empty or forged nonce is accepted")
	}
	if other := NewNonces([]byte("another-key-0123456789abcdef0123"), time.Minute); other.Valid(cur, now) {
		t.Fatal("a nonce of another key is accepted")
	}
}

// TestVerifyEveryAlgorithm: proofs of each key type verify, their jkt is
// the RFC 7638 thumbprint, and a proof for another request is refused.
func TestVerifyEveryAlgorithm(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	for _, tc := range []struct {
		key crypto.Signer
		alg jose.SignatureAlgorithm
	}{{ec, jose.ES256}, {ec384, jose.ES384}, {rk, jose.RS256}, {rk, jose.PS256}, {ed, jose.EdDSA}} {
		s, err := NewSigner(tc.key, tc.alg)
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.Proof(ProofClaims{Method: "POST", URL: "https://as.example/token", AccessToken: "tok", IssuedAt: now})
		if err != nil {
			t.Fatal(err)
		}
		params := Params{Method: "POST", URL: "https://AS.example:443/token", AccessToken: "tok", Now: now}
		got, err := Verify(p, params)
		if err != nil || got.JKT != s.JKT() || got.ID == "" {
			t.Fatalf("%s: %v %+v", tc.alg, err, got)
		}
		params.Method = "GET"
		if _, err := Verify(p, params); !errors.Is(err, ErrInvalidProof) {
			t.Fatalf("%s: a proof for another method: %v", tc.alg, err)
		}
		if _, err := Verify(p, Params{Method: "POST", URL: "https://as.example/token", AccessToken: "tok", Now: now, Algorithms: []jose.SignatureAlgorithm{jose.ES512}}); err == nil {
			t.Fatalf("%s: accepted outside the allow-list", tc.alg)
		}
	}
}

// TestThumbprintRFC7638: the example of RFC 7638 §3.1.
func TestThumbprintRFC7638(t *testing.T) {
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON([]byte(`{"kty":"RSA","e":"AQAB","alg":"RS256","kid":"2011-04-29","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}`)); err != nil {
		t.Fatal(err)
	}
	if got, err := Thumbprint(&k); err != nil || got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Fatalf("Thumbprint = %q, %v", got, err)
	}
}
