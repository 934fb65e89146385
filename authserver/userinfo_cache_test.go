package authserver

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// UserInfo answers a token it has verified from memory, under the rules of
// the introspection cache: a revocation through this instance is seen at
// once, and a change to the user within RevocationMaxDelay.
func TestUserinfoCache(t *testing.T) {
	const delay = 300 * time.Millisecond
	e := newOIDCEnvConfig(t, func(c *Config) { c.RevocationMaxDelay = delay })
	tok := e.codeFlow(t, newBrowser(t, e.testEnv), "scope", "openid profile")
	at := tok["access_token"].(string)
	get := func() (int, map[string]any) {
		status, _, m := e.userinfo(t, http.MethodGet, at, "header")
		return status, m
	}
	for range 3 {
		if status, m := get(); status != http.StatusOK || m["name"] != "Alice" {
			t.Fatalf("userinfo: %d %v", status, m)
		}
	}
	if n := e.as.userinfoCache.len(); n != 1 {
		t.Fatalf("userinfo cache holds %d entries after one token, want 1", n)
	}

	// A renamed user is seen within the delay.
	alice, err := e.store.GetUserByEmail(t.Context(), "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.UpdateUser(t.Context(), alice.ID, func(u storage.User) (storage.User, error) {
		u.Name = "Alice Renamed"
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	for {
		_, m := get()
		if m["name"] == "Alice Renamed" {
			break
		}
		if time.Since(changed) > delay+100*time.Millisecond {
			t.Fatalf("userinfo still answers %v %v after the rename (delay %v)", m["name"], time.Since(changed), delay)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A token revoked here is refused at once, though cached.
	resp := e.post("/revoke", url.Values{"token": {at}}, "rp", rpSecret)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revocation: %d", resp.StatusCode)
	}
	if status, m := get(); status != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d %v, want 401 at once", status, m)
	}
	if n := e.as.userinfoCache.len(); n != 0 {
		t.Fatalf("the revoked token is still cached (%d entries)", n)
	}
}

// A user disabled directly in storage, with no revocation, loses UserInfo
// within the delay: the cached copy of the user is re-read.
func TestUserinfoCacheDisabledUser(t *testing.T) {
	const delay = 300 * time.Millisecond
	e := newOIDCEnvConfig(t, func(c *Config) { c.RevocationMaxDelay = delay })
	tok := e.codeFlow(t, newBrowser(t, e.testEnv), "scope", "openid email")
	at := tok["access_token"].(string)
	if status, _, m := e.userinfo(t, http.MethodGet, at, "header"); status != http.StatusOK {
		t.Fatalf("userinfo: %d %v", status, m)
	}
	alice, _ := e.store.GetUserByEmail(t.Context(), "alice@example.com")
	if _, err := e.store.UpdateUser(t.Context(), alice.ID, func(u storage.User) (storage.User, error) {
		u.Disabled = true
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay + 50*time.Millisecond)
	if status, _, m := e.userinfo(t, http.MethodGet, at, "header"); status != http.StatusUnauthorized {
		t.Fatalf("disabled user: %d %v, want 401", status, m)
	}
}
