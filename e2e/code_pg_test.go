package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauthkit/authserver/internal/testbin"
)

// The authorization code flow on three instances sharing one PostgreSQL
// database (issue 14): a code is single-use across instances, and browser
// sessions are shared by every instance.

const (
	webSecret   = "e2e-web-secret-0123456789-0123456789-xyz"
	webRedirect = "https://app.example/cb"
	alicePW     = "alice-password-0123"
	bobPW       = "bob-password-0123"
	// sessionCookie is the session cookie's name over plain http (the
	// issuer of testbin is http, so there is no __Host- prefix).
	sessionCookie = "authserver-session"
)

// codeCluster is three instances on one fresh PostgreSQL schema, with the
// clients of addClients, a first-party code-flow client "web" (no consent
// page) and the users alice and bob.
type codeCluster struct {
	dsn  string
	inst [3]*testbin.Server
}

func startCodeCluster(t *testing.T) *codeCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dsn := postgresDSN(t) // skips when AUTHSERVER_TEST_POSTGRES_DSN is unset
	testbin.Run(t, "", "migrate", "--db", dsn)
	addClients(t, dsn)
	testbin.Run(t, webSecret+"\n", "clients", "add", "--db", dsn, "--id", "web", "--name", "Web App", "--secret-stdin",
		"--grant", "authorization_code", "--grant", "refresh_token", "--redirect-uri", webRedirect, "--scope", "read", "--skip-consent")
	testbin.Run(t, alicePW+"\n", "users", "add", "--db", dsn, "--email", "alice@example.com", "--name", "Alice", "--password-stdin")
	testbin.Run(t, bobPW+"\n", "users", "add", "--db", dsn, "--email", "bob@example.com", "--name", "Bob", "--password-stdin")
	c := &codeCluster{dsn: dsn}
	secret := "code-flow-secret-0123456789-0123456789-abc"
	var wg sync.WaitGroup
	for i := range c.inst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.inst[i] = testbin.Start(t, nil, "--db", dsn, "--secret", secret, "--key-algorithm", "ES256")
		}()
	}
	wg.Wait()
	return c
}

// pkce returns a fresh verifier and its S256 challenge (RFC 7636 §4.2).
func pkce(t testing.TB) (verifier, challenge string) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	verifier = base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(h[:])
}

// authorizeURL is web's authorization request at the instance base.
func authorizeURL(base, state, challenge string) string {
	return base + "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {webRedirect},
		"scope": {"read"}, "state": {state}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}.Encode()
}

// codeFrom checks that p is web's successful authorization response for
// state and returns the code.
func codeFrom(t testing.TB, p *page, state string) string {
	t.Helper()
	if p.location == nil || !strings.HasPrefix(p.location.String(), webRedirect+"?") {
		t.Fatalf("no redirect to %s (status %d, at %s): %.500s", webRedirect, p.status, p.url, p.body)
	}
	q := p.location.Query()
	if q.Get("error") != "" || q.Get("code") == "" {
		t.Fatalf("authorization response %v", q)
	}
	if q.Get("state") != state || q.Get("iss") != testbin.Issuer {
		t.Fatalf("state %q, iss %q; want %q, %q", q.Get("state"), q.Get("iss"), state, testbin.Issuer)
	}
	return q.Get("code")
}

// exchange redeems a code of web at the instance base.
func exchange(t testing.TB, base, code, verifier string) (int, map[string]any) {
	t.Helper()
	return testbin.PostForm(t, base+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {webRedirect}, "code_verifier": {verifier}}, "web", webSecret)
}

// signIn signs b in at the instance base through the sign-in page, with no
// pending authorization request.
func signIn(t testing.TB, b *browser, base, user, pw string) {
	t.Helper()
	p := b.get(base + "/login")
	if !p.hasInput("password") {
		t.Fatalf("no sign-in form at %s (status %d): %.500s", base, p.status, p.body)
	}
	p = b.submit(p, "", url.Values{"username": {user}, "password": {pw}})
	if p.status != http.StatusOK || !strings.Contains(p.body, "Signed in") {
		t.Fatalf("sign-in of %s at %s: status %d: %.500s", user, base, p.status, p.body)
	}
}

// authorizeWithCookie sends web's authorization request to base with only
// the session cookie value (as kept by someone who copied it), and returns
// the status and the Location of the answer, which is not followed.
func authorizeWithCookie(t testing.TB, base, cookie string) (int, *url.URL) {
	t.Helper()
	_, challenge := pkce(t)
	req, err := http.NewRequest(http.MethodGet, authorizeURL(base, "kept-cookie", challenge), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
	c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, loc
}

// redact returns u without the values of its code parameter, for messages.
func redact(u *url.URL) string {
	q := u.Query()
	if q.Has("code") {
		q.Set("code", "REDACTED")
	}
	r := *u
	r.RawQuery = q.Encode()
	return r.String()
}

// wantSignInRedirect checks that a kept session cookie no longer signs in at
// base: /authorize sends the browser to the sign-in page.
func wantSignInRedirect(t testing.TB, base, cookie, why string) {
	t.Helper()
	status, loc := authorizeWithCookie(t, base, cookie)
	if status != http.StatusSeeOther || loc.Path != "/login" || loc.Query().Get("auth") == "" {
		t.Fatalf("%s: /authorize at %s answered %d to %s, want 303 to the sign-in page", why, base, status, redact(loc))
	}
}

// wantCode checks that a session cookie still signs in at base: /authorize
// answers with a code straight away.
func wantCode(t testing.TB, base, cookie, why string) {
	t.Helper()
	status, loc := authorizeWithCookie(t, base, cookie)
	if status != http.StatusSeeOther || !strings.HasPrefix(loc.String(), webRedirect+"?") || loc.Query().Get("code") == "" {
		t.Fatalf("%s: /authorize at %s answered %d to %s, want 303 to %s with a code", why, base, status, redact(loc), webRedirect)
	}
}

// 50 concurrent exchanges of one code, spread over three instances and
// released together, give exactly one 200; every other is invalid_grant,
// and the reuse revokes the winner's tokens on every instance (RFC 6749
// §4.1.2).
func TestCodeRaceOverThreeInstancesPostgres(t *testing.T) {
	c := startCodeCluster(t)
	a, b, cc := c.inst[0], c.inst[1], c.inst[2]

	// The code, through the real pages, and across instances: the request
	// starts on A, the sign-in page comes from A and is posted to B, which
	// issues the code.
	br := newBrowser(t)
	verifier, challenge := pkce(t)
	p := br.get(authorizeURL(a.URL, "race-state", challenge))
	if !p.redirected || p.url.Path != "/login" || !p.hasInput("password") {
		t.Fatalf("no sign-in page from /authorize at A (status %d, at %s): %.500s", p.status, p.url, p.body)
	}
	p = br.submit(p, b.URL, url.Values{"username": {"alice@example.com"}, "password": {alicePW}})
	code := codeFrom(t, p, "race-state")

	// A control: a code exchanged once gives tokens that every instance sees
	// as active, so "inactive" below is the revocation, not a blind spot.
	ctlVerifier, ctlChallenge := pkce(t)
	ctlCode := codeFrom(t, br.get(authorizeURL(cc.URL, "control", ctlChallenge)), "control")
	status, m := exchange(t, cc.URL, ctlCode, ctlVerifier)
	if status != http.StatusOK {
		t.Fatalf("control exchange: %d %v", status, m)
	}
	for _, s := range c.inst {
		for _, kind := range []string{"access_token", "refresh_token"} {
			if got := introspect(t, s.URL, m[kind].(string)); got["active"] != true {
				t.Fatalf("control: the %s is not active at %s: %v", kind, s.URL, got)
			}
		}
	}

	// Open the connections first, so that the barrier releases requests and
	// not TCP handshakes.
	warmUp(t, c.inst[:], 50/3+1)

	const n = 50
	type result struct {
		status int
		body   map[string]any
	}
	results := make([]result, n)
	together(n, func(i int) {
		st, body := exchange(t, c.inst[i%3].URL, code, verifier)
		results[i] = result{st, body}
	})

	// Every second use is audited (the audit log goes to the instances'
	// stderr); the reason tells the losers that read the code before the
	// winner committed, and lost the compare-and-swap itself, from those
	// that found it already used.
	reasons := waitReuseAudits(t, c.inst[:], n-1)
	t.Logf("code_reuse_detected by reason: %v", reasons)
	var winner map[string]any
	other := map[string]int{}
	for i, r := range results {
		switch {
		case r.status == http.StatusOK && winner == nil:
			winner = r.body
		case r.status == http.StatusOK:
			t.Errorf("exchange %d at instance %d also succeeded", i, i%3)
		case r.status == http.StatusBadRequest && r.body["error"] == "invalid_grant":
		default:
			other[strings.TrimSpace(http.StatusText(r.status)+" "+asString(r.body["error"]))]++
		}
	}
	if len(other) > 0 {
		t.Errorf("answers other than 200 and 400 invalid_grant: %v", other)
	}
	if winner == nil {
		t.Fatalf("none of %d concurrent exchanges succeeded", n)
	}
	if t.Failed() {
		t.FailNow()
	}
	at, rt := asString(winner["access_token"]), asString(winner["refresh_token"])
	if at == "" || rt == "" {
		t.Fatalf("the winner got no access and refresh tokens: %v", winner)
	}
	for _, s := range c.inst {
		for kind, tok := range map[string]string{"access": at, "refresh": rt} {
			if got := introspect(t, s.URL, tok); got["active"] != false {
				t.Errorf("the winner's %s token is still active at %s after the code was reused: %v", kind, s.URL, got)
			}
		}
	}
	// The control grant is another code: its tokens are not touched.
	if got := introspect(t, a.URL, m["access_token"].(string)); got["active"] != true {
		t.Errorf("the reuse of one code revoked the tokens of another: %v", got)
	}
}

// waitReuseAudits waits until the instances have written want
// code_reuse_detected audit events and returns their count by reason.
func waitReuseAudits(t *testing.T, inst []*testbin.Server, want int) map[string]int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		reasons, n := map[string]int{}, 0
		for _, s := range inst {
			for _, line := range strings.Split(s.Logs.String(), "\n") {
				var ev struct{ Event, Reason string }
				if json.Unmarshal([]byte(line), &ev) == nil && ev.Event == "code_reuse_detected" {
					reasons[ev.Reason]++
					n++
				}
			}
		}
		if n == want {
			return reasons
		}
		if n > want || time.Now().After(deadline) {
			t.Errorf("%d code_reuse_detected audit events (%v), want %d", n, reasons, want)
			return reasons
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// together runs f(0) … f(n-1) concurrently behind a barrier: no call starts
// before every goroutine is ready, so the requests race each other rather
// than their goroutines' start-up. It returns when every call is done.
func together(n int, f func(i int)) {
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			f(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
}

// warmUp leaves perInstance idle keep-alive connections of testbin.Client to
// each instance.
func warmUp(t *testing.T, inst []*testbin.Server, perInstance int) {
	t.Helper()
	var wg sync.WaitGroup
	for _, s := range inst {
		for range perInstance {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := testbin.Client.Get(s.URL + "/healthz")
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}()
		}
	}
	wg.Wait()
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}

// A browser session lives in the shared database: signed in on one
// instance, the browser gets codes from the others with no sign-in page;
// signing out on one instance, or `authserver users disable`, ends it on
// every instance, even for someone who kept a copy of the cookie.
func TestSessionsSharedByInstancesPostgres(t *testing.T) {
	c := startCodeCluster(t)
	a, b, cc := c.inst[0], c.inst[1], c.inst[2]

	alice := newBrowser(t)
	signIn(t, alice, a.URL, "alice@example.com", alicePW)
	aliceCookie := alice.cookie(a.URL, sessionCookie)
	if aliceCookie == "" {
		t.Fatal("no session cookie after sign-in")
	}

	t.Run("SignedInOnAGetsCodesFromBAndC", func(t *testing.T) {
		for _, s := range []*testbin.Server{b, cc} {
			verifier, challenge := pkce(t)
			p := alice.get(authorizeURL(s.URL, "shared", challenge))
			if p.redirected {
				t.Fatalf("/authorize at %s went through %s instead of answering with a code", s.URL, p.url)
			}
			code := codeFrom(t, p, "shared")
			// The code is good, at yet another instance.
			status, m := exchange(t, a.URL, code, verifier)
			if status != http.StatusOK {
				t.Fatalf("exchange of a code from %s at A: %d %v", s.URL, status, m)
			}
			if got := introspect(t, cc.URL, m["access_token"].(string)); got["active"] != true || got["username"] != "alice@example.com" {
				t.Fatalf("introspection of alice's token: %v", got)
			}
		}
	})

	t.Run("SignOutOnBEndsTheSessionOnAAndC", func(t *testing.T) {
		p := alice.get(b.URL + "/logout")
		p = alice.submit(p, "", nil)
		if p.status != http.StatusOK || !strings.Contains(p.body, "Signed out") {
			t.Fatalf("sign-out at B: %d: %.500s", p.status, p.body)
		}
		if alice.cookie(a.URL, sessionCookie) != "" {
			t.Error("the browser kept its session cookie after signing out")
		}
		for _, s := range c.inst {
			wantSignInRedirect(t, s.URL, aliceCookie, "after sign-out at B, alice's old cookie")
		}
	})

	t.Run("UsersDisableEndsTheSessionEverywhere", func(t *testing.T) {
		bob := newBrowser(t)
		signIn(t, bob, cc.URL, "bob@example.com", bobPW)
		bobCookie := bob.cookie(cc.URL, sessionCookie)
		carol := newBrowser(t) // alice again, in another browser: not disabled
		signIn(t, carol, b.URL, "alice@example.com", alicePW)
		aliceCookie := carol.cookie(b.URL, sessionCookie)
		for _, s := range c.inst {
			wantCode(t, s.URL, bobCookie, "before users disable, bob's session")
		}
		// A code bob got before he was disabled.
		verifier, challenge := pkce(t)
		code := codeFrom(t, bob.get(authorizeURL(a.URL, "before-disable", challenge)), "before-disable")

		testbin.Run(t, "", "users", "disable", "--db", c.dsn, "bob@example.com")

		for _, s := range c.inst {
			wantSignInRedirect(t, s.URL, bobCookie, "after users disable, bob's session")
			wantCode(t, s.URL, aliceCookie, "after bob was disabled, alice's session")
		}
		if status, m := exchange(t, b.URL, code, verifier); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("exchange of a code issued before users disable: %d %v, want 400 invalid_grant", status, m)
		}
		p := bob.get(a.URL + "/login")
		p = bob.submit(p, "", url.Values{"username": {"bob@example.com"}, "password": {bobPW}})
		if p.status != http.StatusUnauthorized || strings.Contains(p.body, "Signed in") {
			t.Errorf("sign-in of a disabled user: status %d: %.300s", p.status, p.body)
		}
	})
}
