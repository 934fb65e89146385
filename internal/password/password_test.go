package password

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestHashVerifyRoundTrip(t *testing.T) {
	h, err := Hash("correct horse", TestParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("unexpected PHC string %q", h)
	}
	if rehash, err := Verify("correct horse", h, TestParams); err != nil || rehash {
		t.Fatalf("Verify = %v, %v; want nil, false", rehash, err)
	}
	if _, err := Verify("wrong", h, TestParams); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong password: %v", err)
	}
	if rehash, err := Verify("correct horse", h, DefaultParams); err != nil || !rehash {
		t.Fatalf("older parameters must ask for a rehash: %v, %v", rehash, err)
	}
}

func TestBcryptImportVerifiesAndAsksForRehash(t *testing.T) {
	b, err := bcrypt.GenerateFromPassword([]byte("imported secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	rehash, err := Verify("imported secret", string(b), TestParams)
	if err != nil || !rehash {
		t.Fatalf("Verify(bcrypt) = %v, %v", rehash, err)
	}
	if _, err := Verify("nope", string(b), TestParams); !errors.Is(err, ErrMismatch) {
		t.Fatalf("bcrypt mismatch: %v", err)
	}
}

func TestMalformedHashes(t *testing.T) {
	for _, h := range []string{
		"", "plain", "$argon2id$", "$argon2id$v=19$m=64,t=1,p=1$$",
		"$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$2b$04$short",
		"$2a$20$000000000000000000000000000000000000000000000000000000", // cost 20: a minute per attempt
	} {
		if _, err := Verify("x", h, TestParams); !errors.Is(err, ErrMalformedHash) {
			t.Errorf("Verify(%q) = %v, want ErrMalformedHash", h, err)
		}
	}
}

func TestSecrets(t *testing.T) {
	s, err := GenerateSecret()
	if err != nil || len(s) < MinSecretLength {
		t.Fatalf("GenerateSecret = %q, %v", s, err)
	}
	h := HashSecret(s)
	if !VerifySecret(s, h) || VerifySecret(s+"x", h) || VerifySecret(s, "") {
		t.Fatal("VerifySecret disagrees with HashSecret")
	}
}

func TestPolicy(t *testing.T) {
	for pw, ok := range map[string]bool{
		"short": false, "password1234": false, "Password123": false,
		"a long enough passphrase": true, strings.Repeat("x", MaxLength+1): false,
		"ünïcödé-pässwörd": true,
	} {
		if err := CheckPolicy(pw, DefaultMinLength); (err == nil) != ok {
			t.Errorf("CheckPolicy(%.20q) = %v, want ok=%v", pw, err, ok)
		}
	}
}

func FuzzVerify(f *testing.F) {
	h, _ := Hash("seed", TestParams)
	f.Add("seed", h)
	f.Add("x", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("x", "$2b$04$abcdefghijklmnopqrstuuJm3oKjnvMY1rTFaEEcHXN/yx4F4nvK.")
	f.Fuzz(func(t *testing.T, pw, hash string) {
		if p, _, _, err := parseArgon2id(hash); err == nil && (p.Memory > 4096 || p.Time > 4) {
			return // valid but too costly to verify on every fuzz input
		}
		if c, err := bcrypt.Cost([]byte(hash)); err == nil && c > 6 && c <= MaxBcryptCost {
			return // likewise
		}
		_, err := Verify(pw, hash, TestParams)
		if err != nil && !errors.Is(err, ErrMismatch) && !errors.Is(err, ErrMalformedHash) {
			t.Fatalf("unexpected error class: %v", err)
		}
	})
}
