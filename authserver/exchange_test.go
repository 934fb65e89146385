package authserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/storage"
)

const (
	gwSecret     = "gw-secret-0123456789-0123456789-abcdefghi"
	ordersSecret = "orders-secret-0123456789-0123456789-abcde"
)

// exchangeEnv is a server on SQLite with two exchange clients: gw (may
// exchange for https://orders.example/) and orders (may exchange for billing).
func exchangeEnv(t testing.TB) *testEnv {
	env := newTestEnv(t, openSQLite(t))
	now := time.Now().UTC()
	for _, c := range []storage.Client{
		{ID: "gw", SecretHashes: []string{password.HashSecret(gwSecret)}, GrantTypes: []string{"client_credentials", grantTokenExchange},
			Scopes: []string{"read", "write"}, ExchangeAudiences: []string{"https://orders.example/"}},
		{ID: "orders", SecretHashes: []string{password.HashSecret(ordersSecret)}, GrantTypes: []string{"client_credentials", grantTokenExchange},
			Scopes: []string{"read"}, ExchangeAudiences: []string{"billing"}},
	} {
		c.CreatedAt, c.UpdatedAt = now, now
		if err := env.store.CreateClient(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

func (env *testEnv) tokenExchange(client, secret string, form url.Values) (int, map[string]any) {
	env.t.Helper()
	form.Set("grant_type", grantTokenExchange)
	resp := env.post("/token", form, client, secret)
	return resp.StatusCode, decode(env.t, resp)
}

func (env *testEnv) clientToken(client, secret, scope string) string {
	env.t.Helper()
	resp := env.post("/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, client, secret)
	m := decode(env.t, resp)
	if resp.StatusCode != 200 {
		env.t.Fatalf("client_credentials: %d %v", resp.StatusCode, m)
	}
	return m["access_token"].(string)
}

// jwtClaims decodes a JWT's payload without verifying it.
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func wantError(t *testing.T, status int, m map[string]any, wantStatus int, code string) {
	t.Helper()
	if status != wantStatus || m["error"] != code {
		t.Fatalf("got %d %v, want %d %s", status, m, wantStatus, code)
	}
}

func TestExchangeDelegationChain(t *testing.T) {
	env := exchangeEnv(t)
	user, _ := env.passwordToken("alice@example.com", alicePW)
	// gw acts for alice towards orders.
	st, m := env.tokenExchange("gw", gwSecret, url.Values{
		"subject_token": {user}, "subject_token_type": {tokenTypeAccess},
		"actor_token": {env.clientToken("gw", gwSecret, "read")}, "actor_token_type": {tokenTypeAccess},
		"audience": {"https://orders.example/"}, "scope": {"read"},
	})
	if st != 200 {
		t.Fatalf("first exchange: %d %v", st, m)
	}
	if m["issued_token_type"] != tokenTypeAccess || m["token_type"] != "Bearer" || m["scope"] != "read" || m["refresh_token"] != nil {
		t.Fatalf("response: %v", m)
	}
	if e, _ := m["expires_in"].(float64); e <= 0 {
		t.Fatalf("expires_in: %v", m["expires_in"])
	}
	first := m["access_token"].(string)
	c := jwtClaims(t, first)
	if c["sub"] != env.alice.ID || c["aud"].([]any)[0] != "https://orders.example/" || c["act"].(map[string]any)["sub"] != "gw" {
		t.Fatalf("first claims: %v", c)
	}
	// orders acts for alice (through gw) towards billing: nested act.
	st, m = env.tokenExchange("orders", ordersSecret, url.Values{
		"subject_token": {first}, "subject_token_type": {tokenTypeAccess},
		"actor_token": {env.clientToken("orders", ordersSecret, "read")}, "actor_token_type": {tokenTypeAccess},
		"audience": {"billing"},
	})
	if st != 200 {
		t.Fatalf("second exchange: %d %v", st, m)
	}
	second := m["access_token"].(string)
	c = jwtClaims(t, second)
	act := c["act"].(map[string]any)
	inner, _ := act["act"].(map[string]any)
	if c["sub"] != env.alice.ID || act["sub"] != "orders" || inner == nil || inner["sub"] != "gw" || inner["act"] != nil {
		t.Fatalf("second claims: %v", c)
	}
	// The result is a real token: introspection sees it, revocation ends it.
	if in := env.introspect(second); in["active"] != true || in["sub"] != env.alice.ID {
		t.Fatalf("introspect: %v", in)
	}
	resp := env.post("/revoke", url.Values{"token": {second}}, "orders", ordersSecret)
	resp.Body.Close()
	if in := env.introspect(second); in["active"] != false {
		t.Fatalf("introspect after revoke: %v", in)
	}
	// Impersonation: no actor, no act.
	st, m = env.tokenExchange("gw", gwSecret, url.Values{"subject_token": {user}, "subject_token_type": {tokenTypeAccess}})
	if st != 200 || jwtClaims(t, m["access_token"].(string))["act"] != nil {
		t.Fatalf("impersonation: %d %v", st, m)
	}
}

func TestExchangeRefusals(t *testing.T) {
	env := exchangeEnv(t)
	user, _ := env.passwordToken("alice@example.com", alicePW)
	subj := func(extra ...string) url.Values {
		v := url.Values{"subject_token": {user}, "subject_token_type": {tokenTypeAccess}}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Add(extra[i], extra[i+1])
		}
		return v
	}
	t.Run("disallowed audience", func(t *testing.T) {
		st, m := env.tokenExchange("gw", gwSecret, subj("audience", "billing"))
		wantError(t, st, m, 400, errInvalidTarget)
		st, m = env.tokenExchange("gw", gwSecret, subj("resource", "https://evil.example/"))
		wantError(t, st, m, 400, errInvalidTarget)
	})
	t.Run("scope escalation", func(t *testing.T) {
		resp := env.post("/token", url.Values{"grant_type": {"password"}, "username": {"bob@example.com"}, "password": {bobPW}, "client_id": {"demo"}, "scope": {"read"}}, "", "")
		ro := decode(t, resp)["access_token"].(string)
		st, m := env.tokenExchange("gw", gwSecret, url.Values{"subject_token": {ro}, "subject_token_type": {tokenTypeAccess}, "scope": {"read write"}})
		wantError(t, st, m, 400, errInvalidScope)
		// Without a scope the result keeps the subject token's (read only).
		st, m = env.tokenExchange("gw", gwSecret, url.Values{"subject_token": {ro}, "subject_token_type": {tokenTypeAccess}})
		if st != 200 || m["scope"] != "read" {
			t.Fatalf("same scope: %d %v", st, m)
		}
	})
	t.Run("missing parameters", func(t *testing.T) {
		st, m := env.tokenExchange("gw", gwSecret, url.Values{"subject_token_type": {tokenTypeAccess}})
		wantError(t, st, m, 400, errInvalidRequest)
		st, m = env.tokenExchange("gw", gwSecret, url.Values{"subject_token": {user}})
		wantError(t, st, m, 400, errInvalidRequest)
		st, m = env.tokenExchange("gw", gwSecret, subj("actor_token", user))
		wantError(t, st, m, 400, errInvalidRequest)
	})
	t.Run("wrong token types", func(t *testing.T) {
		st, m := env.tokenExchange("gw", gwSecret, url.Values{"subject_token": {user}, "subject_token_type": {"urn:ietf:params:oauth:token-type:saml2"}})
		wantError(t, st, m, 400, errInvalidRequest)
		// An access token presented as an ID token is refused (typ at+jwt).
		st, m = env.tokenExchange("gw", gwSecret, url.Values{"subject_token": {user}, "subject_token_type": {tokenTypeID}})
		wantError(t, st, m, 400, errInvalidRequest)
	})
	t.Run("client not registered for the grant", func(t *testing.T) {
		st, m := env.tokenExchange("app", appSecret, subj())
		wantError(t, st, m, 400, errUnauthorizedClient)
	})
	t.Run("revoked subject token", func(t *testing.T) {
		tok, _ := env.passwordToken("bob@example.com", bobPW)
		resp := env.post("/revoke", url.Values{"token": {tok}, "client_id": {"demo"}}, "", "")
		resp.Body.Close()
		st, m := env.tokenExchange("gw", gwSecret, url.Values{"subject_token": {tok}, "subject_token_type": {tokenTypeAccess}})
		wantError(t, st, m, 400, errInvalidRequest)
	})
	t.Run("id token from another issuer", func(t *testing.T) {
		// Signed by a foreign key, and signed by our key with a foreign iss.
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		foreign := signTestJWT(t, jose.JSONWebKey{Key: k, KeyID: "other", Algorithm: "ES256"}, map[string]any{
			"iss": "https://other.example", "sub": env.alice.ID, "aud": "gw", "exp": time.Now().Add(time.Hour).Unix()})
		st, m := env.tokenExchange("gw", gwSecret, url.Values{"subject_token": {foreign}, "subject_token_type": {tokenTypeID}})
		wantError(t, st, m, 400, errInvalidRequest)
		ours, err := env.as.strategy.sign(t.Context(), map[string]any{
			"iss": "https://other.example", "sub": env.alice.ID, "aud": "gw", "exp": time.Now().Add(time.Hour).Unix()}, "JWT")
		if err != nil {
			t.Fatal(err)
		}
		st, m = env.tokenExchange("gw", gwSecret, url.Values{"subject_token": {ours}, "subject_token_type": {tokenTypeID}})
		wantError(t, st, m, 400, errInvalidRequest)
	})
	// The ID tokens below name a live browser session of alice (sid), and
	// alice consented to read for gw and orders.
	sid := liveBrowserSession(t, env, env.alice.ID)
	rememberConsent(t, env, env.alice.ID, "gw", "read")
	rememberConsent(t, env, env.alice.ID, "orders", "read")
	t.Run("id token of ours with may_act", func(t *testing.T) {
		idt, err := env.as.strategy.sign(t.Context(), map[string]any{
			"iss": env.issuer, "sub": env.alice.ID, "aud": []string{"gw", "orders"}, "exp": time.Now().Add(time.Hour).Unix(),
			"sid": sid, "may_act": map[string]any{"sub": "gw"}}, "JWT")
		if err != nil {
			t.Fatal(err)
		}
		st, m := env.tokenExchange("gw", gwSecret, url.Values{"subject_token": {idt}, "subject_token_type": {tokenTypeID},
			"actor_token": {env.clientToken("gw", gwSecret, "read")}, "actor_token_type": {tokenTypeAccess}, "scope": {"read"}})
		if st != 200 || jwtClaims(t, m["access_token"].(string))["sub"] != env.alice.ID {
			t.Fatalf("id token exchange: %d %v", st, m)
		}
		// orders is not the actor may_act names.
		st, m = env.tokenExchange("orders", ordersSecret, url.Values{"subject_token": {idt}, "subject_token_type": {tokenTypeID},
			"actor_token": {env.clientToken("orders", ordersSecret, "read")}, "actor_token_type": {tokenTypeAccess}})
		wantError(t, st, m, 400, errInvalidRequest)
		if !strings.Contains(m["error_description"].(string), "may_act") {
			t.Fatalf("orders refused for another reason: %v", m)
		}
	})
	t.Run("id token issued to another client", func(t *testing.T) {
		idt, err := env.as.strategy.sign(t.Context(), map[string]any{
			"iss": env.issuer, "sub": env.alice.ID, "aud": "orders", "exp": time.Now().Add(time.Hour).Unix(), "sid": sid}, "JWT")
		if err != nil {
			t.Fatal(err)
		}
		st, m := env.tokenExchange("gw", gwSecret, url.Values{"subject_token": {idt}, "subject_token_type": {tokenTypeID}})
		wantError(t, st, m, 400, errInvalidRequest)
		st, m = env.tokenExchange("orders", ordersSecret, url.Values{"subject_token": {idt}, "subject_token_type": {tokenTypeID}, "scope": {"read"}})
		if st != 200 {
			t.Fatalf("the client the ID token was issued to: %d %v", st, m)
		}
	})
}

// liveBrowserSession stores a browser session of the user, as a sign-in
// does, and returns its sid.
func liveBrowserSession(t *testing.T, env *testEnv, userID string) string {
	t.Helper()
	sid, now := rand.Text(), time.Now().UTC()
	if err := env.store.CreateToken(t.Context(), storage.Token{Kind: storage.BrowserSession, Signature: hashHandle(rand.Text()),
		RequestID: sid, Subject: userID, Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	return sid
}

// rememberConsent stores the user's consent to scopes for a client, as the
// consent page does.
func rememberConsent(t *testing.T, env *testEnv, userID, clientID string, scopes ...string) {
	t.Helper()
	b, err := json.Marshal(consentPayload{Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	key, now := consentKey(userID, clientID), time.Now().UTC()
	if err := env.store.CreateToken(t.Context(), storage.Token{Kind: storage.Consent, Signature: key, RequestID: key, Subject: userID,
		ClientID: clientID, Active: true, RequestedAt: now, ExpiresAt: now.Add(consentLifetime), Payload: b}); err != nil {
		t.Fatal(err)
	}
}

// RFC 8693 §2.2.2: "If either the subject_token or actor_token are invalid
// for any reason, or are unacceptable based on policy, ... The value of the
// error parameter MUST be the invalid_request error code."
func TestExchangeInvalidSubjectOrActorTokenIsInvalidRequest(t *testing.T) {
	env := exchangeEnv(t)
	tok, _ := env.passwordToken("bob@example.com", bobPW)
	resp := env.post("/revoke", url.Values{"token": {tok}, "client_id": {"demo"}}, "", "")
	resp.Body.Close()
	gwToken := env.clientToken("gw", gwSecret, "read")
	for name, f := range map[string]url.Values{
		"revoked subject_token": {"subject_token": {tok}, "subject_token_type": {tokenTypeAccess}},
		"garbage subject_token": {"subject_token": {"not-a-token"}, "subject_token_type": {tokenTypeAccess}},
		"garbage actor_token": {"subject_token": {gwToken}, "subject_token_type": {tokenTypeAccess},
			"actor_token": {"not-a-token"}, "actor_token_type": {tokenTypeAccess}},
		"revoked actor_token": {"subject_token": {gwToken}, "subject_token_type": {tokenTypeAccess},
			"actor_token": {tok}, "actor_token_type": {tokenTypeAccess}},
		"garbage ID token": {"subject_token": {"not-a-token"}, "subject_token_type": {tokenTypeID}},
	} {
		st, m := env.tokenExchange("gw", gwSecret, f)
		if st != 400 || m["error"] != errInvalidRequest {
			t.Errorf("%s: %d %v, want 400 invalid_request (RFC 8693 §2.2.2)", name, st, m)
		}
	}
}

// An access-token exchange is bounded by the subject token's scope and by
// the scopes the exchanging client is registered for, as every other grant
// is: orders (registered for read) cannot get write from alice's read write
// token, and by default gets read.
func TestExchangeScopeWithinClientRegistration(t *testing.T) {
	env := exchangeEnv(t)
	user, _ := env.passwordToken("alice@example.com", alicePW) // demo: read write
	if got := jwtClaims(t, user)["scope"]; got != "read write" {
		t.Fatalf("subject token scope %v", got)
	}
	st, m := env.tokenExchange("orders", ordersSecret, url.Values{
		"subject_token": {user}, "subject_token_type": {tokenTypeAccess}, "scope": {"write"}})
	wantError(t, st, m, 400, errInvalidScope)
	st, m = env.tokenExchange("orders", ordersSecret, url.Values{
		"subject_token": {user}, "subject_token_type": {tokenTypeAccess}, "scope": {"read write"}})
	wantError(t, st, m, 400, errInvalidScope)
	// Without a scope: the intersection.
	st, m = env.tokenExchange("orders", ordersSecret, url.Values{
		"subject_token": {user}, "subject_token_type": {tokenTypeAccess}})
	if st != 200 || m["scope"] != "read" {
		t.Fatalf("default exchange: %d %v, want scope read", st, m)
	}
	// Nothing in common: invalid_scope, not a token without scope.
	st, m = env.tokenExchange("orders", ordersSecret, url.Values{
		"subject_token": {env.clientToken("gw", gwSecret, "write")}, "subject_token_type": {tokenTypeAccess}})
	wantError(t, st, m, 400, errInvalidScope)
}

// rpExchangeEnv is the OIDC test server with rp also registered for token
// exchange and for the read and write scopes.
func rpExchangeEnv(t *testing.T, mods ...func(*storage.Client)) *oidcEnv {
	return newOIDCEnv(t, append([]func(*storage.Client){func(c *storage.Client) {
		c.GrantTypes = append(c.GrantTypes, grantTokenExchange)
		c.Scopes = append(c.Scopes, "write")
	}}, mods...)...)
}

// An ID token carries no scope: its exchange yields at most what the user
// consented to for the client (intersected with the client's registered
// scopes), the registered scopes of a first-party client (SkipConsent),
// and nothing without a consent.
func TestExchangeIDTokenScopeWithinConsent(t *testing.T) {
	idExchange := func(e *oidcEnv, idt string, extra ...string) (int, map[string]any) {
		f := url.Values{"subject_token": {idt}, "subject_token_type": {tokenTypeID}}
		for i := 0; i+1 < len(extra); i += 2 {
			f.Set(extra[i], extra[i+1])
		}
		return e.tokenExchange("rp", rpSecret, f)
	}
	t.Run("consented", func(t *testing.T) {
		e := rpExchangeEnv(t)
		tok := e.codeFlow(t, newBrowser(t, e.testEnv)) // scope=openid, consent "allow"
		if tok["scope"] != "openid" {
			t.Fatalf("code flow scope %v", tok["scope"])
		}
		idt := tok["id_token"].(string)
		if st, m := idExchange(e, idt); st != 200 || m["scope"] != "openid" {
			t.Fatalf("exchange of rp's own ID token: %d %v, want scope openid (alice's consent)", st, m)
		}
		st, m := idExchange(e, idt, "scope", "read")
		wantError(t, st, m, 400, errInvalidScope)
		// Consent withdrawn: refused.
		if _, err := RevokeConsents(t.Context(), e.store, e.alice.ID, "rp"); err != nil {
			t.Fatal(err)
		}
		st, m = idExchange(e, idt)
		wantError(t, st, m, 400, errInvalidRequest)
	})
	t.Run("first-party client", func(t *testing.T) {
		e := rpExchangeEnv(t, func(c *storage.Client) { c.SkipConsent = true })
		tok := e.codeFlow(t, newBrowser(t, e.testEnv))
		st, m := idExchange(e, tok["id_token"].(string))
		if st != 200 {
			t.Fatalf("exchange: %d %v", st, m)
		}
		c, err := e.store.GetClient(t.Context(), "rp")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Fields(m["scope"].(string)); !slices.Equal(got, c.Scopes) {
			t.Fatalf("first-party exchange scope %v, want the registered %v", got, c.Scopes)
		}
	})
}

// An ID token is exchanged only while the browser session it was issued in
// (its sid) lives: not once the user's tokens were revoked ("sign out
// everywhere"), nor after sign-out, nor without a sid. A refreshed ID token
// carries the sid of the sign-in and follows the same rule.
func TestExchangeIDTokenNeedsLiveBrowserSession(t *testing.T) {
	idExchange := func(e *oidcEnv, idt string) (int, map[string]any) {
		return e.tokenExchange("rp", rpSecret, url.Values{"subject_token": {idt}, "subject_token_type": {tokenTypeID}})
	}
	t.Run("user's tokens revoked", func(t *testing.T) {
		e := rpExchangeEnv(t)
		tok := e.codeFlow(t, newBrowser(t, e.testEnv))
		if st, m := idExchange(e, tok["id_token"].(string)); st != 200 {
			t.Fatalf("before the revocation: %d %v", st, m)
		}
		if _, err := e.store.RevokeTokens(t.Context(), storage.TokenFilter{Subject: e.alice.ID}); err != nil {
			t.Fatal(err)
		}
		e.as.syncRevocations(t.Context())
		if in := e.introspect(tok["access_token"].(string)); in["active"] != false {
			t.Fatalf("the access token survived the revocation: %v", in)
		}
		st, m := idExchange(e, tok["id_token"].(string))
		wantError(t, st, m, 400, errInvalidRequest)
	})
	t.Run("signed out", func(t *testing.T) {
		e := rpExchangeEnv(t)
		b := newBrowser(t, e.testEnv)
		tok := e.codeFlow(t, b)
		idt := tok["id_token"].(string)
		p := b.get("/end_session?" + url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {rpBye}}.Encode())
		if p.location == nil || p.location.String() != rpBye {
			t.Fatalf("end_session: %d %v", p.status, p.location)
		}
		st, m := idExchange(e, idt)
		wantError(t, st, m, 400, errInvalidRequest)
	})
	t.Run("new sign-in for another client", func(t *testing.T) {
		// Another client's prompt=login signs the same user in again: the
		// OP session goes on, and so does the use of the first ID token.
		const rp2Redirect = "https://rp2.example/cb"
		e := rpExchangeEnv(t)
		addOpenIDClient(t, e, "rp2", rp2Redirect, "")
		b := newBrowser(t, e.testEnv)
		idt := e.codeFlow(t, b)["id_token"].(string)
		p := b.get(authorizeQuery("rp2", rp2Redirect, "state-123", mustChallenge(), "scope", "openid", "prompt", "login"))
		if q := e.callback(t, b.signIn(p, "alice@example.com", alicePW), rp2Redirect); q.Get("code") == "" {
			t.Fatalf("rp2's sign-in: %v", q)
		}
		if st, m := idExchange(e, idt); st != 200 {
			t.Fatalf("after rp2's prompt=login: %d %v", st, m)
		}
		signOut(t, b)
		st, m := idExchange(e, idt)
		wantError(t, st, m, 400, errInvalidRequest)
	})
	t.Run("no sid", func(t *testing.T) {
		e := rpExchangeEnv(t, func(c *storage.Client) { c.SkipConsent = true })
		liveBrowserSession(t, e.testEnv, e.alice.ID)
		idt, err := e.as.strategy.sign(t.Context(), map[string]any{
			"iss": e.issuer, "sub": e.alice.ID, "aud": "rp", "exp": e.clock().Add(time.Hour).Unix()}, "JWT")
		if err != nil {
			t.Fatal(err)
		}
		st, m := idExchange(e, idt)
		wantError(t, st, m, 400, errInvalidRequest)
	})
	t.Run("refreshed ID token", func(t *testing.T) {
		e := rpExchangeEnv(t)
		tok := e.codeFlow(t, newBrowser(t, e.testEnv), "scope", "openid offline_access")
		e.advance(2 * time.Second)
		resp := e.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, "rp", rpSecret)
		ref := decode(t, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("refresh: %d %v", resp.StatusCode, ref)
		}
		idt := ref["id_token"].(string)
		if _, c := e.idToken(t, ref); c["sid"] == nil || c["sid"] == "" {
			t.Fatalf("the refreshed ID token has no sid: %v", c)
		}
		if st, m := idExchange(e, idt); st != 200 {
			t.Fatalf("refreshed ID token while the session lives: %d %v", st, m)
		}
		if _, err := EndBrowserSessions(t.Context(), e.store, e.alice.ID); err != nil {
			t.Fatal(err)
		}
		st, m := idExchange(e, idt)
		wantError(t, st, m, 400, errInvalidRequest)
	})
}

// A pairwise client's ID token names the user by a pseudonym, which cannot
// be reversed to find the browser session it was issued in: it is refused
// with a description that says so (the client exchanges its access token).
func TestExchangeIDTokenOfPairwiseClientIsRefused(t *testing.T) {
	e := rpExchangeEnv(t, func(c *storage.Client) { c.SubjectType = SubjectPairwise })
	tok := e.codeFlow(t, newBrowser(t, e.testEnv))
	if _, claims := e.idToken(t, tok); claims["sub"] == e.alice.ID {
		t.Fatalf("pairwise sub expected, got the user ID")
	}
	st, m := e.tokenExchange("rp", rpSecret, url.Values{
		"subject_token": {tok["id_token"].(string)}, "subject_token_type": {tokenTypeID}})
	wantError(t, st, m, 400, errInvalidRequest)
	if d, _ := m["error_description"].(string); !strings.Contains(d, "pairwise") {
		t.Fatalf("refused for another reason: %v", m)
	}
	// Its access token still exchanges.
	st, m = e.tokenExchange("rp", rpSecret, url.Values{
		"subject_token": {tok["access_token"].(string)}, "subject_token_type": {tokenTypeAccess}})
	if st != 200 {
		t.Fatalf("exchange of the pairwise client's access token: %d %v", st, m)
	}
}

func signTestJWT(t *testing.T, key jose.JSONWebKey, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := sig.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestClientSecretExpiry(t *testing.T) {
	now := time.Now().UTC()
	var offset atomic.Int64
	env := newTestEnv(t, openSQLite(t), func(c *Config) {
		c.Now = func() time.Time { return now.Add(time.Duration(offset.Load())) }
	})
	c := storage.Client{ID: "ttl", SecretHashes: []string{password.HashSecret(gwSecret)}, GrantTypes: []string{"client_credentials"},
		Scopes: []string{"read"}, SecretExpiresAt: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now}
	if err := env.store.CreateClient(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	cc := func() (int, map[string]any) {
		resp := env.post("/token", url.Values{"grant_type": {"client_credentials"}}, "ttl", gwSecret)
		return resp.StatusCode, decode(t, resp)
	}
	if st, m := cc(); st != 200 {
		t.Fatalf("before expiry: %d %v", st, m)
	}
	// After the expiry, also for a secret the instance has cached.
	offset.Store(int64(time.Hour))
	st, m := cc()
	wantError(t, st, m, 401, errInvalidClient)
}
