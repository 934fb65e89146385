package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauthkit/authserver/internal/testbin"
)

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startResourceServer builds and runs cmd/resourceserver with args and
// returns its base URL.
func startResourceServer(t *testing.T, args ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "resourceserver")
	build := exec.Command("go", "build", "-o", bin, "./cmd/resourceserver")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, append([]string{"--addr", addr}, args...)...)
	logs := &testbin.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://" + addr
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			return base
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("resourceserver did not start:\n%s", logs.String())
		}
	}
}

// callAPI calls the demo API with token and returns the status.
func callAPI(t *testing.T, base, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/protected", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A token revoked at the server is refused by cmd/resourceserver, which
// verifies JWTs locally (no introspection), within one --status-refresh
// plus one fetch; no request succeeds after the first refusal.
func TestStatusListRevocationReachesLocalVerification(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binaries")
	}
	db := filepath.Join(t.TempDir(), "auth.db")
	testbin.Run(t, "", "migrate", "--db", db)
	addClients(t, db)
	addr := freeAddr(t)
	issuer := "http://" + addr
	as := testbin.Start(t, nil, "--db", db, "--addr", addr, "--issuer", issuer,
		"--secret", "status-list-secret-0123456789-0123456789-0123", "--key-algorithm", "ES256")
	const refresh = 5 * time.Second
	rs := startResourceServer(t, "--issuer", issuer, "--audience", issuer+"/api", "--status-refresh", refresh.String())

	status, m := testbin.PostForm(t, as.URL+"/token", url.Values{"grant_type": {"client_credentials"}}, "app", appSecret)
	if status != 200 {
		t.Fatalf("token: %d %v", status, m)
	}
	at := m["access_token"].(string)
	if code := callAPI(t, rs, at); code != http.StatusOK {
		t.Fatalf("fresh token at the resource server: %d", code)
	}
	if status, m := testbin.PostForm(t, as.URL+"/revoke", url.Values{"token": {at}}, "app", appSecret); status != 200 {
		t.Fatalf("revoke: %d %v", status, m)
	}
	revoked := time.Now()
	var refusedAfter time.Duration
	for {
		code := callAPI(t, rs, at)
		took := time.Since(revoked)
		if code == http.StatusUnauthorized {
			refusedAfter = took
			break
		}
		if code != http.StatusOK {
			t.Fatalf("unexpected status %d", code)
		}
		// One refresh interval, plus the server's once-a-second rebuild
		// and one fetch.
		if took > refresh+2*time.Second {
			t.Fatalf("the revoked token is still accepted %v after the revocation", took)
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("status list propagation: revoked token refused by cmd/resourceserver %v after the revocation (--status-refresh %v)\n", refusedAfter.Round(time.Millisecond), refresh)
	t.Logf("refused after %v", refusedAfter)
	for range 20 {
		if code := callAPI(t, rs, at); code != http.StatusUnauthorized {
			t.Fatalf("a request after the first refusal got %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Three instances on one PostgreSQL database, 64 concurrent token requests
// each: no two access tokens share a status list entry.
func TestStatusListIndexesUniqueAcrossInstancesPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dsn := postgresDSN(t)
	testbin.Run(t, "", "migrate", "--db", dsn)
	addClients(t, dsn)
	// Small lists and blocks, so that blocks and lists roll over many times.
	common := []string{"--db", dsn, "--secret", "status-list-secret-0123456789-0123456789-0123", "--key-algorithm", "ES256",
		"--status-list-size", "256", "--status-list-block", "8"}
	var inst [3]*testbin.Server
	var wg sync.WaitGroup
	for i := range inst {
		wg.Go(func() { inst[i] = testbin.Start(t, nil, common...) })
	}
	wg.Wait()
	const perIssuer = 4
	var mu sync.Mutex
	seen := map[string]int{}
	lists := map[string]bool{}
	for _, s := range inst {
		for range 64 {
			wg.Go(func() {
				for range perIssuer {
					status, m := testbin.PostForm(t, s.URL+"/token", url.Values{"grant_type": {"client_credentials"}}, "app", appSecret)
					if status != 200 {
						t.Errorf("token: %d %v", status, m)
						return
					}
					uri, idx := statusOf(t, m["access_token"].(string))
					mu.Lock()
					seen[fmt.Sprintf("%s#%d", uri, idx)]++
					lists[uri] = true
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	total := 0
	for k, n := range seen {
		if n > 1 {
			t.Errorf("status entry %s given to %d tokens", k, n)
		}
		total += n
	}
	if total != 3*64*perIssuer {
		t.Fatalf("%d tokens, want %d", total, 3*64*perIssuer)
	}
	t.Logf("%d tokens, %d distinct entries in %d lists", total, len(seen), len(lists))
}

// statusOf reads an access token's status claim.
func statusOf(t *testing.T, at string) (string, int64) {
	t.Helper()
	parts := strings.Split(at, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Status struct {
			StatusList struct {
				Idx *int64 `json:"idx"`
				URI string `json:"uri"`
			} `json:"status_list"`
		} `json:"status"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.Status.StatusList.Idx == nil {
		t.Fatalf("no status claim in %s (%v)", b, err)
	}
	return c.Status.StatusList.URI, *c.Status.StatusList.Idx
}
