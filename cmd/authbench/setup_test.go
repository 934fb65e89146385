package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeServerBin writes a stand-in for bin/authserver that logs each call
// (arguments and stdin) and refuses to create the same thing twice, as the
// real command does.
func fakeServerBin(t *testing.T) (bin, calls string) {
	t.Helper()
	dir := t.TempDir()
	bin = filepath.Join(dir, "authserver")
	calls = filepath.Join(dir, "calls")
	script := `#!/bin/sh
read -r secret
key="$1 $2 $4"
if grep -qxF "$key" "` + dir + `/made" 2>/dev/null; then
  echo "a user or client with that name already exists" >&2
  exit 1
fi
echo "$key" >> "` + dir + `/made"
echo "$* stdin=$secret" >> "` + calls + `"
echo '{}'
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, calls
}

func TestSetupCreatesUsersAndClientsOnce(t *testing.T) {
	bin, calls := fakeServerBin(t)
	statePath := filepath.Join(t.TempDir(), "state.json")
	cfg := setupConfig{serverBin: bin, db: "/tmp/x.db", users: 5, statePath: statePath, parallel: 3,
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	st, err := setup(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Users) != 5 || st.Users[4] != "bench-4@example.com" || len(st.Password) < 12 || len(st.ClientSecret) < 32 || len(st.IntrospectorSecret) < 32 {
		t.Fatalf("state %+v", st)
	}
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 9 {
		t.Fatalf("%d calls, want 9 (4 clients, 5 users):\n%s", len(lines), b)
	}
	for _, l := range lines {
		if !strings.Contains(l, "--db /tmp/x.db") || !strings.Contains(l, "--output json") {
			t.Errorf("call without --db or --output: %s", l)
		}
		switch {
		case strings.HasPrefix(l, "users add"):
			if !strings.HasSuffix(l, "stdin="+st.Password) || !strings.Contains(l, "--password-stdin") {
				t.Errorf("user call: %s", l)
			}
		case strings.Contains(l, "--id bench-rs"):
			if !strings.Contains(l, "--introspect") || !strings.HasSuffix(l, "stdin="+st.IntrospectorSecret) {
				t.Errorf("introspector call: %s", l)
			}
		case strings.Contains(l, "--id bench-oidc"):
			if !strings.Contains(l, "--grant authorization_code") || !strings.Contains(l, "--scope openid") || !strings.Contains(l, "--skip-consent") ||
				!strings.HasSuffix(l, "stdin="+st.OIDCClientSecret) || len(st.OIDCClientSecret) < 32 {
				t.Errorf("OpenID Connect client call: %s", l)
			}
		case strings.Contains(l, "--id bench "):
			for _, g := range []string{"password", "refresh_token", "client_credentials"} {
				if !strings.Contains(l, "--grant "+g) {
					t.Errorf("bench client lacks grant %s: %s", g, l)
				}
			}
		case strings.Contains(l, "--id bench-web "):
			if !strings.Contains(l, "--grant authorization_code --redirect-uri "+st.WebRedirectURI+" --skip-consent") || !strings.HasSuffix(l, "stdin="+st.WebClientSecret) {
				t.Errorf("web client call: %s", l)
			}
		default:
			t.Errorf("unexpected call: %s", l)
		}
	}

	// A rerun keeps the secrets (the server already has them) and tolerates
	// what exists.
	again, err := setup(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if again.ClientSecret != st.ClientSecret || again.Password != st.Password {
		t.Error("a rerun changed the secrets")
	}
	loaded, err := loadState(statePath)
	if err != nil || loaded.IntrospectorSecret != st.IntrospectorSecret || len(loaded.Users) != 5 {
		t.Errorf("state file %+v, %v", loaded, err)
	}
	if fi, err := os.Stat(statePath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, %v", fi.Mode(), err)
	}
}

func TestSetupReportsCommandFailures(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "authserver")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'open database: disk on fire' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := setup(t.Context(), setupConfig{serverBin: bin, db: "x.db", users: 2, statePath: filepath.Join(t.TempDir(), "s.json"),
		log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err = %v, want the command's message", err)
	}
}
