package adminapi_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/authserver/adminapi"
	"github.com/oauthkit/authserver/authserver"
	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/storage"
)

const bobPassword = "tangerine submarine 42"

// consoleEnv adds the console to an env: its own admin server, the
// console's client registered, and bob (role user) with a refresh token.
type consoleEnv struct {
	*env
	ui      *httptest.Server
	metrics *adminapi.MetricsRing
}

func newConsoleEnv(t testing.TB, opts ...func(*authserver.Config)) *consoleEnv {
	e := newEnv(t, opts...)
	ui := httptest.NewUnstartedServer(nil)
	base := "http://" + ui.Listener.Addr().String()
	now := time.Now().UTC()
	if err := e.store.CreateClient(t.Context(), adminapi.ConsoleClient("admin-console", base+"/admin/ui/callback", now)); err != nil {
		t.Fatal(err)
	}
	h, _ := password.Hash(bobPassword, password.TestParams)
	if err := e.store.CreateUser(t.Context(), storage.User{ID: "u-bob", Email: "bob@example.com", Roles: []string{"user"}, PasswordHash: h, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	api, err := adminapi.New(t.Context(), adminapi.Config{Store: e.store, Keys: e.km, Server: e.srv, Audit: e.log, Ring: e.ring, PasswordParams: password.TestParams})
	if err != nil {
		t.Fatal(err)
	}
	m := adminapi.NewMetricsRing(e.srv.Gatherer())
	m.Sample(time.Now())
	api.WithConsole(adminapi.ConsoleConfig{Issuer: e.pub.URL, ClientID: "admin-console", RedirectURI: base + "/admin/ui/callback",
		TokenEndpoint: e.srv.Handler(), Metrics: m})
	ui.Config.Handler = api.Handler()
	ui.Start()
	t.Cleanup(ui.Close)
	return &consoleEnv{env: e, ui: ui, metrics: m}
}

var (
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
	actionRE = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
)

// browser is a client with a cookie jar that follows redirects.
func browser(t testing.TB) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

func fetch(t testing.TB, c *http.Client, method, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = c.PostForm(u, form)
	} else {
		resp, err = c.Get(u)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// signIn goes to the console, signs in on the public sign-in page and
// returns the page the console then shows.
func (ce *consoleEnv) signIn(t testing.TB, c *http.Client, email, pw string) (*http.Response, string) {
	t.Helper()
	resp, page := fetch(t, c, http.MethodGet, ce.ui.URL+"/admin/ui/", nil)
	if !strings.HasPrefix(resp.Request.URL.String(), ce.pub.URL) {
		t.Fatalf("not sent to the public sign-in page: %s (%d)", resp.Request.URL, resp.StatusCode)
	}
	form := url.Values{"username": {email}, "password": {pw}}
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		form.Set(m[1], htmlUnescape(m[2]))
	}
	action := resp.Request.URL.String()
	if m := actionRE.FindStringSubmatch(page); m != nil {
		ref, _ := url.Parse(htmlUnescape(m[1]))
		action = resp.Request.URL.ResolveReference(ref).String()
	}
	return fetch(t, c, http.MethodPost, action, form)
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in %s", page)
	}
	return m[1]
}

func TestConsole(t *testing.T) {
	ce := newConsoleEnv(t)
	// Bob has a refresh token before anything happens.
	st, bobRefresh := ce.passwordGrant("bob@example.com", bobPassword)
	if st != http.StatusOK || bobRefresh == "" {
		t.Fatalf("bob's sign-in: %d", st)
	}
	// A failed sign-in, for the dashboard.
	ce.passwordGrant("bob@example.com", "wrong password here")
	ce.metrics.Sample(time.Now())

	t.Run("BobIsRefused", func(t *testing.T) {
		resp, _ := ce.signIn(t, browser(t), "bob@example.com", bobPassword)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("bob: %d at %s", resp.StatusCode, resp.Request.URL)
		}
	})

	alice := browser(t)
	resp, page := ce.signIn(t, alice, "alice@example.com", alicePW)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "<h1>Dashboard</h1>") {
		t.Fatalf("alice: %d %s", resp.StatusCode, page)
	}
	t.Run("DashboardChartsRender", func(t *testing.T) {
		for _, title := range []string{"Tokens issued", "Failed sign-ins: 1 in the last hour", "Throttled requests", "Refresh token reuse"} {
			if !strings.Contains(page, title) {
				t.Fatalf("no %q on the dashboard", title)
			}
		}
		if strings.Count(page, "<svg") != 4 || !strings.Contains(page, "<rect") {
			t.Fatal("charts are not drawn")
		}
	})
	t.Run("NotFramable", func(t *testing.T) {
		if resp.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Fatalf("headers %v", resp.Header)
		}
	})
	csrf := csrfOf(t, page)

	t.Run("CreateClient", func(t *testing.T) {
		_, page := fetch(t, alice, http.MethodPost, ce.ui.URL+"/admin/ui/clients", url.Values{"csrf": {csrf}, "id": {"reports"}, "grants": {"client_credentials"}, "scopes": {"read"}})
		m := regexp.MustCompile(`shown once: <code>([^<]+)</code>`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no secret shown: %s", page)
		}
		ce.clientToken("reports", m[1], "read")
		_, again := fetch(t, alice, http.MethodGet, ce.ui.URL+"/admin/ui/clients", nil)
		if strings.Contains(again, m[1]) {
			t.Fatal("the secret is shown again")
		}
		_, bad := fetch(t, alice, http.MethodPost, ce.ui.URL+"/admin/ui/clients", url.Values{"csrf": {csrf}, "id": {"x"}, "grants": {"implicit"}})
		if !strings.Contains(bad, `class="error"`) {
			t.Fatal("validation error not shown")
		}
	})
	t.Run("CSRF", func(t *testing.T) {
		for _, form := range []url.Values{{"id": {"evil"}, "grants": {"client_credentials"}}, {"csrf": {"forged"}, "id": {"evil"}, "grants": {"client_credentials"}}} {
			resp, _ := fetch(t, alice, http.MethodPost, ce.ui.URL+"/admin/ui/clients", form)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("POST without a valid CSRF token: %d", resp.StatusCode)
			}
		}
		req, _ := http.NewRequest(http.MethodPost, ce.ui.URL+"/admin/ui/keys", strings.NewReader(url.Values{"csrf": {csrf}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		if resp, err := alice.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-origin POST: %v %v", resp, err)
		}
		if _, err := ce.store.GetClient(t.Context(), "evil"); err == nil {
			t.Fatal("a forged form created a client")
		}
		// Without a session there is no form to forge.
		resp, _ := fetch(t, browser(t), http.MethodPost, ce.ui.URL+"/admin/ui/keys", url.Values{"csrf": {csrf}})
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("POST without a session: %d", resp.StatusCode)
		}
	})
	t.Run("SessionsAndConsents", func(t *testing.T) {
		bob := ce.bobConsents(t)
		_, page := fetch(t, alice, http.MethodGet, ce.ui.URL+"/admin/ui/sessions?email=bob@example.com", nil)
		if !strings.Contains(page, "<code>webapp</code>") || !strings.Contains(page, "/admin/ui/users/u-bob/consents/revoke") {
			t.Fatalf("bob's consent is not listed: %s", page)
		}
		// No cookie value (nor the hash of one) is ever shown.
		for _, ck := range bob.Jar.Cookies(mustURL(t, ce.pub.URL)) {
			if strings.Contains(page, ck.Value) {
				t.Fatalf("the page shows the value of the cookie %s", ck.Name)
			}
		}
		_, page = fetch(t, alice, http.MethodPost, ce.ui.URL+"/admin/ui/users/u-bob/consents/revoke", url.Values{"csrf": {csrf}, "client_id": {"webapp"}})
		if !strings.Contains(page, "Consent revoked") || strings.Contains(page, "<code>webapp</code>") {
			t.Fatalf("after revoking the consent: %s", page)
		}
		if resp, _ := fetch(t, alice, http.MethodPost, ce.ui.URL+"/admin/ui/users/u-bob/consents/revoke", url.Values{"csrf": {csrf}, "client_id": {"webapp"}}); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("revoking a consent twice: %d", resp.StatusCode)
		}
		if resp, _ := fetch(t, alice, http.MethodPost, ce.ui.URL+"/admin/ui/users/u-bob/consents/revoke", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("revoking without a client: %d", resp.StatusCode)
		}
		if resp, _ := fetch(t, alice, http.MethodPost, ce.ui.URL+"/admin/ui/users/u-nobody/disable", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("disabling an unknown user: %d", resp.StatusCode)
		}
		if resp, _ := fetch(t, alice, http.MethodPost, ce.ui.URL+"/admin/ui/users/u-nobody/sessions/revoke", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("ending the sessions of an unknown user: %d", resp.StatusCode)
		}
		// Bob's browser is still signed in until his sessions end.
		if !ce.signedIn(t, bob) {
			t.Fatal("bob's browser session ended too early")
		}
		_, page = fetch(t, alice, http.MethodPost, ce.ui.URL+"/admin/ui/users/u-bob/sessions/revoke", url.Values{"csrf": {csrf}})
		if !strings.Contains(page, "Every browser session of the user ended") {
			t.Fatalf("after ending the sessions: %s", page)
		}
		if ce.signedIn(t, bob) {
			t.Fatal("bob's browser session survived")
		}
		if resp, _ := fetch(t, alice, http.MethodPost, ce.ui.URL+"/admin/ui/users/u-bob/sessions/revoke", url.Values{"csrf": {"forged"}}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("a forged form: %d", resp.StatusCode)
		}
	})
	t.Run("DisableBob", func(t *testing.T) {
		_, page := fetch(t, alice, http.MethodGet, ce.ui.URL+"/admin/ui/users?email=bob@example.com", nil)
		if !strings.Contains(page, "bob@example.com") || !strings.Contains(page, "/admin/ui/users/u-bob/disable") {
			t.Fatalf("users page: %s", page)
		}
		_, page = fetch(t, alice, http.MethodPost, ce.ui.URL+"/admin/ui/users/u-bob/disable", url.Values{"csrf": {csrf}})
		if !strings.Contains(page, "disabled") {
			t.Fatalf("after disable: %s", page)
		}
		if st, _ := ce.tokenForm(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {bobRefresh}, "client_id": {"app"}}); st == http.StatusOK {
			t.Fatal("bob's refresh token still works")
		}
		if st, _ := ce.passwordGrant("bob@example.com", bobPassword); st == http.StatusOK {
			t.Fatal("disabled bob signed in")
		}
	})
	t.Run("RotateKeys", func(t *testing.T) {
		before := len(ce.km.List())
		_, page := fetch(t, alice, http.MethodPost, ce.ui.URL+"/admin/ui/keys", url.Values{"csrf": {csrf}})
		if len(ce.km.List()) != before+1 || strings.Count(page, "<code>") != before+1 {
			t.Fatalf("keys after rotation: %d, page %s", len(ce.km.List()), page)
		}
	})
	t.Run("AuditShowsWhoDidIt", func(t *testing.T) {
		_, page := fetch(t, alice, http.MethodGet, ce.ui.URL+"/admin/ui/audit?event=admin_change", nil)
		if !strings.Contains(page, "actor_sub=u-alice") || !strings.Contains(page, "command=users disable") {
			t.Fatalf("audit page: %s", page)
		}
	})
	t.Run("SignOut", func(t *testing.T) {
		// The console session is gone (the sign-in page's own session
		// may still be alive, so following the redirects would sign in
		// again).
		noFollow := &http.Client{Jar: alice.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		fetch(t, noFollow, http.MethodPost, ce.ui.URL+"/admin/ui/logout", url.Values{"csrf": {csrf}})
		resp, _ := fetch(t, noFollow, http.MethodGet, ce.ui.URL+"/admin/ui/users", nil)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/ui/login" {
			t.Fatalf("after sign-out: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// webappRedirect is the redirect URI of the confidential client webapp;
// nothing listens there, the test stops at the redirect.
const webappRedirect = "http://127.0.0.1:9/cb"

// authorizeURL is an authorization request of webapp.
func (ce *consoleEnv) authorizeURL() string {
	return ce.pub.URL + "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"webapp"}, "redirect_uri": {webappRedirect},
		"scope": {"read"}, "state": {"state-0123456789"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}.Encode()
}

// noRedirectTo follows redirects except to webappRedirect.
func noRedirectTo(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), webappRedirect) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

// bobConsents signs bob in to webapp, a confidential client, and allows it
// on the consent page, which the server remembers; it returns bob's
// signed-in browser.
func (ce *consoleEnv) bobConsents(t *testing.T) *http.Client {
	t.Helper()
	now := time.Now().UTC()
	if err := ce.store.CreateClient(t.Context(), storage.Client{ID: "webapp", Name: "Web App", SecretHashes: []string{password.HashSecret(svcSecret)},
		GrantTypes: []string{"authorization_code"}, Scopes: []string{"read"}, RedirectURIs: []string{webappRedirect}, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	bob := noRedirectTo(browser(t).Jar)
	resp, page := fetch(t, bob, http.MethodGet, ce.authorizeURL(), nil)
	form := url.Values{"username": {"bob@example.com"}, "password": {bobPassword}}
	resp, page = postPage(t, bob, resp, page, form)
	if !strings.Contains(page, `value="allow"`) {
		t.Fatalf("no consent page for bob: %d %s", resp.StatusCode, page)
	}
	resp, _ = postPage(t, bob, resp, page, url.Values{"decision": {"allow"}})
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, webappRedirect+"?code=") {
		t.Fatalf("after allowing: %d %s", resp.StatusCode, loc)
	}
	return bob
}

// postPage submits the first post form of page with its hidden fields and
// extra.
func postPage(t *testing.T, c *http.Client, resp *http.Response, page string, extra url.Values) (*http.Response, string) {
	t.Helper()
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		extra.Set(m[1], htmlUnescape(m[2]))
	}
	action := resp.Request.URL.String()
	if m := actionRE.FindStringSubmatch(page); m != nil {
		ref, _ := url.Parse(htmlUnescape(m[1]))
		action = resp.Request.URL.ResolveReference(ref).String()
	}
	return fetch(t, c, http.MethodPost, action, extra)
}

// signedIn reports whether the browser's session on the public listener is
// alive: an authorization request then shows no password field.
func (ce *consoleEnv) signedIn(t *testing.T, c *http.Client) bool {
	t.Helper()
	_, page := fetch(t, c, http.MethodGet, ce.authorizeURL(), nil)
	return !strings.Contains(page, `name="password"`)
}
