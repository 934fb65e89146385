package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the authserver binary once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "authserver-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "authserver")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// server is a running authserver process.
type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  string
	logs *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startServer runs `authserver serve` on a free port and waits for the
// "listening" line.
func startServer(t *testing.T, db string, args ...string) *server {
	t.Helper()
	all := append([]string{"serve", "--db", db, "--addr", "127.0.0.1:0", "--argon2-memory", "64", "--argon2-time", "1"}, args...)
	cmd := exec.Command(binary(t), all...)
	cmd.Env = append(os.Environ(), "AUTHSERVER_LOG_LEVEL=debug")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, logs: &syncBuffer{}, done: make(chan error, 1)}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.logs.Write([]byte(line + "\n"))
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				addrc <- m[1]
			}
		}
	}()
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
	})
	select {
	case addr := <-addrc:
		s.url = "http://" + addr
	case err := <-s.done:
		t.Fatalf("server exited: %v\n%s", err, s.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("server did not start:\n%s", s.logs.String())
	}
	return s
}

// stop sends SIGTERM and returns the exit error.
func (s *server) stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(30 * time.Second):
		s.t.Fatal("server did not stop")
		return nil
	}
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
	if !strings.Contains(s.logs.String(), "DEMO CREDENTIALS") {
		t.Error("no loud demo warning in the log")
	}
	if fi, err := os.Stat(filepath.Join(dir, "data", "authserver.secret")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", fi, err)
	}
	at, rt := login(t, s.url, "alice@example.com", "password123")

	status, me, _ := getJSON(t, s.url+"/api/me", at)
	if status != 200 || me["email"] != "alice@example.com" || fmt.Sprint(me["roles"]) != "[admin]" {
		t.Fatalf("/api/me: %d %v", status, me)
	}
	if status, m, _ := getJSON(t, s.url+"/api/protected", at); status != 200 || m["message"] == nil {
		t.Fatalf("/api/protected: %d %v", status, m)
	}
	if status, m, _ := getJSON(t, s.url+"/api/admin/users", at); status != 200 || len(m["users"].([]any)) != 2 {
		t.Fatalf("/api/admin/users as alice: %d %v", status, m)
	}
	bobAT, _ := login(t, s.url, "bob@example.com", "password456")
	status, _, h := getJSON(t, s.url+"/api/admin/users", bobAT)
	if status != 403 || !strings.Contains(h.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("/api/admin/users as bob: %d %q", status, h.Get("WWW-Authenticate"))
	}
	status, _, h = getJSON(t, s.url+"/api/me", "")
	if status != 401 || strings.Contains(h.Get("WWW-Authenticate"), "error=") || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("/api/me without a token: %d %q", status, h.Get("WWW-Authenticate"))
	}
	status, _, h = getJSON(t, s.url+"/api/me", at+"x")
	if status != 401 || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("/api/me with a bad token: %d %q", status, h.Get("WWW-Authenticate"))
	}

	// SIGTERM: a clean exit; then a restart on the same database.
	if err := s.stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.logs.String())
	}
	s2 := startServer(t, db, "--demo")
	if status, m, _ := getJSON(t, s2.url+"/api/me", at); status != 200 || m["email"] != "alice@example.com" {
		t.Fatalf("token from before the restart: %d %v", status, m)
	}
	status, m := postForm(t, s2.url+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"demo"}})
	if status != 200 {
		t.Fatalf("refresh after restart: %d %v", status, m)
	}
	if status, _, _ := getJSON(t, s2.url+"/api/me", m["access_token"].(string)); status != 200 {
		t.Fatalf("refreshed token: %d", status)
	}
	// Revocation is seen by the in-process API at once.
	at2 := m["access_token"].(string)
	if status, _ := postForm(t, s2.url+"/revoke", url.Values{"token": {at2}, "client_id": {"demo"}}); status != 200 {
		t.Fatalf("revoke: %d", status)
	}
	if status, _, _ := getJSON(t, s2.url+"/api/me", at2); status != 401 {
		t.Fatalf("revoked token accepted by the API: %d", status)
	}
	for _, secret := range []string{"password123", "password456", at, rt, at2} {
		if strings.Contains(s.logs.String()+s2.logs.String(), secret) {
			t.Errorf("a secret value appears in the debug log")
		}
	}
	_ = context.Background
}
