package keys

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// ErrSecretBox is returned (wrapped) when a sealed value does not open: a
// different server secret sealed it, it belongs to another record, or it was
// altered.
var ErrSecretBox = errors.New("keys: cannot open sealed value")

// secretBoxInfo separates the AEAD key of sealed values from the one that
// encrypts signing keys, although both derive from the same server secret.
const secretBoxInfo = "oauthkit/authserver keys: sealed values v1"

// SecretBox encrypts small secrets at rest (for example the client secret of
// a client_secret_jwt client, whose HMAC needs the secret itself) with the
// same construction as private signing keys:
//
//	0x01 || nonce (24 bytes) || XChaCha20-Poly1305(value, ad = 0x01 || id)
//
// with its own HKDF-SHA256 key derived from the server secret. The id binds
// a ciphertext to its record, so one moved to another record does not open.
// A SecretBox is safe for concurrent use.
type SecretBox struct {
	aead cipher.AEAD
}

// NewSecretBox returns a SecretBox keyed by the server secret (at least
// MinSecretLen bytes; every instance sharing a store MUST use the same one).
func NewSecretBox(secret []byte) (*SecretBox, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("keys: secret must be at least %d bytes", MinSecretLen)
	}
	return newBox(secret, secretBoxInfo)
}

// newBox returns a SecretBox whose AEAD key is HKDF-SHA256(secret, info):
// sealed values and private signing keys (sealer) share the construction,
// each with its own info.
func newBox(secret []byte, info string) (*SecretBox, error) {
	key := make([]byte, chacha20poly1305.KeySize)
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, nil, []byte(info)), key); err != nil {
		return nil, fmt.Errorf("keys: derive AEAD key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("keys: init AEAD: %w", err)
	}
	return &SecretBox{aead: aead}, nil
}

// errUnknownFormat marks a sealed value that is too short or of another
// format version.
var errUnknownFormat = errors.New("unknown format")

// associatedData is the AEAD's associated data: the format version and the
// record's ID.
func associatedData(id string) []byte {
	return append([]byte{sealVersion1}, id...)
}

// Seal encrypts value for the record named id.
func (b *SecretBox) Seal(id string, value []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	out := make([]byte, 1+n, 1+n+len(value)+b.aead.Overhead())
	out[0] = sealVersion1
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("keys: nonce: %w", err)
	}
	return b.aead.Seal(out, out[1:], value, associatedData(id)), nil
}

// Open decrypts a value sealed for the record named id.
func (b *SecretBox) Open(id string, sealed []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < 1+n+b.aead.Overhead() || sealed[0] != sealVersion1 {
		return nil, fmt.Errorf("%w: %w", ErrSecretBox, errUnknownFormat)
	}
	pt, err := b.aead.Open(nil, sealed[1:1+n], sealed[1+n:], associatedData(id))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSecretBox, err)
	}
	return pt, nil
}
