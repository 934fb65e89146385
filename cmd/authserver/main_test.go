package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oauthkit/authserver/internal/testbin"
)

// startServer runs the built binary's serve on db with debug logging.
func startServer(t *testing.T, db string, args ...string) *testbin.Server {
	t.Helper()
	return testbin.Start(t, []string{"AUTHSERVER_LOG_LEVEL=debug"}, append([]string{"--db", db}, args...)...)
}

func postForm(t *testing.T, u string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func getJSON(t *testing.T, u, token string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m, resp.Header
}

func login(t *testing.T, base, user, pw string) (string, string) {
	t.Helper()
	status, m := postForm(t, base+"/token", url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw}, "client_id": {"demo"}})
	if status != 200 {
		t.Fatalf("login %s: %d %v", user, status, m)
	}
	return m["access_token"].(string), m["refresh_token"].(string)
}

// The README's seed flow, against the real binary on a real SQLite file.
func TestDemoFlowAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "data", "authserver.db")
	s := startServer(t, db, "--demo")
	if !strings.Contains(s.Logs.String(), "DEMO CREDENTIALS") {
		t.Error("no loud demo warning in the log")
	}
	if fi, err := os.Stat(filepath.Join(dir, "data", "authserver.secret")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", fi, err)
	}
	at, rt := login(t, s.URL, "alice@example.com", "password123")

	status, me, _ := getJSON(t, s.URL+"/api/me", at)
	if status != 200 || me["email"] != "alice@example.com" || fmt.Sprint(me["roles"]) != "[admin]" {
		t.Fatalf("/api/me: %d %v", status, me)
	}
	if status, m, _ := getJSON(t, s.URL+"/api/protected", at); status != 200 || m["message"] == nil {
		t.Fatalf("/api/protected: %d %v", status, m)
	}
	if status, m, _ := getJSON(t, s.URL+"/api/admin/users", at); status != 200 || len(m["users"].([]any)) != 2 {
		t.Fatalf("/api/admin/users as alice: %d %v", status, m)
	}
	bobAT, _ := login(t, s.URL, "bob@example.com", "password456")
	status, _, h := getJSON(t, s.URL+"/api/admin/users", bobAT)
	if status != 403 || !strings.Contains(h.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("/api/admin/users as bob: %d %q", status, h.Get("WWW-Authenticate"))
	}
	status, _, h = getJSON(t, s.URL+"/api/me", "")
	if status != 401 || strings.Contains(h.Get("WWW-Authenticate"), "error=") || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("/api/me without a token: %d %q", status, h.Get("WWW-Authenticate"))
	}
	status, _, h = getJSON(t, s.URL+"/api/me", at+"x")
	if status != 401 || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("/api/me with a bad token: %d %q", status, h.Get("WWW-Authenticate"))
	}

	// SIGTERM: a clean exit; then a restart on the same database.
	if err := s.Stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.Logs.String())
	}
	s2 := startServer(t, db, "--demo")
	if status, m, _ := getJSON(t, s2.URL+"/api/me", at); status != 200 || m["email"] != "alice@example.com" {
		t.Fatalf("token from before the restart: %d %v", status, m)
	}
	status, m := postForm(t, s2.URL+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"demo"}})
	if status != 200 {
		t.Fatalf("refresh after restart: %d %v", status, m)
	}
	if status, _, _ := getJSON(t, s2.URL+"/api/me", m["access_token"].(string)); status != 200 {
		t.Fatalf("refreshed token: %d", status)
	}
	// Revocation is seen by the in-process API at once.
	at2 := m["access_token"].(string)
	if status, _ := postForm(t, s2.URL+"/revoke", url.Values{"token": {at2}, "client_id": {"demo"}}); status != 200 {
		t.Fatalf("revoke: %d", status)
	}
	if status, _, _ := getJSON(t, s2.URL+"/api/me", at2); status != 401 {
		t.Fatalf("revoked token accepted by the API: %d", status)
	}
	for _, secret := range []string{"password123", "password456", at, rt, at2} {
		if strings.Contains(s.Logs.String()+s2.Logs.String(), secret) {
			t.Errorf("a secret value appears in the debug log")
		}
	}
	_ = context.Background
}
