package authserver

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/keys"
	"github.com/oauthkit/authserver/storage"
)

// logoutReceiver is a back-channel logout endpoint that keeps the logout
// tokens it receives.
type logoutReceiver struct {
	url    string
	tokens chan string
}

func newLogoutReceiver(t *testing.T) *logoutReceiver {
	lr := &logoutReceiver{tokens: make(chan string, 16)}
	lr.url = newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err == nil {
			lr.tokens <- r.PostForm.Get("logout_token")
		}
	}))
	return lr
}

// received waits for the deliveries started so far and returns the "aud
// sid sub" of each logout token received since the last call, sorted; each
// token's signature is checked against the server's JWKS.
func (lr *logoutReceiver) received(t *testing.T, e *oidcEnv) []string {
	t.Helper()
	e.as.WaitBackchannel()
	var out []string
	for {
		select {
		case lt := <-lr.tokens:
			raw, err := e.verifierKeySet(t).VerifySignature(t.Context(), lt)
			if err != nil {
				t.Fatalf("logout token signature: %v", err)
			}
			var c struct {
				Aud []string `json:"aud"`
				SID string   `json:"sid"`
				Sub string   `json:"sub"`
			}
			if err := json.Unmarshal(raw, &c); err != nil || len(c.Aud) != 1 {
				t.Fatalf("logout token claims %s: %v", raw, err)
			}
			out = append(out, c.Aud[0]+" "+c.SID+" "+c.Sub)
		default:
			slices.Sort(out)
			return out
		}
	}
}

// addOpenIDClient registers a first-party OpenID Connect client (no consent
// page) that receives back-channel logout at bcURI.
func addOpenIDClient(t *testing.T, e *oidcEnv, id, redirect, bcURI string) {
	t.Helper()
	c := storage.Client{ID: id, SecretHashes: []string{password.HashSecret(rpSecret)}, GrantTypes: []string{"authorization_code"},
		Scopes: []string{"openid"}, RedirectURIs: []string{redirect}, SkipConsent: true, BackchannelLogoutURI: bcURI,
		CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := e.store.CreateClient(t.Context(), c); err != nil {
		t.Fatal(err)
	}
}

// signOut signs the browser out at /logout.
func signOut(t *testing.T, b *browser) {
	t.Helper()
	p := b.get("/logout")
	action, v := p.form(t)
	if p = b.post(action, v); p.status != http.StatusOK || !strings.Contains(p.body, "signed out") {
		t.Fatalf("sign-out: %d", p.status)
	}
}

// A new sign-in in a browser that has a session (prompt=login, max_age, or
// another user) starts a new session with a new sid. Back-Channel Logout
// 1.0: every client that got a code in a session hears of its end, in a
// logout token naming the sid of the ID token it got (§2.4, §2.6). The same
// user's OP session goes on, so its clients are told at the final sign-out;
// another user's sign-in ends the previous user's session, so its clients
// are told at once.
func TestBackchannelLogoutAcrossReauthentication(t *testing.T) {
	const rp2Redirect = "https://rp2.example/cb"
	sidOf := func(t *testing.T, e *oidcEnv, tok map[string]any) string {
		_, c := e.idToken(t, tok)
		return c["sid"].(string)
	}
	codeIn := func(t *testing.T, e *oidcEnv, b *browser, client, redirect, user, pw string, extra ...string) string {
		t.Helper()
		verifier, challenge := pkcePair("rp")
		p := b.get(authorizeQuery(client, redirect, "state-123", challenge, append([]string{"scope", "openid"}, extra...)...))
		if strings.Contains(p.body, `name="password"`) {
			p = b.signIn(p, user, pw)
		}
		if strings.Contains(p.body, `name="decision"`) {
			p = b.decide(p, "allow")
		}
		q := e.callback(t, p, redirect)
		if q.Get("code") == "" {
			t.Fatalf("%s: no code: %v", client, q)
		}
		if client != "rp" {
			return ""
		}
		status, tok := e.exchangeRP(q.Get("code"), verifier)
		if status != http.StatusOK {
			t.Fatalf("exchange %d %v", status, tok)
		}
		return sidOf(t, e, tok)
	}

	t.Run("SameUserNotifiedAtSignOutWithTheSIDTheyGot", func(t *testing.T) {
		lr := newLogoutReceiver(t)
		e := newOIDCEnvConfig(t, allowPrivateClientURLs, func(c *storage.Client) { c.BackchannelLogoutURI = lr.url + "/rp" })
		addOpenIDClient(t, e, "rp2", rp2Redirect, lr.url+"/rp2")
		t.Cleanup(e.as.WaitBackchannel)
		b := newBrowser(t, e.testEnv)
		sidA := sidOf(t, e, e.codeFlow(t, b))

		// rp2 asks for a fresh sign-in: session B. rp's session lives on.
		p := b.get(authorizeQuery("rp2", rp2Redirect, "state-123", mustChallenge(), "scope", "openid", "prompt", "login"))
		if !strings.Contains(p.body, `name="password"`) {
			t.Fatalf("prompt=login did not ask to sign in (status %d)", p.status)
		}
		if q := e.callback(t, b.signIn(p, "alice@example.com", alicePW), rp2Redirect); q.Get("code") == "" {
			t.Fatalf("rp2: %v", q)
		}
		if got := lr.received(t, e); len(got) != 0 {
			t.Fatalf("a new sign-in of the same user sent logout tokens: %v", got)
		}
		bs, err := e.store.ListTokens(t.Context(), storage.BrowserSession, e.alice.ID)
		if err != nil || len(bs) != 1 {
			t.Fatalf("browser sessions after a new sign-in: %d %v", len(bs), err)
		}
		sidB := bs[0].RequestID
		// rp asks for a fresh sign-in too: session C.
		sidC := codeIn(t, e, b, "rp", rpRedirect, "alice@example.com", alicePW, "prompt", "login")
		if sidC == sidA {
			t.Fatal("same sid after a new sign-in")
		}
		if got := lr.received(t, e); len(got) != 0 {
			t.Fatalf("a new sign-in of the same user sent logout tokens: %v", got)
		}
		bs, err = e.store.ListTokens(t.Context(), storage.BrowserSession, e.alice.ID)
		if err != nil || len(bs) != 1 || bs[0].RequestID != sidC {
			t.Fatalf("browser sessions after two new sign-ins: %d %v", len(bs), err)
		}

		// Each client is told of each session it got a code in, by the sid
		// it got: rp of A (carried over twice) and C, rp2 of B.
		signOut(t, b)
		want := []string{"rp " + sidA + " " + e.alice.ID, "rp " + sidC + " " + e.alice.ID, "rp2 " + sidB + " " + e.alice.ID}
		slices.Sort(want)
		if got := lr.received(t, e); !slices.Equal(got, want) {
			t.Fatalf("logout tokens at sign-out: %v, want %v", got, want)
		}
		if ts, err := e.store.ListTokens(t.Context(), logoutTargetKind, e.alice.ID); err != nil || len(ts) != 0 {
			t.Fatalf("logout targets left after sign-out: %d %v", len(ts), err)
		}
	})

	t.Run("AnotherUserEndsThePreviousSession", func(t *testing.T) {
		lr := newLogoutReceiver(t)
		e := newOIDCEnvConfig(t, allowPrivateClientURLs, func(c *storage.Client) { c.BackchannelLogoutURI = lr.url + "/rp" })
		t.Cleanup(e.as.WaitBackchannel)
		b := newBrowser(t, e.testEnv)
		sidA := sidOf(t, e, e.codeFlow(t, b))

		// Bob signs in in the same browser: alice's session has ended.
		p := b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "prompt", "login"))
		start := time.Now()
		p = b.signIn(p, "bob@example.com", bobPW)
		if took := time.Since(start); took > time.Second {
			t.Fatalf("the sign-in waited %v for the logout tokens", took)
		}
		if got, want := lr.received(t, e), []string{"rp " + sidA + " " + e.alice.ID}; !slices.Equal(got, want) {
			t.Fatalf("logout tokens when bob replaced alice's session: %v, want %v", got, want)
		}
		if strings.Contains(p.body, `name="decision"`) {
			p = b.decide(p, "allow")
		}
		if q := e.callback(t, p, rpRedirect); q.Get("code") == "" {
			t.Fatalf("bob: %v", q)
		}
		bs, err := e.store.ListTokens(t.Context(), storage.BrowserSession, e.bob.ID)
		if err != nil || len(bs) != 1 {
			t.Fatalf("bob's sessions: %d %v", len(bs), err)
		}
		signOut(t, b)
		if got, want := lr.received(t, e), []string{"rp " + bs[0].RequestID + " " + e.bob.ID}; !slices.Equal(got, want) {
			t.Fatalf("logout tokens at bob's sign-out: %v, want %v", got, want)
		}
	})
}

// withKeyClock rebuilds e's server on a key manager that follows e's clock,
// so that a test can retire and delete signing keys.
func withKeyClock(t *testing.T, e *oidcEnv) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	km, err := keys.New(t.Context(), e.store, keys.Config{Algorithm: "ES256", ExtraAlgorithms: []string{"RS256"}, Secret: testSecret,
		TokenLifetime: time.Hour, Now: e.clock, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	as, err := New(Config{Issuer: e.issuer, Secret: testSecret, PasswordParams: password.TestParams, Logger: quiet, Now: e.clock}, e.store, km)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = as.Close() })
	e.as, e.km = as, km
	e.srv.Config.Handler = as.Handler()
}

// wantSignedIn checks whether the browser still has a session.
func wantSignedIn(t *testing.T, e *oidcEnv, b *browser, want bool) {
	t.Helper()
	q := e.callback(t, b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "prompt", "none")), rpRedirect)
	if got := q.Get("code") != ""; got != want {
		t.Fatalf("signed in: %v, want %v (%v)", got, want, q)
	}
}

// An id_token_hint whose signing key was retired and then deleted after a
// rotation (a relying party keeps its ID token for the whole session) is
// treated as absent at the end-session endpoint: the user is asked, and a
// registered post_logout_redirect_uri is honoured when client_id names the
// client, as without a hint. At /authorize the user must sign in again
// (login_required with prompt=none). A hint from another issuer, or with a bad
// signature under a published key, stays an error (TestOIDCHostile).
func TestEndSessionHintWithDeletedKey(t *testing.T) {
	setup := func(t *testing.T) (*oidcEnv, *browser, string) {
		e := newOIDCEnv(t)
		withKeyClock(t, e)
		b := newBrowser(t, e.testEnv)
		hint := e.codeFlow(t, b)["id_token"].(string)
		// The scheduled rotation, then two hours: the ID token's key is
		// deleted, the browser session lives on.
		if err := e.km.Rotate(t.Context(), true); err != nil {
			t.Fatal(err)
		}
		e.advance(2 * time.Hour)
		if err := e.km.Step(t.Context()); err != nil {
			t.Fatal(err)
		}
		jws, err := jose.ParseSignedCompact(hint, signatureAlgorithms)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := e.km.PublicKey(jws.Signatures[0].Protected.KeyID); ok {
			t.Fatal("the ID token's key is still published")
		}
		return e, b, hint
	}

	t.Run("WithClientIDRedirectsAfterConfirmation", func(t *testing.T) {
		e, b, hint := setup(t)
		p := b.get("/end_session?" + url.Values{"id_token_hint": {hint}, "client_id": {"rp"}, "post_logout_redirect_uri": {rpBye}, "state": {"s1"}}.Encode())
		if p.status != http.StatusOK || p.location != nil || !strings.Contains(p.body, "Sign out") {
			t.Fatalf("no confirmation page: %d %v", p.status, p.location)
		}
		wantSignedIn(t, e, b, true)
		action, v := p.form(t)
		p = b.post(action, v)
		if p.location == nil || p.location.String() != rpBye+"?state=s1" {
			t.Fatalf("after confirmation: %d %v", p.status, p.location)
		}
		wantSignedIn(t, e, b, false)
	})
	t.Run("WithoutClientIDSignsOutAfterConfirmation", func(t *testing.T) {
		// The hint's audience is unverified, so the redirect URI cannot be
		// checked: no redirection, but the user can sign out.
		e, b, hint := setup(t)
		p := b.get("/end_session?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {rpBye}, "state": {"s1"}}.Encode())
		if p.status != http.StatusOK || p.location != nil || !strings.Contains(p.body, "Sign out") {
			t.Fatalf("no confirmation page: %d %v", p.status, p.location)
		}
		action, v := p.form(t)
		p = b.post(action, v)
		if p.status != http.StatusOK || p.location != nil || !strings.Contains(p.body, "signed out") {
			t.Fatalf("after confirmation: %d %v", p.status, p.location)
		}
		wantSignedIn(t, e, b, false)
	})
	t.Run("NotSignedIn", func(t *testing.T) {
		e, _, hint := setup(t)
		p := newBrowser(t, e.testEnv).get("/end_session?" + url.Values{"id_token_hint": {hint}, "client_id": {"rp"}, "post_logout_redirect_uri": {rpBye}}.Encode())
		if p.location == nil || p.location.String() != rpBye {
			t.Fatalf("no session: %d %v", p.status, p.location)
		}
	})
	t.Run("ForgedUnknownKeyOnlyAsks", func(t *testing.T) {
		// Anybody can make a token naming an unknown key: it never signs
		// out without asking.
		e, b, hint := setup(t)
		parts := strings.Split(hint, ".")
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"made-up","typ":"JWT"}`))
		p := b.get("/end_session?" + url.Values{"id_token_hint": {h + "." + parts[1] + "." + parts[2]}, "client_id": {"rp"}, "post_logout_redirect_uri": {rpBye}}.Encode())
		if p.status != http.StatusOK || p.location != nil || !strings.Contains(p.body, "Sign out") {
			t.Fatalf("forged kid: %d %v", p.status, p.location)
		}
		wantSignedIn(t, e, b, true)
	})
	t.Run("AuthorizeMakesTheUserSignInAgain", func(t *testing.T) {
		// At /authorize whom the hint names cannot be checked: prompt=none
		// gets login_required (which a relying party answers with an
		// interactive request), and an interactive request makes the user
		// sign in again instead of issuing a code to whoever is signed in.
		e, b, hint := setup(t)
		p, _ := e.authorize(t, b, "prompt", "none", "id_token_hint", hint)
		if q := e.callback(t, p, rpRedirect); q.Get("error") != "login_required" || q.Get("state") != "state-123" || q.Get("iss") != e.issuer {
			t.Fatalf("prompt=none with the hint: %v", q)
		}
		// (Signing in here would move this server's clock past fosite's,
		// which refuses an auth_time in its future: the page is the point.)
		_, challenge := pkcePair("rp")
		p = b.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid", "id_token_hint", hint))
		if p.location != nil || !strings.Contains(p.body, `name="password"`) {
			t.Fatalf("signed in, with the hint: no sign-in page (%d %v)", p.status, p.location)
		}
		wantSignedIn(t, e, b, true) // the session is still there: only this request asks
	})
	t.Run("BadSignatureUnderPublishedKeyIsAnError", func(t *testing.T) {
		e, b, _ := setup(t)
		parts := strings.Split(e.codeFlow(t, b)["id_token"].(string), ".")
		sig := []byte(parts[2])
		sig[5] = map[bool]byte{true: 'B', false: 'A'}[sig[5] == 'A']
		p := b.get("/end_session?" + url.Values{"id_token_hint": {parts[0] + "." + parts[1] + "." + string(sig)}, "client_id": {"rp"}, "post_logout_redirect_uri": {rpBye}}.Encode())
		wantErrorPage(t, p)
		wantSignedIn(t, e, b, true)
	})
}

// RP-Initiated Logout 1.0 §2: the OP signs out without asking only when the
// id_token_hint belongs to the current OP session with the relying party.
// An ID token of an earlier session of the same user that ended (signed
// out since) carries another sid: the user is asked. A new sign-in of the
// same user over a live session carries the session on (priorSIDs).
func TestEndSessionHintFromEarlierSessionAsks(t *testing.T) {
	endSession := func(b *browser, hint string) *page {
		return b.get("/end_session?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {rpBye}}.Encode())
	}
	wantAsked := func(t *testing.T, e *oidcEnv, b *browser, p *page) {
		t.Helper()
		if p.location != nil || p.status != http.StatusOK || !strings.Contains(p.body, "Sign out") {
			t.Fatalf("an ID token of another session signed out without asking: %d %v", p.status, p.location)
		}
		wantSignedIn(t, e, b, true)
	}
	t.Run("AfterSignOutAndSignIn", func(t *testing.T) {
		e := newOIDCEnv(t)
		b := newBrowser(t, e.testEnv)
		old := e.codeFlow(t, b)["id_token"].(string)
		signOut(t, b)
		e.advance(2 * time.Second)
		cur := e.codeFlow(t, b)["id_token"].(string)
		wantAsked(t, e, b, endSession(b, old))
		// The current session's ID token still signs out at once.
		if p := endSession(b, cur); p.location == nil || p.location.String() != rpBye {
			t.Fatalf("the current session's ID token: %d %v", p.status, p.location)
		}
		wantSignedIn(t, e, b, false)
	})
	t.Run("AfterNewSignInTheSessionGoesOn", func(t *testing.T) {
		// A new sign-in of the same user (prompt=login, max_age) carries
		// the OP session on: an ID token issued before it still belongs
		// to it, so it signs out at once.
		e := newOIDCEnv(t)
		b := newBrowser(t, e.testEnv)
		old := e.codeFlow(t, b)["id_token"].(string)
		e.codeFlow(t, b, "prompt", "login")
		e.codeFlow(t, b, "prompt", "login")
		if p := endSession(b, old); p.location == nil || p.location.String() != rpBye {
			t.Fatalf("an ID token of the session carried on: %d %v", p.status, p.location)
		}
		wantSignedIn(t, e, b, false)
	})
}

// An administrator ending a session (as the admin API and the console do)
// notifies its clients as a sign-out does, and the browser is signed out;
// ending all of a user's sessions notifies each once.
func TestBackchannelLogoutWhenAdministratorEndsSessions(t *testing.T) {
	got := make(chan string, 4)
	recv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err == nil {
			got <- r.PostForm.Get("logout_token")
		}
	}))
	e := newOIDCEnvConfig(t, allowPrivateClientURLs, func(c *storage.Client) { c.BackchannelLogoutURI = recv + "/backchannel" })
	t.Cleanup(e.as.WaitBackchannel)
	receive := func() string {
		t.Helper()
		select {
		case lt := <-got:
			return lt
		case <-time.After(2 * time.Second):
			t.Fatal("no logout token")
			return ""
		}
	}
	b := newBrowser(t, e.testEnv)
	_, claims := e.idToken(t, e.codeFlow(t, b))
	if err := e.as.EndBrowserSession(t.Context(), e.alice.ID, "no-such-session"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an unknown session: %v", err)
	}
	if err := e.as.EndBrowserSession(t.Context(), "u-nobody", claims["sid"].(string)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the session under another user: %v", err)
	}
	if err := e.as.EndBrowserSession(t.Context(), e.alice.ID, claims["sid"].(string)); err != nil {
		t.Fatal(err)
	}
	e.checkLogoutToken(t, receive(), claims["sid"], "rp")
	p, _ := e.authorize(t, b, "prompt", "none")
	if q := e.callback(t, p, rpRedirect); q.Get("error") != "login_required" {
		t.Fatalf("prompt=none after the session ended: %v", q)
	}
	if err := e.as.EndBrowserSession(t.Context(), e.alice.ID, claims["sid"].(string)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the ended session again: %v", err)
	}

	// Two browsers, two sessions: each client session is told once.
	b2 := newBrowser(t, e.testEnv)
	_, c1 := e.idToken(t, e.codeFlow(t, b))
	_, c2 := e.idToken(t, e.codeFlow(t, b2))
	if n, err := e.as.EndBrowserSessions(t.Context(), e.alice.ID); n != 2 || err != nil {
		t.Fatalf("EndBrowserSessions: %d %v", n, err)
	}
	sids := map[any]bool{}
	for range 2 {
		lt := receive()
		sid := jwtClaims(t, lt)["sid"]
		if sid != c1["sid"] && sid != c2["sid"] {
			t.Fatalf("a logout token for sid %v, want %v or %v", sid, c1["sid"], c2["sid"])
		}
		e.checkLogoutToken(t, lt, sid, "rp")
		sids[sid] = true
	}
	if len(sids) != 2 {
		t.Fatalf("logout tokens named %v, want %v and %v", sids, c1["sid"], c2["sid"])
	}
	if n, err := e.as.EndBrowserSessions(t.Context(), e.alice.ID); n != 0 || err != nil {
		t.Fatalf("EndBrowserSessions again: %d %v", n, err)
	}
	select {
	case lt := <-got:
		t.Fatalf("a logout token after the sessions had ended: %v", jwtClaims(t, lt))
	case <-time.After(200 * time.Millisecond):
	}
}

// An id_token_hint naming a key this server does not publish (deleted after
// a rotation, or made up: TestEndSessionHintWithDeletedKey) cannot be
// checked at /authorize: prompt=none gets login_required; otherwise the
// user signs in again, and the code is for whoever signs in. The pushed
// authorization request endpoint, which knows no session, accepts it and
// leaves the decision to /authorize.
func TestAuthorizeHintWithUnknownKey(t *testing.T) {
	e := newOIDCEnv(t)
	b := newBrowser(t, e.testEnv)
	parts := strings.Split(e.codeFlow(t, b)["id_token"].(string), ".")
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"made-up","typ":"JWT"}`))
	hint := hdr + "." + parts[1] + "." + parts[2]

	p, _ := e.authorize(t, b, "prompt", "none", "id_token_hint", hint)
	if q := e.callback(t, p, rpRedirect); q.Get("error") != "login_required" || q.Get("state") != "state-123" || q.Get("iss") != e.issuer {
		t.Fatalf("prompt=none with the hint: %v", q)
	}

	verifier, challenge := pkcePair("rp")
	p = b.get(authorizeQuery("rp", rpRedirect, "state-123", challenge, "scope", "openid", "nonce", "n-1", "id_token_hint", hint))
	if p.location != nil || !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("signed in, with the hint: no sign-in page (%d %v)", p.status, p.location)
	}
	tok := e.signInAndExchange(t, b, p, "bob@example.com", bobPW, verifier)
	if idt, _ := e.idToken(t, tok); idt.Subject != e.bob.ID {
		t.Fatalf("the ID token is for %q, not for bob (%s) who signed in", idt.Subject, e.bob.ID)
	}

	v := url.Values{"response_type": {"code"}, "client_id": {"rp"}, "redirect_uri": {rpRedirect}, "scope": {"openid"},
		"state": {"par-state"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
		"prompt": {"none"}, "id_token_hint": {hint}}
	resp := e.post("/par", v, "rp", rpSecret)
	m := decode(t, resp)
	ru, _ := m["request_uri"].(string)
	if resp.StatusCode != http.StatusCreated || ru == "" {
		t.Fatalf("push: %d %v", resp.StatusCode, m)
	}
	p = b.get("/authorize?" + url.Values{"client_id": {"rp"}, "request_uri": {ru}}.Encode())
	if q := e.callback(t, p, rpRedirect); q.Get("error") != "login_required" || q.Get("state") != "par-state" {
		t.Fatalf("the pushed request at /authorize: %v", q)
	}
}
