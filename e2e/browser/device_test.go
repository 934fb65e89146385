package browser

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// deviceServerArgs give the device flow short timings for the tests.
var deviceServerArgs = []string{"--device-poll-interval", "1s", "--device-code-ttl", "2m"}

// cmd/democlient --device prints the verification URI and the user code
// (x/oauth2 DeviceAuth) and polls (DeviceAccessToken); Chromium opens
// verification_uri_complete, confirms the prefilled code, signs alice in,
// confirms again, checks the client and the code on the confirmation page
// and allows; democlient gets the token and calls /api/me.
func TestDemoclientDeviceFlow(t *testing.T) {
	ctx := newBrowser(t, desktop)
	issuer := startServer(t, deviceServerArgs...)
	var userCode string
	dc := runDemoclient(t, issuer, func(line string) string {
		l := strings.TrimSpace(line)
		if len(l) == 9 && l[4] == '-' {
			userCode = l
		}
		if u, ok := strings.CutPrefix(l, "(or open "); ok {
			u, _, _ = strings.Cut(u, " ")
			return u
		}
		return ""
	}, "--device")
	if !strings.HasPrefix(dc.authURL, issuer+"/device?user_code=") || userCode == "" {
		t.Fatalf("democlient printed %q, user code %q:\n%s", dc.authURL, userCode, dc.out)
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(dc.authURL), chromedp.WaitVisible(chromedp.ID("user_code"))); err != nil {
		t.Fatalf("opening %s: %v", dc.authURL, err)
	}
	prefilled, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("user_code")))
	if err != nil {
		t.Fatal(err)
	}
	if prefilled != userCode {
		t.Fatalf("prefilled %q, want %q", prefilled, userCode)
	}
	screenshot(t, ctx, "device-entry")
	// Continue goes to the sign-in page, which comes back to the entry
	// page: the code is confirmed once more, signed in this time.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`form button[type=submit]`)), signIn(aliceEmail, alicePassword),
		chromedp.WaitVisible(chromedp.ID("user_code")), chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[name=decision][value=allow]`))); err != nil {
		t.Fatalf("entering the code and signing in: %v\n%s", err, dc.out)
	}
	page, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Demo public client", "Signed in as " + aliceEmail, userCode} {
		if !strings.Contains(page, want) {
			t.Errorf("the confirmation page lacks %q:\n%s", want, page)
		}
	}
	checkButtonsAligned(t, ctx)
	screenshot(t, ctx, "device-confirm")
	// Wait for the next page's heading: the confirmation page has an h1 too.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[name=decision][value=allow]`)),
		chromedp.WaitVisible(chromedp.Search(`//h1[normalize-space()="Device connected"]`))); err != nil {
		t.Fatalf("allowing: %v", err)
	}
	if h, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1"))); h != "Device connected" {
		t.Errorf("after Allow the page says %q", h)
	}
	screenshot(t, ctx, "device-done")

	out, exit := dc.wait(t)
	if exit != nil {
		t.Fatalf("democlient: %v\n%s", exit, out)
	}
	_, meJSON, ok := strings.Cut(out, "GET "+issuer+"/api/me:\n")
	if !ok {
		t.Fatalf("democlient did not call /api/me:\n%s", out)
	}
	var me struct {
		Email string `json:"email"`
	}
	if err := json.NewDecoder(strings.NewReader(meJSON)).Decode(&me); err != nil || me.Email != aliceEmail {
		t.Fatalf("/api/me: %+v %v\n%s", me, err, out)
	}
}

// A wrong user code is an error on the page; Deny makes x/oauth2's
// DeviceAccessToken return access_denied.
func TestDeviceWrongCodeAndDeny(t *testing.T) {
	ctx := newBrowser(t, phone)
	issuer := startServer(t, deviceServerArgs...)
	cfg := &oauth2.Config{ClientID: "demo", Endpoint: oauth2.Endpoint{DeviceAuthURL: issuer + "/device_authorization",
		TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInParams}}
	octx := context.WithValue(ctx, oauth2.HTTPClient, http.DefaultClient)
	da, err := cfg.DeviceAuth(octx)
	if err != nil {
		t.Fatal(err)
	}
	polled := make(chan error, 1)
	go func() {
		_, err := cfg.DeviceAccessToken(octx, da)
		polled <- err
	}()

	if err := chromedp.Do(ctx, chromedp.Navigate(da.VerificationURI), chromedp.WaitVisible(chromedp.ID("user_code")),
		chromedp.SendKeys(chromedp.ID("user_code"), "bbbb bbbb"), chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("error"))); err != nil {
		t.Fatalf("entering a wrong code: %v", err)
	}
	msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("error")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "not valid") {
		t.Errorf("error shown: %q", msg)
	}
	screenshot(t, ctx, "device-wrong-code-phone")
	// The right code, typed in lower case without the dash (RFC 8628 §6.1).
	typed := strings.ToLower(strings.ReplaceAll(da.UserCode, "-", ""))
	if err := chromedp.Do(ctx, chromedp.Navigate(da.VerificationURI), chromedp.WaitVisible(chromedp.ID("user_code")), chromedp.SendKeys(chromedp.ID("user_code"), typed),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)), signIn(aliceEmail, alicePassword),
		chromedp.WaitVisible(chromedp.ID("user_code")), chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[name=decision][value=deny]`))); err != nil {
		t.Fatalf("entering the code: %v", err)
	}
	screenshot(t, ctx, "device-confirm-phone")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[name=decision][value=deny]`)), chromedp.WaitVisible(chromedp.CSS("h1"))); err != nil {
		t.Fatalf("denying: %v", err)
	}
	err = <-polled
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "access_denied" {
		t.Fatalf("DeviceAccessToken after Deny: %v", err)
	}
	// The code is spent: confirming it again is an error.
	if err := chromedp.Do(ctx, chromedp.Navigate(da.VerificationURIComplete), chromedp.WaitVisible(chromedp.ID("user_code")),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)), chromedp.WaitVisible(chromedp.ID("error"))); err != nil {
		t.Fatalf("the spent code: %v", err)
	}
}
