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
		{"https://as.example:8443/token", "https://as.example:8443/token"},
		{"http://as.example:443/token", "http://as.example:443/token"},
		{"https://as.example/a/b/", "https://as.example/a/b/"},
		{"https://as.example/a//b", "https://as.example/a//b"},
	} {
		got, err := Normalize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"/token", "token", "urn:x:y", "http://", "https://x@as.example/token", "https://:@as.example/token"} {
		if _, err := Normalize(bad); err == nil {
			t.Errorf("Normalize(%q) accepted", bad)
		}
	}
}

// TestNormalizePercentEncodingAndDotSegments: RFC 3986 §6.2.2.1 and
// §6.2.2.2 (hex digits upper-case, unreserved characters decoded, reserved
// ones left encoded) and §6.2.2.3 (dot segments removed as in §5.2.4), with
// query and fragment still dropped. URLs that differ after it stay
// different: the normalization never makes a reserved character, an empty
// segment or a trailing slash disappear.
func TestNormalizePercentEncodingAndDotSegments(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://as.example/th%69ng", "https://as.example/thing"},
		{"https://as.example/%7Euser/%7eother", "https://as.example/~user/~other"},
		{"https://as.example/%41%5a%30%2D%2E%5F", "https://as.example/AZ0-._"},
		{"https://as.example/a%2fb", "https://as.example/a%2Fb"},
		{"https://as.example/a%2Fb", "https://as.example/a%2Fb"},
		{"https://as.example/%e2%82%ac", "https://as.example/%E2%82%AC"},
		{"https://as.example/%25", "https://as.example/%25"},
		{"https://as.example/%2569", "https://as.example/%2569"}, // decoded once only
		{"https://as.example/a/./b/../c", "https://as.example/a/c"},
		{"https://as.example/a/b/..", "https://as.example/a/"},
		{"https://as.example/a/b/.", "https://as.example/a/b/"},
		{"https://as.example/../../a", "https://as.example/a"},
		{"https://as.example/a/%2E%2E/b", "https://as.example/b"},
		{"https://as.example/a/.b/..c", "https://as.example/a/.b/..c"},
		{"https://as.example/a//../b", "https://as.example/a/b"},
		{"https://as.example/t%6Fken?x=%41#%42", "https://as.example/token"},
	} {
		got, err := Normalize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			continue
		}
		if again, err := Normalize(got); err != nil || again != got {
			t.Errorf("Normalize is not idempotent on %q: %q, %v", got, again, err)
		}
	}
	for _, pair := range [][2]string{
		{"https://as.example/a%2Fb", "https://as.example/a/b"},
		{"https://as.example/a%3Fb", "https://as.example/a?b"},
		{"https://as.example/a//b", "https://as.example/a/b"},
		{"https://as.example/a/", "https://as.example/a"},
		{"https://as.example/a%252Fb", "https://as.example/a%2Fb"},
		{"https://as.example/A", "https://as.example/a"},
		{"https://as.example/a", "http://as.example/a"},
		{"https://as.example:8443/a", "https://as.example/a"},
		{"https://as.example/a", "https://as.example.evil/a"},
	} {
		a, errA := Normalize(pair[0])
		b, errB := Normalize(pair[1])
		if errA != nil || errB != nil || a == b {
			t.Errorf("Normalize(%q) = %q, Normalize(%q) = %q (%v, %v): want two different URLs", pair[0], a, pair[1], b, errA, errB)
		}
	}
}

// TestVerifyNormalizesBothSides: the proof's htu and the request URL go
// through the same normalization, so either may carry the encoded form.
func TestVerifyNormalizesBothSides(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := NewSigner(ec, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tc := range []struct {
		htu, url string
		ok       bool
	}{
		{"https://rs.example/api/th%69ng", "https://rs.example/api/thing", true},
		{"https://rs.example/api/thing", "https://rs.example/api/th%69ng", true},
		{"https://rs.example/api/x/../thing", "https://rs.example/api/thing", true},
		{"https://rs.example/api/thing", "https://rs.example/api/x/%2E%2E/thing", true},
		{"https://rs.example/api%2Fthing", "https://rs.example/api/thing", false},
		{"https://rs.example/api/thing", "https://rs.example/api/thing/", false},
	} {
		p, err := s.Proof(ProofClaims{Method: "GET", URL: tc.htu, IssuedAt: now})
		if err != nil {
			t.Fatal(err)
		}
		_, err = Verify(p, Params{Method: "GET", URL: tc.url, Now: now})
		if (err == nil) != tc.ok {
			t.Errorf("htu %s, request %s: err = %v, want accepted %v", tc.htu, tc.url, err, tc.ok)
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
