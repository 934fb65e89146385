package authserver

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestMetadataGolden(t *testing.T) {
	env := newTestEnv(t, openMemory(t), func(c *Config) { c.Scopes = []string{"read", "write"} })
	resp, err := http.Get(env.srv.URL + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Errorf("Cache-Control = %q", cc)
	}
	b, _ := io.ReadAll(resp.Body)
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	got, _ := json.MarshalIndent(v, "", "  ")
	got = append(bytes.ReplaceAll(got, []byte(env.issuer), []byte("{issuer}")), '\n')
	const golden = "testdata/metadata.golden.json"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("metadata differs from %s:\n%s", golden, got)
	}
	// The issuer must match exactly (RFC 8414 §3.3).
	if !strings.Contains(string(b), `"issuer":"`+env.issuer+`"`) {
		t.Errorf("issuer mismatch: %s", b)
	}
}
