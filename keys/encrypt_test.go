package keys

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestSealedKeysAreBoundToTheirKid(t *testing.T) {
	s, err := newSealer(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.newKey(ES256, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.newKey(ES256, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pubA, err := parsePublic(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.decrypt(a, pubA); err != nil {
		t.Fatalf("decrypt own key: %v", err)
	}

	swapped := a
	swapped.Private = b.Private
	if _, err := s.decrypt(swapped, pubA); !errors.Is(err, ErrWrongSecret) {
		t.Errorf("ciphertext of another kid: %v, want ErrWrongSecret", err)
	}

	tampered := a
	tampered.Private = bytes.Clone(a.Private)
	tampered.Private[len(tampered.Private)-1] ^= 1
	if _, err := s.decrypt(tampered, pubA); !errors.Is(err, ErrWrongSecret) {
		t.Errorf("tampered ciphertext: %v, want ErrWrongSecret", err)
	}

	unknown := a
	unknown.Private = bytes.Clone(a.Private)
	unknown.Private[0] = 2
	if _, err := s.decrypt(unknown, pubA); err == nil || errors.Is(err, ErrWrongSecret) {
		t.Errorf("unknown format version: %v", err)
	}

	other, _ := newSealer(bytes.Repeat([]byte{1}, 32))
	if _, err := other.decrypt(a, pubA); !errors.Is(err, ErrWrongSecret) {
		t.Errorf("other secret: %v, want ErrWrongSecret", err)
	}
}

func TestRecordRejectsMismatchedPublicKey(t *testing.T) {
	s, _ := newSealer(testSecret)
	a, _ := s.newKey(EdDSA, time.Now())
	b, _ := s.newKey(EdDSA, time.Now())
	mixed := a
	mixed.Public = b.Public
	if _, err := parsePublic(mixed); err == nil {
		t.Fatal("public key with another kid accepted")
	}
	pubB, _ := parsePublic(b)
	if _, err := s.decrypt(a, pubB); err == nil {
		t.Fatal("private key decrypted against another key's public part")
	}
	wrongAlg := a
	wrongAlg.Algorithm = ES256
	if _, err := parsePublic(wrongAlg); err == nil {
		t.Fatal("record algorithm differing from the JWK accepted")
	}
}
