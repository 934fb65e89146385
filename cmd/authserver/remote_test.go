package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oauthkit/authserver/internal/assertiontest"
)

// The admin commands give the same output through --admin-url as on the
// database, and their changes land in the same database.
func TestAdminCommandsThroughAPI(t *testing.T) {
	db := filepath.Join(t.TempDir(), "auth.db")
	const secret = "ops-secret-0123456789-0123456789-abcdef"
	mustRun := mustRunner(t)
	mustRun(secret+"\n", "clients", "add", "--db", db, "--id", "ops", "--grant", "client_credentials", "--scope", "admin", "--secret-stdin", "--audit-log", "off")
	mustRun("tangerine submarine 42\n", "users", "add", "--db", db, "--email", "bob@example.com", "--name", "Bob", "--role", "user", "--password-stdin", "--audit-log", "off")
	adminAddr := freeAddr(t)
	base, _ := serveInProcess(t, db, "--admin-addr", adminAddr, "--audit-log", "off")
	api := "http://" + adminAddr

	t.Run("NoTokenIsAClearError", func(t *testing.T) {
		_, err := cliRun(t, "", "users", "list", "--admin-url", api, "--audit-log", "off")
		if err == nil || !strings.Contains(err.Error(), adminTokenEnv) {
			t.Fatalf("without a token: %v", err)
		}
	})

	tok := adminToken(t, base, "ops", secret)
	t.Setenv(adminTokenEnv, tok)

	same := func(args ...string) {
		t.Helper()
		for _, output := range []string{"json", "text"} {
			local := mustRun("", append(args, "--db", db, "--output", output)...)
			remote := mustRun("", append(args, "--admin-url", api, "--output", output, "--audit-log", "off")...)
			if local != remote {
				t.Fatalf("%s --output %s differs:\ndatabase:\n%s\nAPI:\n%s", strings.Join(args, " "), output, local, remote)
			}
		}
	}
	same("users", "list")
	same("users", "show", "bob@example.com")
	same("clients", "list")
	same("clients", "show", "ops")
	same("keys", "list")

	// Changes through the API show on the database.
	var u userView
	out := mustRun("", "users", "disable", "bob@example.com", "--admin-url", api, "--output", "json", "--audit-log", "off")
	if err := json.Unmarshal([]byte(out), &u); err != nil || !u.Disabled {
		t.Fatalf("disable through the API: %s %v", out, err)
	}
	if out := mustRun("", "users", "show", "bob@example.com", "--db", db, "--output", "json"); !strings.Contains(out, `"disabled": true`) {
		t.Fatalf("not disabled in the database: %s", out)
	}
	mustRun("a new long password 77\n", "users", "set-password", "bob@example.com", "--force-change", "--admin-url", api, "--audit-log", "off")
	var bobID struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal([]byte(mustRun("", "users", "show", "bob@example.com", "--db", db, "--output", "json")), &bobID)
	if !mustChange(t, db, bobID.ID) {
		t.Fatal("set-password --force-change through the API did not set must_change_password")
	}
	mustRun("", "users", "set-roles", "bob@example.com", "--role", "support", "--admin-url", api, "--audit-log", "off")
	same("users", "show", "bob@example.com")
	if out := mustRun("", "users", "show", "bob@example.com", "--db", db); !strings.Contains(out, "support") {
		t.Fatalf("roles not set: %s", out)
	}
	out = mustRun("", "clients", "add", "--id", "web", "--grant", "client_credentials", "--scope", "read", "--admin-url", api, "--audit-log", "off")
	if !strings.Contains(out, "created client web") || !strings.Contains(out, "client_secret: ") {
		t.Fatalf("clients add through the API: %s", out)
	}
	mustRun("", "clients", "update", "web", "--name", "Web", "--admin-url", api, "--audit-log", "off")
	same("clients", "show", "web")
	out = mustRun("", "clients", "rotate-secret", "web", "--keep-old", "--admin-url", api, "--audit-log", "off")
	if !strings.Contains(out, "(2 valid)") {
		t.Fatalf("rotate-secret: %s", out)
	}
	// Client authentication methods and keys go through the API too.
	_, set := assertiontest.ECKey(t, "k1")
	jwksFile := assertiontest.JWKSFile(t, set)
	out = mustRun("", "clients", "add", "--id", "svc", "--grant", "client_credentials", "--auth-method", "private_key_jwt", "--jwks-file", jwksFile, "--admin-url", api, "--audit-log", "off")
	if !strings.Contains(out, "created client svc") || strings.Contains(out, "client_secret: ") {
		t.Fatalf("private_key_jwt client through the API: %s", out)
	}
	var svc clientView
	_ = json.Unmarshal([]byte(mustRun("", "clients", "show", "svc", "--db", db, "--output", "json")), &svc)
	if svc.TokenEndpointAuthMethod != "private_key_jwt" || !strings.Contains(string(svc.JWKS), `"k1"`) {
		t.Fatalf("the API client's registration: %+v", svc)
	}
	same("clients", "show", "svc")
	mustRun("", "clients", "update", "svc", "--jwks-uri", "https://keys.example.com/jwks.json", "--admin-url", api, "--audit-log", "off")
	svc = clientView{}
	_ = json.Unmarshal([]byte(mustRun("", "clients", "show", "svc", "--db", db, "--output", "json")), &svc)
	if svc.JWKSURI != "https://keys.example.com/jwks.json" || len(svc.JWKS) != 0 {
		t.Fatalf("clients update --jwks-uri through the API: %+v", svc)
	}
	if _, err := cliRun(t, "", "clients", "update", "svc", "--jwks-uri", "https://a.example/j", "--jwks-file", jwksFile, "--admin-url", api, "--audit-log", "off"); err == nil {
		t.Fatal("--jwks-uri and --jwks-file together were accepted through the API")
	}
	out = mustRun("", "clients", "add", "--id", "hmac", "--grant", "client_credentials", "--auth-method", "client_secret_jwt", "--admin-url", api, "--audit-log", "off")
	if !strings.Contains(out, "client_secret: ") {
		t.Fatalf("client_secret_jwt client through the API shows no secret: %s", out)
	}
	out = mustRun("", "tokens", "revoke", "--client", "ops", "--admin-url", api, "--output", "json", "--audit-log", "off")
	if !strings.Contains(out, `"tokens_revoked": 1`) {
		t.Fatalf("tokens revoke: %s", out)
	}
	// The token just revoked was the CLI's own: the API now refuses it.
	if _, err := cliRun(t, "", "users", "list", "--admin-url", api, "--audit-log", "off"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("after revoking its own token: %v", err)
	}
	if _, err := cliRun(t, "", "migrate", "--admin-url", api); err == nil {
		t.Fatal("--admin-url accepted by a command that has no API form")
	}
	if _, err := cliRun(t, "", "users", "list", "--admin-url", "ftp://x"); err == nil || !strings.Contains(err.Error(), "http(s)") {
		t.Fatalf("bad --admin-url: %v", err)
	}
}
