package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/oauthkit/authserver/internal/testbin"
)

const (
	appSecret = "e2e-app-secret-0123456789-0123456789-xyz"
	rsSecret  = "e2e-rs-secret-0123456789-0123456789-xyzw"
)

// addClients registers a confidential client "app" (client_credentials,
// password, refresh_token) and an introspecting client "rs".
func addClients(t *testing.T, db string) {
	testbin.Run(t, appSecret+"\n", "clients", "add", "--db", db, "--id", "app", "--secret-stdin",
		"--grant", "client_credentials", "--grant", "password", "--grant", "refresh_token", "--scope", "read")
	testbin.Run(t, rsSecret+"\n", "clients", "add", "--db", db, "--id", "rs", "--secret-stdin",
		"--grant", "client_credentials", "--introspect")
}

func introspect(t *testing.T, base, token string) map[string]any {
	t.Helper()
	status, m := testbin.PostForm(t, base+"/introspect", url.Values{"token": {token}}, "rs", rsSecret)
	if status != 200 {
		t.Fatalf("introspect at %s: %d %v", base, status, m)
	}
	return m
}

// A SIGKILL during a stream of token requests loses no token that was
// returned to a client (SQLite, WAL, synchronous=FULL).
func TestSQLiteDurabilityUnderSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	db := filepath.Join(t.TempDir(), "auth.db")
	addClients(t, db)
	s := testbin.Start(t, nil, "--db", db)
	var mu sync.Mutex
	var issued []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				status, m := testbin.PostForm(t, s.URL+"/token", url.Values{"grant_type": {"client_credentials"}}, "app", appSecret)
				if status == 200 {
					mu.Lock()
					issued = append(issued, m["access_token"].(string))
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	s.Kill() // mid-stream
	close(stop)
	wg.Wait()
	mu.Lock()
	tokens := append([]string(nil), issued...)
	mu.Unlock()
	if len(tokens) < 20 {
		t.Fatalf("only %d tokens issued before the kill", len(tokens))
	}
	s2 := testbin.Start(t, nil, "--db", db)
	lost := 0
	for _, tok := range tokens {
		if introspect(t, s2.URL, tok)["active"] != true {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d returned tokens were lost by the SIGKILL", lost, len(tokens))
	}
	t.Logf("%d tokens returned before SIGKILL, all active after restart", len(tokens))
}

// postgresDSN returns a DSN on a fresh schema of the test database, or skips.
func postgresDSN(t *testing.T) string {
	base := os.Getenv("AUTHSERVER_TEST_POSTGRES_DSN")
	if base == "" {
		t.Skip("AUTHSERVER_TEST_POSTGRES_DSN not set; skipping PostgreSQL multi-instance tests")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "e2e_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}

// kidOf returns the kid of a JWT's header.
func kidOf(t *testing.T, jwt string) string {
	t.Helper()
	h, _, _ := strings.Cut(jwt, ".")
	b, err := decodeSegment(h)
	if err != nil {
		t.Fatal(err)
	}
	_, after, _ := strings.Cut(string(b), `"kid":"`)
	kid, _, _ := strings.Cut(after, `"`)
	return kid
}

func TestMultiInstancePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dsn := postgresDSN(t)
	secret := "multi-instance-secret-0123456789-0123456789"
	testbin.Run(t, "", "migrate", "--db", dsn)
	addClients(t, dsn)
	testbin.Run(t, "carol-password-0123\n", "users", "add", "--db", dsn, "--email", "carol@example.com", "--name", "Carol", "--password-stdin")
	common := []string{"--db", dsn, "--secret", secret, "--key-algorithm", "ES256", "--db-max-conns", "8", "--db-statement-timeout", "10s", "--db-conn-max-lifetime", "5m"}
	var inst [3]*testbin.Server
	var wg sync.WaitGroup
	for i := range inst {
		wg.Add(1)
		go func() { // instances starting together must not race on migrations or keys
			defer wg.Done()
			inst[i] = testbin.Start(t, nil, common...)
		}()
	}
	wg.Wait()
	a, b, c := inst[0], inst[1], inst[2]

	t.Run("IssueAtAIntrospectAtBRevokeAtC", func(t *testing.T) {
		status, m := testbin.PostForm(t, a.URL+"/token", url.Values{"grant_type": {"client_credentials"}}, "app", appSecret)
		if status != 200 {
			t.Fatalf("%d %v", status, m)
		}
		tok := m["access_token"].(string)
		if introspect(t, b.URL, tok)["active"] != true {
			t.Fatal("B does not see A's token")
		}
		if status, m := testbin.PostForm(t, c.URL+"/revoke", url.Values{"token": {tok}}, "app", appSecret); status != 200 {
			t.Fatalf("revoke at C: %d %v", status, m)
		}
		if introspect(t, a.URL, tok)["active"] != false {
			t.Fatal("A still sees the token revoked at C")
		}
	})

	t.Run("ConcurrentRefreshYieldsOnePair", func(t *testing.T) {
		status, m := testbin.PostForm(t, a.URL+"/token", url.Values{"grant_type": {"password"}, "username": {"carol@example.com"}, "password": {"carol-password-0123"}}, "app", appSecret)
		if status != 200 {
			t.Fatalf("%d %v", status, m)
		}
		rt := m["refresh_token"].(string)
		var ok atomic.Int32
		var mu sync.Mutex
		var pairs []string
		together(50, func(i int) {
			status, m := testbin.PostForm(t, inst[i%3].URL+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "app", appSecret)
			if status == 200 {
				ok.Add(1)
				mu.Lock()
				pairs = append(pairs, m["refresh_token"].(string))
				mu.Unlock()
			} else if status != 400 {
				t.Errorf("unexpected status %d %v", status, m)
			}
		})
		if ok.Load() != 1 {
			t.Fatalf("%d of 50 concurrent refreshes succeeded, want exactly 1", ok.Load())
		}
	})

	t.Run("KeyRotationReachesAllInstances", func(t *testing.T) {
		tokenAt := func(s *testbin.Server) string {
			status, m := testbin.PostForm(t, s.URL+"/token", url.Values{"grant_type": {"client_credentials"}}, "app", appSecret)
			if status != 200 {
				t.Fatalf("%d %v", status, m)
			}
			return m["access_token"].(string)
		}
		before := kidOf(t, tokenAt(a))
		testbin.Run(t, "", "keys", "rotate", "--now", "--db", dsn, "--secret", secret, "--key-algorithm", "ES256")
		deadline := time.Now().Add(15 * time.Second) // reload interval 10s plus slack
		for _, s := range inst {
			for kidOf(t, tokenAt(s)) == before {
				if time.Now().After(deadline) {
					t.Fatalf("instance %s still signs with the old key", s.URL)
				}
				time.Sleep(250 * time.Millisecond)
			}
		}
	})

	t.Run("KillOneInstanceMidLoad", func(t *testing.T) {
		var mu sync.Mutex
		issued := map[string]string{} // token → instance URL
		stop := make(chan struct{})
		var lwg sync.WaitGroup
		var failuresOnSurvivors atomic.Int32
		for w := 0; w < 9; w++ {
			lwg.Add(1)
			go func() {
				defer lwg.Done()
				s := inst[w%3]
				for {
					select {
					case <-stop:
						return
					default:
					}
					status, m := testbin.PostForm(t, s.URL+"/token", url.Values{"grant_type": {"client_credentials"}}, "app", appSecret)
					if status == 200 {
						mu.Lock()
						issued[m["access_token"].(string)] = s.URL
						mu.Unlock()
					} else if s != a {
						failuresOnSurvivors.Add(1)
					}
				}
			}()
		}
		time.Sleep(time.Second)
		a.Kill()
		time.Sleep(time.Second)
		close(stop)
		lwg.Wait()
		if n := failuresOnSurvivors.Load(); n > 0 {
			t.Errorf("%d requests failed on the surviving instances", n)
		}
		mu.Lock()
		defer mu.Unlock()
		lost := 0
		for tok := range issued {
			if introspect(t, b.URL, tok)["active"] != true {
				lost++
			}
		}
		if lost > 0 {
			t.Fatalf("%d of %d committed tokens lost", lost, len(issued))
		}
		t.Logf("%d tokens issued across the kill, none lost", len(issued))
	})
	_ = fmt.Sprint
}

// With a grace window, 50 concurrent refreshes of one token over three
// instances all get the same single new pair.
func TestMultiInstanceRefreshGracePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dsn := postgresDSN(t)
	secret := "multi-instance-secret-0123456789-0123456789"
	testbin.Run(t, "", "migrate", "--db", dsn)
	addClients(t, dsn)
	testbin.Run(t, "carol-password-0123\n", "users", "add", "--db", dsn, "--email", "carol@example.com", "--name", "Carol", "--password-stdin")
	var inst [3]*testbin.Server
	var wg sync.WaitGroup
	for i := range inst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst[i] = testbin.Start(t, nil, "--db", dsn, "--secret", secret, "--key-algorithm", "ES256", "--refresh-grace", "10s")
		}()
	}
	wg.Wait()
	status, m := testbin.PostForm(t, inst[0].URL+"/token", url.Values{"grant_type": {"password"}, "username": {"carol@example.com"}, "password": {"carol-password-0123"}}, "app", appSecret)
	if status != 200 {
		t.Fatalf("%d %v", status, m)
	}
	rt := m["refresh_token"].(string)
	var mu sync.Mutex
	pairs := map[string]int{}
	failures := 0
	together(50, func(i int) {
		status, m := testbin.PostForm(t, inst[i%3].URL+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "app", appSecret)
		mu.Lock()
		defer mu.Unlock()
		if status != 200 {
			failures++
			t.Logf("refresh %d: %d %v", i, status, m)
			return
		}
		pairs[m["access_token"].(string)+" "+m["refresh_token"].(string)]++
	})
	if len(pairs) != 1 || failures != 0 {
		t.Fatalf("%d distinct pairs and %d failures from 50 concurrent refreshes inside the grace window, want 1 and 0", len(pairs), failures)
	}
	for pair := range pairs {
		_, newRT, _ := strings.Cut(pair, " ")
		if introspect(t, inst[1].URL, newRT)["active"] != true {
			t.Fatal("the single new pair is not active")
		}
	}
}

// A client that sends its headers slowly (slowloris) is disconnected by the
// read-header timeout (5 s), and the server keeps answering others.
func TestSlowHeadersAreCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary and waits for a timeout")
	}
	s := testbin.Start(t, nil, "--db", filepath.Join(t.TempDir(), "auth.db"))
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /token HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 512)
	n, err := conn.Read(buf) // the server closes the connection (or answers 408)
	elapsed := time.Since(start)
	if elapsed > 10*time.Second {
		t.Fatalf("connection held for %v with incomplete headers", elapsed)
	}
	t.Logf("cut off after %v (read %q, %v)", elapsed.Round(100*time.Millisecond), buf[:n], err)
	if status, _ := testbin.PostForm(t, s.URL+"/token", url.Values{"grant_type": {"client_credentials"}}, "x", "y"); status != 401 {
		t.Fatalf("server not answering after the slow client: %d", status)
	}
}
