package keys

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadOrCreateSecret reads the secret in the file at path, or creates the
// file when it does not exist: 32 random bytes, hex encoded, mode 0600, in a
// directory created with mode 0700 if needed. created reports which happened.
// Creation is atomic, so of several processes starting together exactly one
// creates the file and the others read it.
//
// The file holds hex or base64 (standard or URL alphabet, padded or not),
// tried in that order, with surrounding white space ignored; it must decode
// to at least MinSecretLen bytes. Losing the file makes the stored private
// keys unreadable; back it up, or use the same secret on every instance.
func LoadOrCreateSecret(path string) (secret []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		secret, err = decodeSecret(b)
		if err != nil {
			return nil, false, fmt.Errorf("keys: secret file %s: %w", path, err)
		}
		return secret, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("keys: read secret: %w", err)
	}

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("keys: create secret directory: %w", err)
	}
	secret = make([]byte, MinSecretLen)
	if _, err := rand.Read(secret); err != nil {
		return nil, false, fmt.Errorf("keys: generate secret: %w", err)
	}
	// Write a temporary file, then link it into place: the link fails if
	// another process created the file first, and nobody can read a
	// half-written secret.
	tmp, err := os.CreateTemp(dir, ".secret-*") // mode 0600
	if err != nil {
		return nil, false, fmt.Errorf("keys: create secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(hex.EncodeToString(secret) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("keys: write secret: %w", err)
	}
	err = os.Link(tmp.Name(), path)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		// No hard links on this file system: create exclusively instead.
		err = writeExclusive(path, hex.EncodeToString(secret)+"\n")
	}
	if errors.Is(err, fs.ErrExist) {
		return LoadOrCreateSecret(path) // another process won
	}
	if err != nil {
		return nil, false, fmt.Errorf("keys: create secret: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // persist the new directory entry; best effort
		_ = d.Close()
	}
	return secret, true, nil
}

func decodeSecret(b []byte) ([]byte, error) {
	s := string(bytes.TrimSpace(b))
	if s == "" {
		return nil, errors.New("empty")
	}
	decoded, err := hex.DecodeString(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if err == nil {
			break
		}
		decoded, err = enc.DecodeString(s)
	}
	if err != nil {
		return nil, errors.New("not hex or base64")
	}
	if len(decoded) < MinSecretLen {
		return nil, fmt.Errorf("decodes to %d bytes, want at least %d", len(decoded), MinSecretLen)
	}
	return decoded, nil
}

func writeExclusive(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
	}
	return err
}
