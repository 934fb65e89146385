package resource

import (
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzParseAuthorization checks the Authorization header parser: it never
// panics, fails only with the package's sentinels, and what it accepts is a
// non-empty, size-bounded b64token that ends the header.
func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{
		"Bearer abc", "bearer abc.def-ghi_jkl~mno+pqr/stu==", "BEARER  x", "Bearer", "Bearer ",
		"Basic dXNlcjpwYXNz", "Bearerabc", "Bearer\tabc", "Bearer a b", "Bearer a=b", "Bearer ==", "",
	} {
		f.Add(s)
	}
	const limit = 64
	f.Fuzz(func(t *testing.T, h string) {
		tok, err := parseAuthorization(h, limit)
		if err != nil {
			if tok != "" {
				t.Fatalf("token %q returned with error %v", tok, err)
			}
			if !errors.Is(err, ErrNoToken) && !errors.Is(err, ErrMalformedRequest) && !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if tok == "" || len(tok) > limit || !strings.HasSuffix(h, tok) || !asciiEqualFold(h[:6], "bearer") || h[6] != ' ' {
			t.Fatalf("accepted %q from %q", tok, h)
		}
		if err := checkB64Token(tok, limit); err != nil {
			t.Fatalf("accepted %q that is no b64token: %v", tok, err)
		}
		// Round trip.
		if again, err := parseAuthorization("Bearer "+tok, limit); err != nil || again != tok {
			t.Fatalf("round trip of %q: %q, %v", tok, again, err)
		}
	})
}

// fuzzIssuer is the fixed issuer of FuzzVerify: a deterministic Ed25519 key
// and clock, so the committed seed tokens stay valid.
const fuzzIssuer = "https://issuer.example"

var fuzzNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fuzzKey() *testKey {
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, "resource-fuzz-seed")
	return &testKey{kid: "fuzz-1", alg: jose.EdDSA, priv: ed25519.NewKeyFromSeed(seed)}
}

func fuzzClaims() map[string]any {
	return map[string]any{
		"iss": fuzzIssuer, "sub": "user-42", "aud": []string{fuzzIssuer + "/api"},
		"exp": fuzzNow.Add(time.Hour).Unix(), "iat": fuzzNow.Unix(), "jti": "j1",
		"client_id": "web-app", "scope": "read", "roles": []string{"admin"},
	}
}

// FuzzVerify feeds arbitrary strings to the token verifier. It must never
// panic, must refuse with ErrInvalidToken (the key set is static, so never
// ErrUnavailable), and anything it accepts must satisfy the claim checks.
func FuzzVerify(f *testing.F) {
	k := fuzzKey()
	keys, err := NewStaticKeySet(k.public())
	if err != nil {
		f.Fatal(err)
	}
	a, err := New(f.Context(), Config{
		Issuer: fuzzIssuer, Audience: fuzzIssuer + "/api", KeySet: keys,
		Now: func() time.Time { return fuzzNow }, Logger: discardLogger(), MaxTokenSize: 4096,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(mintWith(f, k, map[string]any{"typ": "at+jwt"}, fuzzClaims()))
	f.Add(mintWith(f, k, map[string]any{"typ": "JWT"}, fuzzClaims()))
	f.Add(rawJWS(f, map[string]any{"alg": "none", "typ": "at+jwt", "kid": "fuzz-1"}, fuzzClaims(), nil))
	f.Add("")
	f.Add("..")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := a.Verify(t.Context(), raw)
		if err != nil {
			if c != nil {
				t.Fatal("claims returned with an error")
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("error %v does not wrap ErrInvalidToken", err)
			}
			return
		}
		if c.Issuer != fuzzIssuer || !slices.Contains(c.Audience, fuzzIssuer+"/api") ||
			c.Expiry.Before(fuzzNow.Add(-DefaultLeeway)) {
			t.Fatalf("accepted claims %+v", c)
		}
	})
}
