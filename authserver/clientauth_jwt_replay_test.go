package authserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/internal/assertiontest"
	"github.com/oauthkit/authserver/storage"
	sqlstore "github.com/oauthkit/authserver/storage/sql"
)

// The jti of a client assertion is recorded in the group commit (useOnce):
// of concurrent requests with one assertion, exactly one may pass, the
// others are invalid_client, and requests with fresh assertions committed in
// the same batches all succeed.

func TestAssertionReplayRaceMemory(t *testing.T) { testAssertionReplayRace(t, openMemory) }

func TestAssertionReplayRaceSQLite(t *testing.T) { testAssertionReplayRace(t, openSQLite) }

func TestAssertionReplayRacePostgres(t *testing.T) { testAssertionReplayRace(t, openTestPostgres) }

// raceResult is the status and error code of one response.
type raceResult struct {
	status int
	code   string
}

func testAssertionReplayRace(t *testing.T, open func(testing.TB) storage.Store) {
	env := newTestEnv(t, open(t), func(c *Config) { c.Throttle.Disabled = true })
	jc := seedJWTClients(t, env)
	tokenURL, introspectURL := env.issuer+"/token", env.issuer+"/introspect"
	sign := func(aud string) string {
		return assertiontest.Sign(t, jose.ES256, jc.es.key, jc.es.kid, goodClaims("pk-es", aud))
	}
	code, m := env.clientCredentials(t, sign(tokenURL))
	if code != 200 {
		t.Fatalf("client_credentials: %d %v", code, m)
	}
	at := m["access_token"].(string)

	const n = 24
	type req struct {
		group, path string
		form        url.Values
	}
	var reqs []req
	replayedToken := assertionForm(sign(tokenURL), "grant_type", "client_credentials", "scope", "read")
	replayedIntrospect := assertionForm(sign(introspectURL), "token", at)
	for range n {
		reqs = append(reqs,
			req{"replayed /token", "/token", replayedToken},
			req{"replayed /introspect", "/introspect", replayedIntrospect},
			req{"fresh /token", "/token", assertionForm(sign(tokenURL), "grant_type", "client_credentials", "scope", "read")})
	}
	var (
		mu      sync.Mutex
		results = map[string][]raceResult{}
		wg      sync.WaitGroup
		start   = make(chan struct{})
	)
	for _, rq := range reqs {
		wg.Go(func() {
			<-start
			resp, err := http.Post(env.srv.URL+rq.path, "application/x-www-form-urlencoded", strings.NewReader(rq.form.Encode()))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var body struct {
				Error string `json:"error"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			mu.Lock()
			results[rq.group] = append(results[rq.group], raceResult{resp.StatusCode, body.Error})
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()

	for _, group := range []string{"replayed /token", "replayed /introspect"} {
		ok, refused := 0, 0
		for _, r := range results[group] {
			switch {
			case r.status == 200:
				ok++
			case r.status == 401 && r.code == errInvalidClient:
				refused++
			default:
				t.Errorf("%s: status %d %q, want 200 or 401 invalid_client", group, r.status, r.code)
			}
		}
		if ok != 1 || refused != n-1 {
			t.Errorf("%s %d times at once: %d × 200 and %d × 401 invalid_client, want 1 and %d", group, n, ok, refused, n-1)
		}
	}
	for _, r := range results["fresh /token"] {
		if r.status != 200 {
			t.Errorf("fresh assertion racing the replays: status %d %q, want 200", r.status, r.code)
		}
	}
}

// useOnce in one group commit: of three requests with one key, one stores
// it and two get errReplayed; the other requests of the same transaction,
// single-use records and token writes alike, commit.
func TestUseOnceReplayFailsAloneInItsBatch(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			var (
				mu    sync.Mutex
				sizes []int
			)
			c := newCommitter(st, 12, time.Minute, func(n int, _ time.Duration) { mu.Lock(); sizes = append(sizes, n); mu.Unlock() })
			s := &Server{store: st, committer: c}
			if err := c.submit(t.Context(), nil, "", nil, nil, createTok(st, "warm")); err != nil {
				t.Fatal(err) // a commit just ended: the next one lingers
			}
			rec := func(key string) storage.Token {
				now := time.Now()
				return storage.Token{Kind: storage.UsedJTI, Signature: "test:" + key, RequestID: "test:" + key, ClientID: "c",
					Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Minute)}
			}
			const n = 12 // 0-2: one key; 3-8: keys of their own; 9-11: token writes
			arrived := make([]func(), n)
			for i := range arrived {
				arrived[i] = c.expect()
			}
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					switch {
					case i < 3:
						errs[i] = s.useOnce(t.Context(), arrived[i], rec("same"))
					case i < 9:
						errs[i] = s.useOnce(t.Context(), arrived[i], rec(fmt.Sprint("own-", i)))
					default:
						errs[i] = c.submit(t.Context(), arrived[i], "", nil, nil, createTok(st, fmt.Sprint("at-", i)))
					}
				})
			}
			wg.Wait()
			won := 0
			for i, err := range errs {
				switch {
				case i < 3 && err == nil:
					won++
				case i < 3 && !errors.Is(err, errReplayed):
					t.Errorf("request %d with the shared key: %v, want nil or errReplayed", i, err)
				case i >= 3 && err != nil:
					t.Errorf("request %d failed beside a replay: %v", i, err)
				}
			}
			if won != 1 {
				t.Errorf("%d of 3 requests with one key passed, want 1", won)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(sizes, []int{1, n}) {
				t.Errorf("transactions of %v requests, want [1 %d]: the replays must share the batch", sizes, n)
			}
			for i := 3; i < n; i++ {
				kind, sig := storage.UsedJTI, fmt.Sprint("test:own-", i)
				if i >= 9 {
					kind, sig = storage.AccessToken, fmt.Sprint("at-", i)
				}
				if _, err := st.GetToken(t.Context(), kind, sig); err != nil {
					t.Errorf("request %d committed but its record: %v", i, err)
				}
			}
		})
	}
}

// backends are the stores a test runs on: memory, SQLite, and PostgreSQL
// when AUTHSERVER_TEST_POSTGRES_DSN is set.
var backends = []struct {
	name string
	open func(testing.TB) storage.Store
}{{"memory", openMemory}, {"sqlite", openSQLite}, {"postgres", openTestPostgres}}

// openTestPostgres opens a store on a fresh schema of
// AUTHSERVER_TEST_POSTGRES_DSN, or skips.
func openTestPostgres(t testing.TB) storage.Store {
	base := os.Getenv("AUTHSERVER_TEST_POSTGRES_DSN")
	if base == "" {
		t.Skip("AUTHSERVER_TEST_POSTGRES_DSN not set; skipping the PostgreSQL case")
	}
	st, err := sqlstore.OpenPostgres(t.Context(), postgresSchemaDSN(t.(*testing.T), base))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
