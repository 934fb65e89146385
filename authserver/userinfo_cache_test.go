package authserver

import (
	"net/http"
	"net/url"
	"strings"
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

// UserInfo honours only access tokens whose aud includes the server's own
// audience, Config.Audience (RFC 9068 §4, RFC 9700 §2.3): a token whose
// resource parameter named only another API belongs to that API, which
// could otherwise replay it here. A refused token is not cached. A client
// that wants both names both resources, and may narrow the grant to either
// at /token.
func TestUserinfoRequiresServerAudience(t *testing.T) {
	e := newOIDCEnv(t, func(c *storage.Client) { c.Resources = []string{apiResource} })
	b := newBrowser(t, e.testEnv)
	at := e.codeFlow(t, b, "scope", "openid email", "resource", apiResource)["access_token"].(string)
	if aud := e.introspect(at)["aud"]; !audIs(aud, apiResource) {
		t.Fatalf("aud %v, want %s only", aud, apiResource)
	}
	for range 2 {
		status, h, m := e.userinfo(t, http.MethodGet, at, "header")
		if status != http.StatusUnauthorized || m["error"] != errInvalidToken || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("token for %s only: %d %v %q", apiResource, status, m, h.Get("WWW-Authenticate"))
		}
	}
	if n := e.as.userinfoCache.len(); n != 0 {
		t.Fatalf("userinfo cache holds %d entries after refusing the token", n)
	}

	// Both resources in the request: a grant for both audiences.
	both := func() (code, verifier string) {
		t.Helper()
		verifier, challenge := pkcePair("rp")
		p := b.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid email") + "&" +
			url.Values{"resource": {apiResource, e.as.cfg.Audience}}.Encode())
		if strings.Contains(p.body, `name="decision"`) {
			p = b.decide(p, "allow")
		}
		return e.callback(t, p, rpRedirect).Get("code"), verifier
	}
	exchange := func(code, verifier string, resource ...string) string {
		t.Helper()
		v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}, "redirect_uri": {rpRedirect}, "resource": resource}
		resp := e.post("/token", v, "rp", rpSecret)
		m := decode(t, resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("exchange %v: %d %v", resource, resp.StatusCode, m)
		}
		return m["access_token"].(string)
	}
	// Not narrowed: one token for both.
	at = exchange(both())
	if status, _, m := e.userinfo(t, http.MethodGet, at, "header"); status != http.StatusOK || m["email"] != "alice@example.com" {
		t.Fatalf("token for both audiences: %d %v", status, m)
	}
	if n := e.as.userinfoCache.len(); n != 1 {
		t.Fatalf("userinfo cache holds %d entries, want 1", n)
	}
	// Narrowed at the exchange: the API's token is refused, the server's
	// is good.
	code, verifier := both()
	if status, _, m := e.userinfo(t, http.MethodGet, exchange(code, verifier, apiResource), "header"); status != http.StatusUnauthorized {
		t.Fatalf("token narrowed to %s: %d %v", apiResource, status, m)
	}
	code, verifier = both()
	if status, _, m := e.userinfo(t, http.MethodGet, exchange(code, verifier, e.as.cfg.Audience), "header"); status != http.StatusOK {
		t.Fatalf("token narrowed to %s: %d %v", e.as.cfg.Audience, status, m)
	}
}

// A client's own token (client_credentials) with the openid scope has no
// user: userinfo refuses it, even when the client's ID is a user's ID.
func TestUserinfoRefusesClientTokens(t *testing.T) {
	e := newOIDCEnv(t, func(c *storage.Client) { c.GrantTypes = append(c.GrantTypes, "client_credentials") })
	alice, err := e.store.GetUserByEmail(t.Context(), "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	rp, err := e.store.GetClient(t.Context(), "rp")
	if err != nil {
		t.Fatal(err)
	}
	twin := rp
	twin.ID = alice.ID // an operator's client whose ID happens to be alice's
	if err := e.store.CreateClient(t.Context(), twin); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"rp", alice.ID} {
		at := e.clientToken(id, rpSecret, "openid email profile")
		status, h, m := e.userinfo(t, http.MethodGet, at, "header")
		if status != http.StatusUnauthorized || m["error"] != errInvalidToken || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) || m["email"] != nil {
			t.Errorf("client %s's own token: %d %v %q", id, status, m, h.Get("WWW-Authenticate"))
		}
	}
}
