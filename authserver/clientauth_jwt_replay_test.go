package authserver

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/storage"
	sqlstore "github.com/oauthkit/authserver/storage/sql"
)

// The jti of a client assertion is recorded in the group commit (useOnce):
// of concurrent requests with one assertion, exactly one may pass, the
// others are invalid_client, and requests with fresh assertions committed in
// the same batches all succeed.

func TestAssertionReplayRaceMemory(t *testing.T) { testAssertionReplayRace(t, openMemory) }

func TestAssertionReplayRaceSQLite(t *testing.T) { testAssertionReplayRace(t, openSQLite) }

func TestAssertionReplayRacePostgres(t *testing.T) {
	base := os.Getenv("AUTHSERVER_TEST_POSTGRES_DSN")
	if base == "" {
		t.Skip("AUTHSERVER_TEST_POSTGRES_DSN not set; skipping the PostgreSQL assertion replay race")
	}
	testAssertionReplayRace(t, func(t testing.TB) storage.Store {
		st, err := sqlstore.OpenPostgres(t.Context(), postgresSchemaDSN(t.(*testing.T), base))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

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
		return assertion(t, jose.ES256, jc.es.key, jc.es.kid, goodClaims("pk-es", aud))
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
