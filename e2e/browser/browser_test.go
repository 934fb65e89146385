package browser

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// cmd/democlient signs alice in through Chromium with JavaScript disabled:
// sign-in page, consent page, Allow, loopback redirect; democlient checks
// state and iss, exchanges the code with x/oauth2 and the PKCE verifier,
// verifies the token with the JWKS and calls /api/me.
func TestDemoclientSignsInWithoutJavaScript(t *testing.T) {
	ctx := newBrowser(t, browserOpts{width: desktop.width, height: desktop.height, noScript: true})
	issuer := startServer(t)
	dc := startDemoclient(t, issuer)

	if err := chromedp.Do(ctx, chromedp.Navigate(dc.authURL), chromedp.WaitVisible(chromedp.ID("username"))); err != nil {
		t.Fatalf("opening the authorization URL: %v", err)
	}
	screenshot(t, ctx, "signin-desktop")
	if err := chromedp.Do(ctx, signIn(aliceEmail, alicePassword), chromedp.WaitVisible(chromedp.CSS(`button[name=decision][value=allow]`))); err != nil {
		t.Fatalf("signing in: %v\n%s", err, dc.out)
	}
	page, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Demo App", "Signed in as " + aliceEmail, "profile", "email"} {
		if !strings.Contains(page, want) {
			t.Errorf("the consent page lacks %q:\n%s", want, page)
		}
	}
	checkButtonsAligned(t, ctx)
	screenshot(t, ctx, "consent-desktop")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[name=decision][value=allow]`)), chromedp.WaitVisible(chromedp.ID("result"))); err != nil {
		t.Fatalf("allowing: %v\n%s", err, dc.out)
	}
	result, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("result")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(result, "You are signed in") {
		t.Errorf("the loopback page says %q", result)
	}

	out, exit := dc.wait(t)
	if exit != nil {
		t.Fatalf("democlient: %v\n%s", exit, out)
	}
	t.Logf("democlient output:\n%s", out)
	if !strings.Contains(out, "Access token claims (signature verified with "+issuer+"/.well-known/jwks.json)") {
		t.Errorf("democlient did not verify the token:\n%s", out)
	}
	_, meJSON, ok := strings.Cut(out, "GET "+issuer+"/api/me:\n")
	if !ok {
		t.Fatalf("democlient did not call /api/me:\n%s", out)
	}
	var me struct {
		Email string   `json:"email"`
		Name  string   `json:"name"`
		Roles []string `json:"roles"`
	}
	if err := json.NewDecoder(strings.NewReader(meJSON)).Decode(&me); err != nil {
		t.Fatalf("democlient's /api/me output: %v\n%s", err, out)
	}
	if me.Email != aliceEmail || me.Name != "Alice" || len(me.Roles) != 1 || me.Roles[0] != "admin" {
		t.Errorf("/api/me = %+v, want alice", me)
	}

	// A second sign-in keeps the session (no sign-in page) but asks for
	// consent again: demo-app is a public client, whose identity a
	// redirect to a loopback port does not prove (RFC 8252 §8.6).
	dc2 := startDemoclient(t, issuer)
	if err := chromedp.Do(ctx, chromedp.Navigate(dc2.authURL), chromedp.WaitVisible(chromedp.CSS(`button[name=decision][value=allow]`))); err != nil {
		t.Fatalf("second sign-in: %v\n%s", err, dc2.out)
	}
	if n, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.ID("password"), chromedp.AtLeast(0))); err != nil || len(n) != 0 {
		t.Errorf("the second sign-in shows a password field (%d, %v): the session was not kept", len(n), err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[name=decision][value=allow]`)), chromedp.WaitVisible(chromedp.ID("result"))); err != nil {
		t.Fatalf("second sign-in: %v\n%s", err, dc2.out)
	}
	if out, err := dc2.wait(t); err != nil {
		t.Fatalf("second democlient: %v\n%s", err, out)
	}

	// /consents lists Demo App; Revoke forgets the consent.
	if err := chromedp.Do(ctx, chromedp.Navigate(issuer+"/consents"), chromedp.WaitVisible(chromedp.CSS(".consents"))); err != nil {
		t.Fatalf("/consents: %v", err)
	}
	list, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".consents")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(list, "Demo App") || !strings.Contains(list, "profile email") {
		t.Errorf("/consents lists %q, want Demo App with profile email", list)
	}
	screenshot(t, ctx, "consents-desktop")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(".consents button[type=submit]")), chromedp.WaitVisible(chromedp.CSS(".notice"))); err != nil {
		t.Fatalf("revoking: %v", err)
	}
	if page, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main"))); !strings.Contains(page, "Access revoked.") || !strings.Contains(page, "You have not given any application access.") {
		t.Errorf("after Revoke, /consents says:\n%s", page)
	}
}

// On a phone-sized viewport the pages have no horizontal overflow and show
// keyboard focus; the test drives the flow itself and exchanges the code
// with x/oauth2 (S256ChallengeOption, VerifierOption), then calls /api/me.
func TestCodeFlowOnPhoneWithXOAuth2(t *testing.T) {
	ctx := newBrowser(t, phone)
	issuer := startServer(t)
	cb := newCallback(t)
	conf := oauthConfig(issuer, cb.URL())
	verifier := oauth2.GenerateVerifier()
	state := "phone-state-0123456789"

	if err := chromedp.Do(ctx, chromedp.Navigate(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))), chromedp.WaitVisible(chromedp.ID("username"))); err != nil {
		t.Fatal(err)
	}
	checkNoOverflow(t, ctx, "sign-in")
	screenshot(t, ctx, "signin-phone")
	// Keyboard focus: Tab from the e-mail field to the password field and
	// to the button; each shows an outline.
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.ID("username"))); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"password", "BUTTON"} {
		if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
			t.Fatal(err)
		}
		checkFocusVisible(t, ctx, want)
	}

	if err := chromedp.Do(ctx, signIn(aliceEmail, alicePassword), chromedp.WaitVisible(chromedp.CSS(`button[name=decision][value=allow]`))); err != nil {
		t.Fatal(err)
	}
	checkNoOverflow(t, ctx, "consent")
	checkButtonsAligned(t, ctx)
	screenshot(t, ctx, "consent-phone")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[name=decision][value=allow]`))); err != nil {
		t.Fatal(err)
	}
	q := cb.wait(t)
	if q.Get("state") != state || q.Get("iss") != issuer || q.Get("code") == "" {
		t.Fatalf("redirect query = %v, want a code, state %q and iss %q", q, state, issuer)
	}

	tok, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	resp, err := conf.Client(context.Background(), tok).Get(issuer + "/api/me")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"email":"`+aliceEmail+`"`) {
		t.Fatalf("/api/me: %d %s", resp.StatusCode, body)
	}

	// The same code a second time is refused (single use).
	if _, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier)); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("second exchange of the code: %v, want invalid_grant", err)
	}
}

// A wrong password keeps the user on the sign-in page with the error shown
// in the page (never JSON) and the e-mail kept.
func TestWrongPasswordShowsErrorOnPage(t *testing.T) {
	ctx := newBrowser(t, desktop)
	issuer := startServer(t)
	conf := oauthConfig(issuer, "http://127.0.0.1:9/callback")
	u := conf.AuthCodeURL("wrong-pw-state", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	if err := chromedp.Do(ctx, chromedp.Navigate(u), signIn(aliceEmail, "not-the-password"), chromedp.WaitVisible(chromedp.ID("error"))); err != nil {
		t.Fatal(err)
	}
	msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("error")))
	if err != nil {
		t.Fatal(err)
	}
	if msg != "Incorrect email or password." {
		t.Errorf("error on the page = %q", msg)
	}
	role, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("error"), "role"))
	if err != nil {
		t.Fatal(err)
	}
	if role.Value != "alert" {
		t.Errorf("the error has role %q, want alert (read out by screen readers)", role.Value)
	}
	kept, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("username")))
	if err != nil {
		t.Fatal(err)
	}
	if kept != aliceEmail {
		t.Errorf("the e-mail field holds %q after the error, want %q", kept, aliceEmail)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc, issuer+"/") {
		t.Errorf("after a wrong password the browser is at %s, want the server's page", loc)
	}
	screenshot(t, ctx, "signin-error-desktop")
}

// Deny on the consent page redirects with access_denied, the state and iss
// (RFC 6749 §4.1.2.1, RFC 9207), and democlient reports the refusal.
func TestDenyRedirectsAccessDenied(t *testing.T) {
	ctx := newBrowser(t, desktop)
	issuer := startServer(t)
	dc := startDemoclient(t, issuer)
	au, err := url.Parse(dc.authURL)
	if err != nil {
		t.Fatal(err)
	}
	state := au.Query().Get("state")

	if err := chromedp.Do(ctx, chromedp.Navigate(dc.authURL), signIn(aliceEmail, alicePassword),
		chromedp.WaitVisible(chromedp.CSS(`button[name=decision][value=deny]`)),
		chromedp.Click(chromedp.CSS(`button[name=decision][value=deny]`)),
		chromedp.WaitVisible(chromedp.ID("result"))); err != nil {
		t.Fatal(err)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	lu, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	q := lu.Query()
	redirect, err := url.Parse(au.Query().Get("redirect_uri"))
	if err != nil {
		t.Fatal(err)
	}
	if lu.Host != redirect.Host || lu.Path != redirect.Path || q.Get("error") != "access_denied" || q.Get("state") != state || q.Get("iss") != issuer || q.Has("code") {
		t.Fatalf("after Deny the browser is at %s, want the loopback redirect with error=access_denied, state=%s, iss=%s and no code", loc, state, issuer)
	}
	out, exit := dc.wait(t)
	t.Logf("democlient output after Deny:\n%s", out)
	if exit == nil || !strings.Contains(out, "access_denied") {
		t.Fatalf("democlient after Deny: exit %v, output:\n%s", exit, out)
	}
	if desc := q.Get("error_description"); desc == "" || !strings.Contains(out, desc) {
		t.Errorf("democlient does not show the error_description %q:\n%s", desc, out)
	}
}

// checkNoOverflow fails when the page is wider than the viewport.
func checkNoOverflow(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	w, err := chromedp.Run(ctx, chromedp.Evaluate[[]int]("[document.documentElement.scrollWidth, window.innerWidth]"))
	if err != nil {
		t.Fatal(err)
	}
	if w[0] > w[1] {
		t.Errorf("the %s page overflows horizontally: scrollWidth %d > innerWidth %d", page, w[0], w[1])
	}
}

// checkFocusVisible fails unless the focused element is want (an id, or a
// tag name) and has an outline.
func checkFocusVisible(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => {
		const el = document.activeElement, s = getComputedStyle(el);
		return [el.id || el.tagName, s.outlineStyle, s.outlineWidth];
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != want || got[1] == "none" || got[2] == "0px" {
		t.Errorf("focus on %s: outline %s %s (want %s with a visible outline)", got[0], got[1], got[2], want)
	}
}

// checkButtonsAligned fails unless Deny and Allow sit side by side with the
// same top and height.
func checkButtonsAligned(t *testing.T, ctx context.Context) {
	t.Helper()
	r, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => {
		const d = document.querySelector("button[value=deny]").getBoundingClientRect();
		const a = document.querySelector("button[value=allow]").getBoundingClientRect();
		return [d.top, d.height, d.right, a.top, a.height, a.left];
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if r[0] != r[3] || r[1] != r[4] || r[2] > r[5] {
		t.Errorf("Deny (top %v, height %v, right %v) and Allow (top %v, height %v, left %v) are not side by side", r[0], r[1], r[2], r[3], r[4], r[5])
	}
}

// The text of the sign-in and consent pages has a contrast of at least
// 4.5:1 with its background (WCAG 2.2 AA, 1.4.3), in the light and the dark
// color scheme.
func TestTextContrastInLightAndDarkSchemes(t *testing.T) {
	for _, dark := range []bool{false, true} {
		name := map[bool]string{false: "Light", true: "Dark"}[dark]
		t.Run(name, func(t *testing.T) {
			ctx := newBrowser(t, browserOpts{width: desktop.width, height: desktop.height, dark: dark})
			issuer := startServer(t)
			conf := oauthConfig(issuer, "http://127.0.0.1:9/callback")
			u := conf.AuthCodeURL("contrast-state", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
			if err := chromedp.Do(ctx, chromedp.Navigate(u), signIn(aliceEmail, "not-the-password"), chromedp.WaitVisible(chromedp.ID("error"))); err != nil {
				t.Fatal(err)
			}
			checkContrast(t, ctx, "sign-in", "h1", ".lead", "label", ".error", "button.primary")
			if err := chromedp.Do(ctx, signIn("", alicePassword), chromedp.WaitVisible(chromedp.CSS(`button[name=decision][value=allow]`))); err != nil {
				t.Fatal(err)
			}
			checkContrast(t, ctx, "consent", "h1", ".lead", ".scope-desc", ".small", "button.primary", "button.secondary")
		})
	}
}

// checkContrast fails when the text of an element matched by one of the
// selectors has a contrast below 4.5:1 with the first opaque background
// behind it.
func checkContrast(t *testing.T, ctx context.Context, page string, selectors ...string) {
	t.Helper()
	sel, _ := json.Marshal(selectors)
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[][]any](`(() => {
		const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
		const lum = ([r, g, b]) => {
			const f = c => (c /= 255) <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
			return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
		};
		const bg = el => {
			for (; el; el = el.parentElement) {
				const c = rgb(getComputedStyle(el).backgroundColor);
				if (c.length === 3 || c[3] === 1) return c;
			}
			return [255, 255, 255];
		};
		return `+string(sel)+`.map(s => {
			const el = document.querySelector(s);
			if (!el) return [s, 0, "missing"];
			const a = lum(rgb(getComputedStyle(el).color)), b = lum(bg(el));
			return [s, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), getComputedStyle(el).color + " on " + bg(el)];
		});
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		if ratio, _ := r[1].(float64); ratio < 4.5 {
			t.Errorf("%s page: %v has a contrast of %.2f:1 (%v), want at least 4.5:1", page, r[0], ratio, r[2])
		}
	}
}
