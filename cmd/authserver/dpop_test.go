package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
)

// TestRequireDPoPFlag: clients add/update --require-dpop, on the database
// and through the admin API (dpop_bound_access_tokens), and the server
// refuses such a client's token request without a proof.
func TestRequireDPoPFlag(t *testing.T) {
	db := filepath.Join(t.TempDir(), "auth.db")
	const secret = "ops-secret-0123456789-0123456789-abcdef"
	mustRun := mustRunner(t, "--audit-log", "off")
	bound := func(out string) bool {
		t.Helper()
		var c struct {
			Bound *bool `json:"dpop_bound_access_tokens"`
		}
		if err := json.Unmarshal([]byte(out), &c); err != nil || c.Bound == nil {
			t.Fatalf("no dpop_bound_access_tokens in %s (%v)", out, err)
		}
		return *c.Bound
	}
	mustRun("tangerine submarine 42\n", "users", "add", "--db", db, "--email", "bob@example.com", "--name", "Bob", "--password-stdin")
	mustRun(secret+"\n", "clients", "add", "--db", db, "--id", "ops", "--grant", "client_credentials", "--scope", "admin", "--secret-stdin")
	if !bound(mustRun("", "clients", "add", "--db", db, "--id", "spa", "--public", "--grant", "password", "--require-dpop", "--output", "json")) {
		t.Fatal("clients add --require-dpop did not register it")
	}
	if bound(mustRun("", "clients", "update", "spa", "--db", db, "--require-dpop=false", "--output", "json")) {
		t.Fatal("clients update --require-dpop=false did not clear it")
	}

	adminAddr := freeAddr(t)
	base, _ := serveInProcess(t, db, "--admin-addr", adminAddr, "--audit-log", "off")
	tok := adminToken(t, base, "ops", secret)
	t.Setenv(adminTokenEnv, tok)
	if !bound(mustRun("", "clients", "update", "spa", "--admin-url", "http://"+adminAddr, "--require-dpop", "--output", "json")) {
		t.Fatal("clients update --require-dpop through the API did not set it")
	}
	if !bound(mustRun("", "clients", "show", "spa", "--db", db, "--output", "json")) {
		t.Fatal("not set in the database")
	}
	// The server refuses spa's token request without a proof.
	resp, err := http.PostForm(base+"/token", url.Values{"grant_type": {"password"}, "client_id": {"spa"}, "username": {"bob@example.com"}, "password": {"tangerine submarine 42"}})
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 400 || e.Error != "invalid_dpop_proof" {
		t.Fatalf("token request of a --require-dpop client without a proof: %d %s", resp.StatusCode, e.Error)
	}
}
