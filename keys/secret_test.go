package keys

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateSecretCreatesThenLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "dir", "secret")
	s1, created, err := LoadOrCreateSecret(path)
	if err != nil || !created || len(s1) != 32 {
		t.Fatalf("create: %d bytes, created=%v, %v", len(s1), created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", di.Mode().Perm())
	}
	s2, created, err := LoadOrCreateSecret(path)
	if err != nil || created || !bytes.Equal(s1, s2) {
		t.Fatalf("load: created=%v, equal=%v, %v", created, bytes.Equal(s1, s2), err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestLoadOrCreateSecretConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		secrets [][]byte
		creates int
	)
	for range 16 {
		wg.Go(func() {
			s, created, err := LoadOrCreateSecret(path)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			secrets = append(secrets, s)
			if created {
				creates++
			}
		})
	}
	wg.Wait()
	if creates != 1 {
		t.Errorf("%d callers created the secret, want 1", creates)
	}
	for _, s := range secrets {
		if !bytes.Equal(s, secrets[0]) {
			t.Fatal("callers got different secrets")
		}
	}
}

func TestLoadOrCreateSecretEncodings(t *testing.T) {
	raw := bytes.Repeat([]byte{0xfb, 0xff, 0x01}, 12) // 36 bytes; base64 uses + / - _
	for _, tc := range []struct {
		name, content string
		wantErr       string
	}{
		{"Hex", hex.EncodeToString(raw) + "\n", ""},
		{"Base64", base64.StdEncoding.EncodeToString(raw), ""},
		{"Base64URLRaw", "  " + base64.RawURLEncoding.EncodeToString(raw) + "\r\n", ""},
		{"TooShort", hex.EncodeToString(raw[:31]), "want at least 32"},
		{"Empty", "\n", "empty"},
		{"Garbage", "not a secret!", "not hex or base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, created, err := LoadOrCreateSecret(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || created || !bytes.Equal(s, raw) {
				t.Fatalf("got %x created=%v err=%v", s, created, err)
			}
		})
	}
}
