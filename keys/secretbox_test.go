package keys

import (
	"bytes"
	"errors"
	"testing"
)

func TestSecretBoxRoundTripAndBinding(t *testing.T) {
	b, err := NewSecretBox(bytes.Repeat([]byte("s"), 32))
	if err != nil {
		t.Fatal(err)
	}
	ct, err := b.Seal("client-a", []byte("the secret"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, []byte("the secret")) {
		t.Fatal("ciphertext contains the plaintext")
	}
	pt, err := b.Open("client-a", ct)
	if err != nil || string(pt) != "the secret" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := b.Open("client-b", ct); !errors.Is(err, ErrSecretBox) {
		t.Fatalf("moved to another record: err = %v, want ErrSecretBox", err)
	}
	other, _ := NewSecretBox(bytes.Repeat([]byte("t"), 32))
	if _, err := other.Open("client-a", ct); !errors.Is(err, ErrSecretBox) {
		t.Fatalf("other secret: err = %v, want ErrSecretBox", err)
	}
	if _, err := NewSecretBox([]byte("short")); err == nil {
		t.Fatal("short secret accepted")
	}
}
