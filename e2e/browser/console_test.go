package browser

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthkit/authserver/internal/testbin"
)

// The demo seed's second user, role user.
const (
	bobEmail    = "bob@example.com"
	bobPassword = "password456"
)

// consoleServer is `authserver serve --demo` with the admin listener.
type consoleServer struct {
	issuer, admin, db string
}

// freeAddr returns a loopback address nothing listens on (for a moment).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startConsoleServer runs the binary with --demo and --admin-addr on a
// fresh SQLite database; the console signs in through the public listener.
func startConsoleServer(t *testing.T) consoleServer {
	t.Helper()
	addr, adminAddr := freeAddr(t), freeAddr(t)
	db := filepath.Join(t.TempDir(), "auth.db")
	s := testbin.Start(t, nil, "--demo", "--db", db, "--addr", addr, "--issuer", "http://"+addr, "--admin-addr", adminAddr)
	s.WaitLog("admin console")
	return consoleServer{issuer: s.URL, admin: "http://" + adminAddr, db: db}
}

// demoClient is x/oauth2's view of the demo client (password and
// refresh_token grants).
func (cs consoleServer) demoClient() *oauth2.Config {
	return &oauth2.Config{ClientID: "demo", Endpoint: oauth2.Endpoint{TokenURL: cs.issuer + "/token", AuthStyle: oauth2.AuthStyleInParams}}
}

// consoleSignIn opens the console, which sends the browser to the public
// sign-in page, and signs in there.
func (cs consoleServer) consoleSignIn(ctx context.Context, email, password string) error {
	return chromedp.Do(ctx, chromedp.Navigate(cs.admin+"/admin/ui/"), signIn(email, password), chromedp.WaitVisible(chromedp.CSS("main.console h1")))
}

// status is the HTTP status of the page the tab shows.
func status(t *testing.T, ctx context.Context) int {
	t.Helper()
	st, err := chromedp.Run(ctx, chromedp.Evaluate[int](`performance.getEntriesByType("navigation")[0].responseStatus`))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// text is the text of the first element matching sel.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// count is the number of elements matching the CSS selector.
func count(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// publicSessionAlive reports whether the tab's browser is signed in on the
// public listener: /consents then shows no sign-in form.
func (cs consoleServer) publicSessionAlive(t *testing.T, ctx context.Context) bool {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(cs.issuer+"/consents"), chromedp.WaitVisible(chromedp.CSS("h1"))); err != nil {
		t.Fatal(err)
	}
	return count(t, ctx, "#password") == 0
}

// The console in Chromium, as the issue asks: alice signs in through the
// public sign-in page, creates a client (its secret shown once), disables
// bob (his browser session ends, his refresh token stops working), rotates
// the keys and sees the charts; bob is refused. Forms refuse a missing or
// wrong CSRF token and a cross-origin post, and the console cannot be
// framed.
func TestConsoleInChromium(t *testing.T) {
	ctx := newBrowser(t, desktop)
	cs := startConsoleServer(t)
	bctx := context.Background()

	// Bob gets tokens with the password grant (x/oauth2), and a failed
	// sign-in, for the charts.
	bobTok, err := cs.demoClient().PasswordCredentialsToken(bctx, bobEmail, bobPassword)
	if err != nil || bobTok.RefreshToken == "" {
		t.Fatalf("bob's password grant: %v (refresh token %t)", err, bobTok != nil && bobTok.RefreshToken != "")
	}
	if _, err := cs.demoClient().PasswordCredentialsToken(bctx, bobEmail, "not bob's password"); err == nil {
		t.Fatal("a wrong password got a token")
	}

	// Bob, role user, in a browser context of his own, is refused.
	bobCtx, cancelBob := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	defer cancelBob()
	if err := cs.consoleSignIn(bobCtx, bobEmail, bobPassword); err != nil {
		t.Fatalf("bob's console sign-in: %v", err)
	}
	if st, h1 := status(t, bobCtx), text(t, bobCtx, "h1"); st != http.StatusForbidden || h1 != "403 Forbidden" {
		t.Fatalf("bob at the console: status %d, heading %q, want 403", st, h1)
	}
	if msg := text(t, bobCtx, "[role=alert]"); !strings.Contains(msg, "may not use the admin console") {
		t.Errorf("bob's 403 page says %q", msg)
	}
	if !cs.publicSessionAlive(t, bobCtx) {
		t.Fatal("bob's browser is not signed in on the public listener")
	}

	// Alice, role admin, gets in.
	if err := cs.consoleSignIn(ctx, aliceEmail, alicePassword); err != nil {
		t.Fatalf("alice's console sign-in: %v", err)
	}
	if h1 := text(t, ctx, "h1"); h1 != "Dashboard" {
		t.Fatalf("alice sees %q, want the dashboard", h1)
	}

	t.Run("DashboardChartsRender", func(t *testing.T) {
		// The charts are sampled every 10 seconds: wait for bars.
		deadline := time.Now().Add(25 * time.Second)
		for {
			if n := count(t, ctx, `main svg rect:not([height="0"])`); n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no bar in the charts after token issuance")
			}
			time.Sleep(2 * time.Second)
			if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
				t.Fatal(err)
			}
		}
		if n := count(t, ctx, "main figure svg[role=img][aria-label]"); n != 4 {
			t.Fatalf("%d labelled charts, want 4", n)
		}
		for _, want := range []string{"Tokens issued", "Failed sign-ins", "Throttled requests", "Refresh token reuse"} {
			if !strings.Contains(text(t, ctx, "main"), want) {
				t.Errorf("no chart %q", want)
			}
		}
		if cap := text(t, ctx, "figure:nth-of-type(2) figcaption"); !strings.HasPrefix(cap, "Failed sign-ins: ") || strings.HasPrefix(cap, "Failed sign-ins: 0 ") {
			t.Errorf("the failed sign-ins chart says %q, want at least 1", cap)
		}
		screenshot(t, ctx, "console-dashboard")
	})

	t.Run("NotFramable", func(t *testing.T) {
		resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(cs.admin+"/admin/ui/"))
		if err != nil {
			t.Fatal(err)
		}
		if xfo, csp := resp.Headers["X-Frame-Options"], fmt.Sprint(resp.Headers["Content-Security-Policy"]); xfo != "DENY" || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Fatalf("X-Frame-Options %q, Content-Security-Policy %q", xfo, csp)
		}
		// A page of another origin frames the console and a page of its
		// own: its own shows, the console does not.
		evil := hostile(t, fmt.Sprintf(`<iframe id="console" name="console" src="%s/admin/ui/users" width="600" height="300"></iframe>
<iframe id="own" name="own" src="/frameable" width="300" height="100"></iframe>`, cs.admin))
		if err := chromedp.Do(ctx, chromedp.Navigate(evil.URL)); err != nil {
			t.Fatal(err)
		}
		var frames map[string]*cdp.Frame
		deadline := time.Now().Add(10 * time.Second)
		for {
			tree, err := chromedp.Call(ctx, page.GetFrameTree, cdp.Empty{})
			if err != nil {
				t.Fatal(err)
			}
			frames = map[string]*cdp.Frame{}
			for _, c := range tree.FrameTree.ChildFrames {
				frames[c.Frame.Name] = c.Frame
			}
			if len(frames) == 2 && frames["own"].URL == evil.URL+"/frameable" && frames["console"].URL != "" && frames["console"].URL != "about:blank" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("frames did not load: %+v", frames)
			}
			time.Sleep(200 * time.Millisecond)
		}
		// Chromium replaces a refused frame with its error page.
		if f := frames["console"]; !strings.HasPrefix(f.URL, "chrome-error:") || !strings.HasPrefix(f.UnreachableURL, cs.admin) {
			t.Errorf("the framed console loaded: %s (unreachable %q)", f.URL, f.UnreachableURL)
		}
		screenshot(t, ctx, "console-framed")
	})

	t.Run("CreateClient", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(cs.admin+"/admin/ui/clients"),
			chromedp.SendKeys(chromedp.CSS(`input[name=id]`), "reports"),
			chromedp.SendKeys(chromedp.CSS(`input[name=name]`), "Nightly reports"),
			chromedp.SendKeys(chromedp.CSS(`input[name=scopes]`), "read"),
			chromedp.Click(chromedp.CSS(`form[action="/admin/ui/clients"] button`)),
			chromedp.WaitVisible(chromedp.CSS(".secret code"))); err != nil {
			t.Fatal(err)
		}
		secret := text(t, ctx, ".secret code")
		cc := clientcredentials.Config{ClientID: "reports", ClientSecret: secret, TokenURL: cs.issuer + "/token", Scopes: []string{"read"}}
		if tok, err := cc.Token(bctx); err != nil || tok.AccessToken == "" {
			t.Fatalf("the new client's secret does not work: %v", err)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(cs.admin+"/admin/ui/clients"), chromedp.WaitVisible(chromedp.CSS("table"))); err != nil {
			t.Fatal(err)
		}
		if html, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.documentElement.outerHTML")); strings.Contains(html, secret) {
			t.Fatal("the secret is shown again")
		}
		if !strings.Contains(text(t, ctx, "tbody"), "reports") {
			t.Fatal("the new client is not listed")
		}
		screenshot(t, ctx, "console-clients")
	})

	t.Run("CSRF", func(t *testing.T) {
		before := keyRows(t, ctx, cs)
		// The console's own form, with the token removed or changed.
		for _, js := range []string{
			`document.querySelector('form[action="/admin/ui/keys"] input[name=csrf]').remove()`,
			`document.querySelector('form[action="/admin/ui/keys"] input[name=csrf]').value = "forged"`,
		} {
			if err := chromedp.Do(ctx, chromedp.Navigate(cs.admin+"/admin/ui/keys"), chromedp.Evaluate[chromedp.Void](js)); err != nil {
				t.Fatal(err)
			}
			resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`form[action="/admin/ui/keys"] button`)))
			if err != nil {
				t.Fatal(err)
			}
			if msg := text(t, ctx, "main"); resp.Status != http.StatusForbidden || !strings.Contains(msg, "CSRF") {
				t.Errorf("after %s: status %d, %q", js, resp.Status, msg)
			}
		}
		// A form on another origin, with the browser's console cookie.
		evil := hostile(t, fmt.Sprintf(`<form method="post" action="%s/admin/ui/keys"><input type="hidden" name="now" value="on"><button id="go">Win a prize</button></form>`, cs.admin))
		if err := chromedp.Do(ctx, chromedp.Navigate(evil.URL)); err != nil {
			t.Fatal(err)
		}
		resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("go")))
		if err != nil {
			t.Fatal(err)
		}
		if msg := text(t, ctx, "main"); resp.Status != http.StatusForbidden || !strings.Contains(msg, "Cross-origin") {
			t.Errorf("a cross-origin post: status %d, %q, want 403", resp.Status, msg)
		}
		if after := keyRows(t, ctx, cs); after != before {
			t.Fatalf("forged forms rotated the keys: %d keys, were %d", after, before)
		}
	})

	t.Run("DisableBob", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(cs.admin+"/admin/ui/users"),
			chromedp.Click(chromedp.CSS(`button[aria-label="Disable `+bobEmail+`"]`)),
			chromedp.WaitVisible(chromedp.CSS(`button[aria-label="Enable `+bobEmail+`"]`))); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text(t, ctx, "tbody"), "disabled") {
			t.Fatal("bob is not shown disabled")
		}
		// His refresh token is refused at /token (x/oauth2 refreshes).
		expired := &oauth2.Token{AccessToken: bobTok.AccessToken, RefreshToken: bobTok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}
		if _, err := cs.demoClient().TokenSource(bctx, expired).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Fatalf("bob's refresh token after disabling: %v, want invalid_grant", err)
		}
		// His browser session has ended.
		if cs.publicSessionAlive(t, bobCtx) {
			t.Fatal("bob's browser session survived")
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(cs.admin+"/admin/ui/users"), chromedp.WaitVisible(chromedp.CSS("tbody"))); err != nil {
			t.Fatal(err)
		}
		screenshot(t, ctx, "console-users")
	})

	t.Run("RotateKeys", func(t *testing.T) {
		before := keyRows(t, ctx, cs)
		ids := text(t, ctx, "tbody")
		if resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`form[action="/admin/ui/keys"] button`))); err != nil || resp.Status != http.StatusOK {
			t.Fatalf("rotating: %v %v", resp, err)
		}
		if n := count(t, ctx, "tbody tr"); n != before+1 {
			t.Fatalf("%d keys after rotating, want %d", n, before+1)
		}
		if !strings.Contains(text(t, ctx, "tbody"), "next") || text(t, ctx, "tbody") == ids {
			t.Fatalf("the key list did not change: %s", text(t, ctx, "tbody"))
		}
		screenshot(t, ctx, "console-keys")
	})

	t.Run("SessionsPage", func(t *testing.T) {
		// Alice consents to webapp, a confidential client registered with
		// the CLI, which the server remembers.
		testbin.Run(t, "", "clients", "add", "--db", cs.db, "--id", "webapp", "--name", "Web App", "--grant", "authorization_code",
			"--scope", "profile", "--scope", "email", "--redirect-uri", "http://127.0.0.1/callback")
		cb := newCallback(t)
		conf := oauthConfig(cs.issuer, cb.URL())
		conf.ClientID = "webapp"
		if err := chromedp.Do(ctx, chromedp.Navigate(conf.AuthCodeURL("consent-state", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))),
			chromedp.Click(chromedp.CSS(`button[name=decision][value=allow]`)), chromedp.WaitVisible(chromedp.ID("result"))); err != nil {
			t.Fatalf("alice's consent: %v", err)
		}
		if q := cb.wait(t); q.Get("code") == "" {
			t.Fatalf("no code after the consent: %v", q)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(cs.admin+"/admin/ui/sessions"),
			chromedp.SendKeys(chromedp.CSS(`input[name=email]`), aliceEmail)); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`main form button`))); err != nil {
			t.Fatal(err)
		}
		if list := text(t, ctx, "table.consents tbody"); !strings.Contains(list, "webapp") || !strings.Contains(list, "profile email") {
			t.Fatalf("alice's consents: %q", list)
		}
		html, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.documentElement.outerHTML"))
		if err != nil {
			t.Fatal(err)
		}
		// No cookie of the browser (HttpOnly ones included, read through
		// the DevTools protocol) appears in the page, in full or hashed.
		jar, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{cs.issuer, cs.admin}})
		if err != nil || len(jar.Cookies) < 2 {
			t.Fatalf("cookies: %v, %v", jar, err)
		}
		for _, c := range jar.Cookies {
			sum := sha256.Sum256([]byte(c.Value))
			for _, v := range []string{c.Value, hex.EncodeToString(sum[:]), base64.RawURLEncoding.EncodeToString(sum[:])} {
				if strings.Contains(html, v) {
					t.Errorf("the page shows the cookie %s", c.Name)
				}
			}
		}
		screenshot(t, ctx, "console-sessions")
		resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`button[aria-label="Revoke the consent to webapp"]`)))
		if err != nil || resp.Status != http.StatusOK {
			t.Fatalf("revoking: %v %v", resp, err)
		}
		if msg := text(t, ctx, "[role=status]"); !strings.Contains(msg, "Consent revoked") {
			t.Errorf("after Revoke: %q", msg)
		}
		if list := text(t, ctx, "table.consents tbody"); strings.Contains(list, "webapp") {
			t.Errorf("the consent is still listed: %q", list)
		}
		// webapp asks alice again.
		if err := chromedp.Do(ctx, chromedp.Navigate(conf.AuthCodeURL("consent-state-2", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))),
			chromedp.WaitVisible(chromedp.CSS(`button[name=decision][value=allow]`))); err != nil {
			t.Fatalf("no consent page after revoking: %v", err)
		}
	})

	t.Run("AuditLog", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(cs.admin+"/admin/ui/audit?event=admin_change"), chromedp.WaitVisible(chromedp.CSS("tbody"))); err != nil {
			t.Fatal(err)
		}
		log := text(t, ctx, "tbody")
		for _, want := range []string{"command=users disable", "command=clients create", "command=keys rotate", "actor_client_id=admin-console"} {
			if !strings.Contains(log, want) {
				t.Errorf("the audit log lacks %q", want)
			}
		}
		screenshot(t, ctx, "console-audit")
	})
}

// keyRows opens the keys page and counts its keys.
func keyRows(t *testing.T, ctx context.Context, cs consoleServer) int {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(cs.admin+"/admin/ui/keys"), chromedp.WaitVisible(chromedp.CSS("tbody"))); err != nil {
		t.Fatal(err)
	}
	return count(t, ctx, "tbody tr")
}

// hostile serves body as the page of another origin (another port), and
// /frameable, a page anyone may frame.
func hostile(t *testing.T, body string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path == "/frameable" {
			fmt.Fprint(w, `<!doctype html><title>own</title><p>framed page</p>`)
			return
		}
		fmt.Fprintf(w, `<!doctype html><html lang="en"><title>elsewhere</title><h1>Another site</h1>%s</html>`, body)
	}))
	t.Cleanup(s.Close)
	return s
}

// On a phone the console's pages fit the viewport, show keyboard focus,
// label their fields and have enough contrast.
func TestConsoleOnPhone(t *testing.T) {
	ctx := newBrowser(t, phone)
	cs := startConsoleServer(t)
	if err := cs.consoleSignIn(ctx, aliceEmail, alicePassword); err != nil {
		t.Fatal(err)
	}
	pages := []struct {
		path     string
		contrast []string // besides the heading, navigation and buttons
	}{
		{"", []string{"main p", "figcaption"}},
		{"users", []string{"main label", "th", "td", "main button"}},
		{"clients", []string{"th", "td", "main label", "main button"}},
		{"keys", []string{"th", "td", "main label", "main button"}},
		{"sessions?email=alice%40example.com", []string{"main label", ".muted", "th", "td", "main button"}},
		{"audit", []string{"main label", "th", "td", "main button"}},
	}
	for _, pg := range pages {
		p := pg.path
		if err := chromedp.Do(ctx, chromedp.Navigate(cs.admin+"/admin/ui/"+p), chromedp.WaitVisible(chromedp.CSS("h1"))); err != nil {
			t.Fatal(err)
		}
		name := "/admin/ui/" + p
		if st := status(t, ctx); st != http.StatusOK {
			t.Fatalf("%s: status %d", name, st)
		}
		checkNoOverflow(t, ctx, name)
		checkAccessible(t, ctx, name)
		checkContrast(t, ctx, name, append([]string{"h1", "header strong", "nav a", "header button"}, pg.contrast...)...)
		if p == "users" {
			screenshot(t, ctx, "console-phone")
		}
	}
	// Keyboard focus: Tab from the search field to its button.
	if err := chromedp.Do(ctx, chromedp.Navigate(cs.admin+"/admin/ui/users"), chromedp.Focus(chromedp.CSS(`input[name=email]`)), chromedp.KeyEvent("\t")); err != nil {
		t.Fatal(err)
	}
	checkFocusVisible(t, ctx, "BUTTON")
}

// checkAccessible fails unless the page declares its language, every
// visible form field has a label and every button a name.
func checkAccessible(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => {
		const out = [];
		if (!document.documentElement.lang) out.push("no lang on <html>");
		for (const i of document.querySelectorAll("input:not([type=hidden]), select, textarea"))
			if (!i.labels || i.labels.length === 0) out.push("unlabelled " + (i.name || i.outerHTML));
		for (const b of document.querySelectorAll("button"))
			if (!(b.getAttribute("aria-label") || b.textContent).trim()) out.push("unnamed button " + b.outerHTML);
		return out;
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		t.Errorf("%s: %s", page, b)
	}
}
