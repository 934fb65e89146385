package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// With --addr on port 0 and no --issuer, the issuer names the port the
// server actually listens on, not port 0.
func TestServeEphemeralPortNamesItsIssuer(t *testing.T) {
	db := filepath.Join(t.TempDir(), "auth.db")
	base, _ := serveInProcess(t, db, "--secret", strings.Repeat("s", 40))
	if strings.HasSuffix(base, ":0") {
		t.Fatalf("listening address %s", base)
	}
	resp, err := http.Get(base + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var meta struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil {
		t.Fatal(err)
	}
	if meta.Issuer != base || meta.TokenEndpoint != base+"/token" {
		t.Fatalf("issuer %q, token endpoint %q; want %q and %q/token", meta.Issuer, meta.TokenEndpoint, base, base)
	}
}
