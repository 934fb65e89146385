package authserver

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestMetadataGolden(t *testing.T) {
	env := newTestEnv(t, openMemory(t)) // the seeded clients may request read and write
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

// TestScopesSupportedFollowsClients checks that scopes_supported is the union
// of the registered clients' scopes, that a newly registered client's scope
// appears once the cache expires, and that Config.Scopes overrides it.
func TestScopesSupportedFollowsClients(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	env := newTestEnv(t, openMemory(t), func(c *Config) { c.Now = clock })
	scopes := func(base string) []any {
		t.Helper()
		resp, err := http.Get(base + "/.well-known/oauth-authorization-server")
		if err != nil {
			t.Fatal(err)
		}
		m := decode(t, resp)
		s, _ := m["scopes_supported"].([]any)
		return s
	}
	if got := fmt.Sprint(scopes(env.srv.URL)); got != "[email offline_access openid profile read write]" {
		t.Fatalf("scopes_supported = %s, want the OpenID Connect scopes and [read write]", got)
	}
	c := storage.Client{ID: "reports", Public: true, GrantTypes: []string{"password"}, Scopes: []string{"reports:read", "read"}}
	if err := env.store.CreateClient(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(scopes(env.srv.URL)); got != "[email offline_access openid profile read write]" {
		t.Fatalf("within the cache TTL: scopes_supported = %s", got)
	}
	mu.Lock()
	now = now.Add(scopesCacheTTL + time.Second)
	mu.Unlock()
	if got := fmt.Sprint(scopes(env.srv.URL)); got != "[email offline_access openid profile read reports:read write]" {
		t.Fatalf("after the cache TTL: scopes_supported = %s, want [read reports:read write]", got)
	}

	fixed := newTestEnv(t, openMemory(t), func(c *Config) { c.Scopes = []string{"openid", "api"} })
	if got := fmt.Sprint(scopes(fixed.srv.URL)); got != "[api email offline_access openid profile]" {
		t.Fatalf("with Config.Scopes: scopes_supported = %s, want [api] and the OpenID Connect scopes", got)
	}
}
