package keys

import (
	"bytes"
	"encoding/base64"
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

// Values sealed once (a client secret and a private key, with the server
// secret 32 × 0x07) still open: the formats, the HKDF infos and the
// associated data are a stored contract.
func TestSealedFormatsArePinned(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	b, err := NewSecretBox(secret)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := base64.StdEncoding.DecodeString("AUIXBedCfWRMdxY825V+qUfs6pkbFbgkms+uNuas8Ygnn5i82QSMz194p7XzH65dQAkj01Mi+byTk7Dr7QYA")
	if v, err := b.Open("client-1", sealed); err != nil || string(v) != "a sealed client secret" {
		t.Fatalf("pinned sealed value: %q %v", v, err)
	}
	s, err := newSealer(secret)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := base64.StdEncoding.DecodeString("AZxQr7Ux+Lk0FxkMj8U4unfIO/j+NxGime2fDD+tab0msOeXmsEFDhGTGGr++bF65x5b9V3/Xy83mkWxBg==")
	if v, err := s.open("kid-1", key); err != nil || string(v) != "pkcs8 bytes stand-in" {
		t.Fatalf("pinned private key: %q %v", v, err)
	}
	// Each opens only with its own key and record.
	if _, err := b.Open("kid-1", key); err == nil {
		t.Fatal("a private key opened as a sealed value")
	}
	if _, err := s.open("client-2", sealed); err == nil {
		t.Fatal("a sealed value opened as a private key")
	}
}
