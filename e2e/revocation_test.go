package e2e

import (
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/oauthkit/authserver/internal/testbin"
)

// revocationDelay is the --revocation-max-delay the instances run with (the
// default).
const revocationDelay = time.Second

// untilInactive introspects token at base until it reads inactive and
// returns how long that took after since; it fails the test when that takes
// longer than the revocation delay plus slack for the requests themselves.
func untilInactive(t *testing.T, base, token string, since time.Time) time.Duration {
	t.Helper()
	const slack = 300 * time.Millisecond
	for {
		active := introspect(t, base, token)["active"]
		took := time.Since(since)
		if active == false {
			return took
		}
		if took > revocationDelay+slack {
			t.Fatalf("%s still reads the revoked token active %v after the revocation (delay %v)", base, took, revocationDelay)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Three instances on one PostgreSQL database, each answering introspection
// from its cache of verified tokens: a revocation anywhere (the revocation
// endpoint of one instance, or the CLI writing straight to the database)
// reads active:false on the revoking instance at once and on every other
// instance within the revocation delay.
func TestIntrospectionCacheRevocationAcrossInstancesPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dsn := postgresDSN(t)
	testbin.Run(t, "", "migrate", "--db", dsn)
	addClients(t, dsn)
	testbin.Run(t, "dave-password-0123\n", "users", "add", "--db", dsn, "--email", "dave@example.com", "--name", "Dave", "--password-stdin")
	common := []string{"--db", dsn, "--secret", "revocation-feed-secret-0123456789-0123456789", "--key-algorithm", "ES256"}
	var inst [3]*testbin.Server
	var wg sync.WaitGroup
	for i := range inst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst[i] = testbin.Start(t, nil, common...)
		}()
	}
	wg.Wait()

	// warm makes every instance cache the token (the first introspection
	// verifies and caches, the next ones are answered from the cache).
	warm := func(t *testing.T, token string) {
		t.Helper()
		for _, s := range inst {
			for range 3 {
				if introspect(t, s.URL, token)["active"] != true {
					t.Fatalf("%s: a fresh token reads inactive", s.URL)
				}
			}
		}
	}
	token := func(t *testing.T, form url.Values) (access, refresh string) {
		t.Helper()
		status, m := testbin.PostForm(t, inst[0].URL+"/token", form, "app", appSecret)
		if status != 200 {
			t.Fatalf("token: %d %v", status, m)
		}
		rt, _ := m["refresh_token"].(string)
		return m["access_token"].(string), rt
	}

	t.Run("RevocationEndpoint", func(t *testing.T) {
		at, _ := token(t, url.Values{"grant_type": {"client_credentials"}})
		warm(t, at)
		a := inst[1]
		if status, m := testbin.PostForm(t, a.URL+"/revoke", url.Values{"token": {at}}, "app", appSecret); status != 200 {
			t.Fatalf("revoke: %d %v", status, m)
		}
		revoked := time.Now()
		if introspect(t, a.URL, at)["active"] != false {
			t.Fatal("the revoking instance still reads the token active")
		}
		for _, s := range []*testbin.Server{inst[0], inst[2]} {
			t.Logf("%s: inactive after %v", s.URL, untilInactive(t, s.URL, at, revoked))
		}
	})

	t.Run("RefreshReplacesTheAccessToken", func(t *testing.T) {
		at, rt := token(t, url.Values{"grant_type": {"password"}, "username": {"dave@example.com"}, "password": {"dave-password-0123"}})
		warm(t, at)
		status, m := testbin.PostForm(t, inst[2].URL+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "app", appSecret)
		if status != 200 {
			t.Fatalf("refresh: %d %v", status, m)
		}
		refreshed := time.Now()
		for _, s := range inst {
			t.Logf("%s: old access token inactive after %v", s.URL, untilInactive(t, s.URL, at, refreshed))
		}
		if introspect(t, inst[1].URL, m["access_token"].(string))["active"] != true {
			t.Fatal("the new access token reads inactive")
		}
	})

	t.Run("CLIDeletesTheUser", func(t *testing.T) {
		at, _ := token(t, url.Values{"grant_type": {"password"}, "username": {"dave@example.com"}, "password": {"dave-password-0123"}})
		warm(t, at)
		testbin.Run(t, "", "users", "delete", "--db", dsn, "dave@example.com")
		deleted := time.Now()
		for _, s := range inst {
			t.Logf("%s: inactive after %v", s.URL, untilInactive(t, s.URL, at, deleted))
		}
	})
}
