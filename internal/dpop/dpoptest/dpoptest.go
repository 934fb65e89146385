// Package dpoptest is a DPoP client for tests: a P-256 key whose proofs are
// made with package dpop's signer, and the pieces hostile hand-made proofs
// need (the raw key, an ES256 signature, a proof from a header and claims).
package dpoptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/internal/dpop"
)

// Key is a DPoP client's key.
type Key struct {
	t      testing.TB
	Priv   *ecdsa.PrivateKey
	Signer *dpop.Signer
}

// NewKey generates a key; errors fail t.
func NewKey(t testing.TB) *Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dpop.NewSigner(priv, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{t: t, Priv: priv, Signer: s}
}

// Proof returns a proof with claims c.
func (k *Key) Proof(c dpop.ProofClaims) string {
	k.t.Helper()
	p, err := k.Signer.Proof(c)
	if err != nil {
		k.t.Fatal(err)
	}
	return p
}

// JWK returns the key as a JWK object: the public key, or with private
// the private one (with "d"), which a proof must never carry.
func (k *Key) JWK(private bool) map[string]any {
	var key any = k.Priv.Public()
	if private {
		key = k.Priv
	}
	b, _ := json.Marshal(jose.JSONWebKey{Key: key})
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// ES256 signs in with the key (JWS form: r || s, 64 bytes).
func (k *Key) ES256(in []byte) []byte {
	sum := sha256.Sum256(in)
	r, s, err := ecdsa.Sign(rand.Reader, k.Priv, sum[:])
	if err != nil {
		k.t.Fatal(err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

// RawProof builds a proof by hand, for the shapes go-jose refuses to make:
// header and claims as given, signed by sign (nil: an empty signature).
func RawProof(header, claims map[string]any, sign func(input []byte) []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sig := []byte{}
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}
