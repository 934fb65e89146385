package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/storage"
)

// ErrWrongSecret is returned (wrapped, with the key ID) when a stored private
// key does not decrypt: the Secret differs from the one that encrypted it, or
// the record was altered.
var ErrWrongSecret = errors.New("keys: cannot decrypt signing key")

// Ciphertext format, version 1:
//
//	0x01 || nonce (24 bytes) || XChaCha20-Poly1305(PKCS#8 DER, ad = 0x01 || kid)
//
// The AEAD key is HKDF-SHA256(Secret, info = hkdfInfo). Binding the kid as
// associated data means a ciphertext moved to another key record fails to
// decrypt.
const (
	sealVersion1 byte = 1
	hkdfInfo          = "oauthkit/authserver keys: private key encryption v1"
)

// sealer encrypts and decrypts private keys at rest: a SecretBox with its
// own key (hkdfInfo), whose errors name the key.
type sealer struct {
	box *SecretBox
}

func newSealer(secret []byte) (*sealer, error) {
	b, err := newBox(secret, hkdfInfo)
	if err != nil {
		return nil, err
	}
	return &sealer{box: b}, nil
}

func (s *sealer) seal(kid string, plaintext []byte) ([]byte, error) {
	return s.box.Seal(kid, plaintext)
}

func (s *sealer) open(kid string, ciphertext []byte) ([]byte, error) {
	pt, err := s.box.Open(kid, ciphertext)
	switch {
	case errors.Is(err, errUnknownFormat):
		return nil, fmt.Errorf("keys: signing key %s: unknown private key format", kid)
	case err != nil:
		return nil, fmt.Errorf("%w %s: wrong secret?", ErrWrongSecret, kid)
	}
	return pt, nil
}

// generate creates a key pair for alg.
func generate(alg string) (crypto.Signer, error) {
	switch alg {
	case RS256:
		return rsa.GenerateKey(rand.Reader, RSABits)
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	default:
		return nil, fmt.Errorf("keys: unsupported algorithm %q", alg)
	}
}

// checkAlgorithm reports whether key (private or public) suits alg.
func checkAlgorithm(alg string, key any) error {
	ok := false
	switch k := key.(type) {
	case *rsa.PrivateKey:
		ok = alg == RS256 && k.N.BitLen() >= 2048
	case *rsa.PublicKey:
		ok = alg == RS256 && k.N.BitLen() >= 2048
	case *ecdsa.PrivateKey:
		ok = alg == ES256 && k.Curve == elliptic.P256()
	case *ecdsa.PublicKey:
		ok = alg == ES256 && k.Curve == elliptic.P256()
	case ed25519.PrivateKey, ed25519.PublicKey:
		ok = alg == EdDSA
	}
	if !ok {
		return fmt.Errorf("keys: a %T does not suit algorithm %q", key, alg)
	}
	return nil
}

// publicJWK returns the published form of pub: public members, kid, alg and
// use "sig", and nothing else.
func publicJWK(kid, alg string, pub crypto.PublicKey) jose.JSONWebKey {
	return jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"}
}

// thumbprint returns the RFC 7638 SHA-256 thumbprint of pub, base64url
// encoded; it is used as the key ID.
func thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("keys: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// newKey generates a key for alg and returns its storage record (state and
// dates left to the caller).
func (s *sealer) newKey(alg string, now time.Time) (storage.SigningKey, error) {
	priv, err := generate(alg)
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("keys: generate %s key: %w", alg, err)
	}
	return s.record(alg, priv, now)
}

// record builds the storage record of priv.
func (s *sealer) record(alg string, priv crypto.Signer, now time.Time) (storage.SigningKey, error) {
	kid, err := thumbprint(priv.Public())
	if err != nil {
		return storage.SigningKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("keys: marshal private key: %w", err)
	}
	sealed, err := s.seal(kid, der)
	clear(der)
	if err != nil {
		return storage.SigningKey{}, err
	}
	pub, err := json.Marshal(publicJWK(kid, alg, priv.Public()))
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("keys: marshal public key: %w", err)
	}
	return storage.SigningKey{
		ID:        kid,
		Algorithm: alg,
		Private:   sealed,
		Public:    pub,
		CreatedAt: now.UTC(),
	}, nil
}

// decrypt returns the private key of k, checked against its kid, algorithm
// and published public key.
func (s *sealer) decrypt(k storage.SigningKey, pub *jose.JSONWebKey) (crypto.Signer, error) {
	if len(k.Private) == 0 {
		return nil, fmt.Errorf("keys: signing key %s (%s) has no private key", k.ID, k.State)
	}
	der, err := s.open(k.ID, k.Private)
	if err != nil {
		return nil, err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("keys: signing key %s: parse private key: %w", k.ID, err)
	}
	priv, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("keys: signing key %s: %T is not a signer", k.ID, parsed)
	}
	if err := checkAlgorithm(k.Algorithm, priv); err != nil {
		return nil, fmt.Errorf("keys: signing key %s: %w", k.ID, err)
	}
	kid, err := thumbprint(priv.Public())
	if err != nil {
		return nil, err
	}
	want, err := thumbprint(pub.Key)
	if err != nil {
		return nil, err
	}
	if kid != k.ID || want != k.ID {
		return nil, fmt.Errorf("keys: signing key %s: private and public parts do not match the key ID", k.ID)
	}
	return priv, nil
}

// parsePublic parses and checks the public JWK of k.
func parsePublic(k storage.SigningKey) (*jose.JSONWebKey, error) {
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(k.Public, &jwk); err != nil {
		return nil, fmt.Errorf("keys: signing key %s: parse public key: %w", k.ID, err)
	}
	if !jwk.IsPublic() || !jwk.Valid() {
		return nil, fmt.Errorf("keys: signing key %s: stored public key is not a valid public key", k.ID)
	}
	if jwk.KeyID != k.ID || jwk.Algorithm != k.Algorithm {
		return nil, fmt.Errorf("keys: signing key %s: public key has kid %q alg %q, record has alg %q", k.ID, jwk.KeyID, jwk.Algorithm, k.Algorithm)
	}
	if err := checkAlgorithm(k.Algorithm, jwk.Key); err != nil {
		return nil, fmt.Errorf("keys: signing key %s: %w", k.ID, err)
	}
	// Rebuild from the key alone so nothing but public members, kid, alg
	// and use survives into the JWKS.
	out := publicJWK(k.ID, k.Algorithm, jwk.Key)
	return &out, nil
}
