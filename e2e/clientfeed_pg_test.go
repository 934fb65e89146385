package e2e

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/oauthkit/authserver/internal/testbin"
)

// clientChangeSlack is what the check of --client-change-max-delay (1s by
// default) allows on top for scheduling on a loaded machine.
const clientChangeSlack = 500 * time.Millisecond

// A client secret rotated, then the client deleted, with the CLI (which
// writes to the database only) stops working on every instance sharing the
// PostgreSQL database within --client-change-max-delay, although each
// instance answers the client from its cache in between: the client change
// feed carries the change.
func TestClientChangeReachesEveryInstancePostgres(t *testing.T) {
	c := startCodeCluster(t)
	ccStatus := func(base, secret string) int {
		st, _ := testbin.PostForm(t, base+"/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}, "app", secret)
		return st
	}
	for _, in := range c.inst {
		if st := ccStatus(in.URL, appSecret); st != http.StatusOK {
			t.Fatalf("client_credentials at %s: %d", in.URL, st)
		}
	}
	// refusedWithin polls every instance with secret until each refuses it
	// and returns the longest time that took.
	refusedWithin := func(what, secret string) time.Duration {
		t.Helper()
		start := time.Now()
		var worst time.Duration
		for _, in := range c.inst {
			for {
				if ccStatus(in.URL, secret) == http.StatusUnauthorized {
					worst = max(worst, time.Since(start))
					break
				}
				if time.Since(start) > 10*time.Second {
					t.Fatalf("%s: still accepted at %s after %v", what, in.URL, time.Since(start))
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if worst > time.Second+clientChangeSlack {
			t.Errorf("%s: accepted for %v, want at most --client-change-max-delay (1s) + %v", what, worst, clientChangeSlack)
		}
		t.Logf("%s: refused on every instance after %v", what, worst)
		return worst
	}

	newSecret := "e2e-app-rotated-0123456789-0123456789-abcd"
	testbin.Run(t, newSecret+"\n", "clients", "rotate-secret", "app", "--db", c.dsn, "--secret-stdin")
	refusedWithin("the rotated secret", appSecret)
	for _, in := range c.inst {
		if st := ccStatus(in.URL, newSecret); st != http.StatusOK {
			t.Fatalf("the new secret at %s: %d", in.URL, st)
		}
	}

	testbin.Run(t, "", "clients", "delete", "app", "--db", c.dsn)
	refusedWithin("the deleted client", newSecret)
}
