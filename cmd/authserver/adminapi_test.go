package main

import (
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// freeAddr returns a loopback address with a port free at the time of the
// call.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// getStatus GETs u with an optional bearer token and returns the status
// and the decoded JSON body.
func getStatus(t *testing.T, u, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// serve --admin-addr serves the admin API there, behind an admin token, and
// never on the public listener.
func TestServeAdminAPI(t *testing.T) {
	db := filepath.Join(t.TempDir(), "auth.db")
	const secret = "ops-secret-0123456789-0123456789-abcdef"
	if _, err := cliRun(t, secret+"\n", "clients", "add", "--db", db, "--id", "ops", "--grant", "client_credentials", "--scope", "admin", "--secret-stdin", "--audit-log", "off"); err != nil {
		t.Fatal(err)
	}
	adminAddr := freeAddr(t)
	base, _ := serveInProcess(t, db, "--admin-addr", adminAddr, "--audit-log", "off")
	adminBase := "http://" + adminAddr

	if st, _ := getStatus(t, adminBase+"/admin/v1/users", ""); st != http.StatusUnauthorized {
		t.Fatalf("no token: %d", st)
	}
	if st, _ := getStatus(t, adminBase+"/admin/openapi.json", ""); st != http.StatusOK {
		t.Fatalf("openapi.json: %d", st)
	}
	tok := adminToken(t, base, "ops", secret)
	st, body := getStatus(t, adminBase+"/admin/v1/clients", tok)
	if st != http.StatusOK || body["items"] == nil {
		t.Fatalf("admin list clients: %d %v", st, body)
	}
	// The console sends a browser without a session to the public sign-in.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(adminBase + "/admin/ui/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, base+"/authorize?") || !strings.Contains(loc, "client_id=admin-console") {
		t.Fatalf("console login: %d %s", resp.StatusCode, loc)
	}
	for _, p := range []string{"/admin/v1/clients", "/admin/openapi.json", "/admin/ui/"} {
		if st, _ := getStatus(t, base+p, tok); st != http.StatusNotFound {
			t.Fatalf("public listener %s: %d", p, st)
		}
	}
}

func TestServeAdminInsecureLoopback(t *testing.T) {
	db := filepath.Join(t.TempDir(), "auth.db")
	_, err := cliRun(t, "", "serve", "--db", db, "--admin-addr", "0.0.0.0:0", "--admin-insecure-loopback")
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("non-loopback --admin-insecure-loopback: %v", err)
	}
	if _, err := cliRun(t, "", "serve", "--db", db, "--admin-addr", "off", "--admin-insecure-loopback"); err == nil {
		t.Fatal("--admin-insecure-loopback without --admin-addr was accepted")
	}
	adminAddr := freeAddr(t)
	serveInProcess(t, db, "--admin-addr", adminAddr, "--admin-insecure-loopback", "--audit-log", "off")
	if st, _ := getStatus(t, "http://"+adminAddr+"/admin/v1/keys", ""); st != http.StatusOK {
		t.Fatalf("insecure loopback: %d", st)
	}
}
