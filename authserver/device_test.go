package authserver

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/storage"
)

// deviceClock is a settable clock for the device flow's timing rules.
type deviceClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *deviceClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *deviceClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newDeviceEnv(t testing.TB, mods ...func(*Config)) *testEnv {
	return newDeviceEnvOn(t, openMemory(t), mods...)
}

func newDeviceEnvOn(t testing.TB, store storage.Store, mods ...func(*Config)) *testEnv {
	env := newTestEnv(t, store, mods...)
	now := time.Now().UTC()
	for _, c := range []storage.Client{
		{ID: "box", Name: "Set-top Box", SecretHashes: []string{password.HashSecret(appSecret)}, GrantTypes: []string{grantDeviceCode},
			Scopes: []string{"read"}},
		{ID: "tv", Name: "Living Room TV", Public: true, GrantTypes: []string{grantDeviceCode, "refresh_token"},
			Scopes: []string{"openid", "profile", "offline_access", "read"}},
		{ID: "cli", Name: "Deploy CLI", Public: true, GrantTypes: []string{grantDeviceCode}, Scopes: []string{"read"}},
	} {
		c.CreatedAt, c.UpdatedAt = now, now
		if err := env.store.CreateClient(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

func deviceConfig(env *testEnv, client string, scopes ...string) *oauth2.Config {
	return &oauth2.Config{ClientID: client, Scopes: scopes, Endpoint: oauth2.Endpoint{
		DeviceAuthURL: env.srv.URL + "/device_authorization", TokenURL: env.srv.URL + "/token", AuthStyle: oauth2.AuthStyleInParams}}
}

// approveDevice enters the user code at /device, signs in as alice and
// answers decision on the confirmation page.
func approveDevice(t *testing.T, env *testEnv, b *browser, complete, decision string) *page {
	t.Helper()
	u, err := url.Parse(complete)
	if err != nil {
		t.Fatal(err)
	}
	p := b.get("/device?" + u.RawQuery)
	if p.status != 200 || !strings.Contains(p.body, `name="user_code"`) {
		t.Fatalf("device page: %d %s", p.status, p.body)
	}
	action, v := p.form(t)
	v.Set("user_code", u.Query().Get("user_code"))
	p = b.post(action, v)
	if strings.Contains(p.body, `name="password"`) {
		p = b.signIn(p, "alice@example.com", alicePW)
		// Back on the entry page, prefilled: the user confirms again.
		if !strings.Contains(p.body, `value="`+u.Query().Get("user_code")+`"`) {
			t.Fatalf("after sign-in: %d %s", p.status, p.body)
		}
		action, v = p.form(t)
		v.Set("user_code", u.Query().Get("user_code"))
		p = b.post(action, v)
	}
	if p.status != 200 || !strings.Contains(p.body, u.Query().Get("user_code")) || !strings.Contains(p.body, `value="allow"`) {
		t.Fatalf("confirmation page: %d %s", p.status, p.body)
	}
	return b.decide(p, decision)
}

func TestDeviceFlowWithOAuth2Client(t *testing.T) {
	env := newDeviceEnv(t, func(c *Config) { c.DevicePollInterval = time.Second })
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, http.DefaultClient)
	cfg := deviceConfig(env, "tv", "openid", "profile", "offline_access", "read")
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(da.UserCode) != 9 || da.UserCode[4] != '-' || strings.Trim(strings.ReplaceAll(da.UserCode, "-", ""), userCodeAlphabet) != "" {
		t.Fatalf("user_code %q: want XXXX-XXXX of %s", da.UserCode, userCodeAlphabet)
	}
	if da.VerificationURI != env.issuer+"/device" || da.VerificationURIComplete != env.issuer+"/device?user_code="+da.UserCode || da.Interval != 1 {
		t.Fatalf("device authorization response: %+v", da)
	}
	// Only hashes are stored.
	if _, err := env.store.GetToken(ctx, storage.DeviceCode, da.DeviceCode); err == nil {
		t.Fatal("device code stored in the clear")
	}
	done := make(chan struct{})
	var tok *oauth2.Token
	var perr error
	go func() {
		defer close(done)
		tok, perr = cfg.DeviceAccessToken(ctx, da)
	}()
	p := approveDevice(t, env, newBrowser(t, env), da.VerificationURIComplete, "allow")
	if p.status != 200 || !strings.Contains(p.body, "Device connected") {
		t.Fatalf("after allow: %d %s", p.status, p.body)
	}
	<-done
	if perr != nil {
		t.Fatal(perr)
	}
	it := env.introspect(tok.AccessToken)
	if it["active"] != true || it["sub"] != env.alice.ID || !strings.Contains(it["scope"].(string), "read") {
		t.Fatalf("introspection: %v", it)
	}
	if tok.RefreshToken == "" || tok.Extra("id_token") == nil {
		t.Fatalf("want a refresh token (offline_access) and an ID token (openid): %+v", tok)
	}
	if _, ok := env.as.verifyIDToken(tok.Extra("id_token").(string)); !ok {
		t.Fatal("ID token does not verify")
	}
	// The refresh token works like the code flow's.
	resp := env.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"tv"}}, "", "")
	if m := decode(t, resp); resp.StatusCode != 200 {
		t.Fatalf("refresh: %d %v", resp.StatusCode, m)
	}
	// The device code is single-use.
	resp = env.post("/token", url.Values{"grant_type": {grantDeviceCode}, "device_code": {da.DeviceCode}, "client_id": {"tv"}}, "", "")
	if m := decode(t, resp); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("second use: %d %v", resp.StatusCode, m)
	}
}

// poll polls once with the raw protocol.
func poll(t *testing.T, env *testEnv, client, deviceCode string) (int, string) {
	t.Helper()
	resp := env.post("/token", url.Values{"grant_type": {grantDeviceCode}, "device_code": {deviceCode}, "client_id": {client}}, "", "")
	m := decode(t, resp)
	if resp.StatusCode == 200 {
		return 200, ""
	}
	e, _ := m["error"].(string)
	return resp.StatusCode, e
}

func deviceAuth(t testing.TB, env *testEnv, client string, form url.Values) map[string]any {
	t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("client_id", client)
	resp := env.post("/device_authorization", form, "", "")
	m := decode(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("device_authorization: %d %v", resp.StatusCode, m)
	}
	return m
}

func TestDeviceSlowDownGrowsInterval(t *testing.T) {
	clk := &deviceClock{now: time.Now().UTC()}
	env := newDeviceEnv(t, func(c *Config) { c.Now = clk.Now })
	m := deviceAuth(t, env, "cli", nil)
	dc := m["device_code"].(string)
	if m["interval"] != float64(5) || m["expires_in"] != float64(600) {
		t.Fatalf("defaults: %v", m)
	}
	steps := []struct {
		wait time.Duration
		want string
	}{
		{5 * time.Second, errAuthorizationPending},
		{2 * time.Second, errSlowDown},              // too fast: interval now 10 s
		{6 * time.Second, errSlowDown},              // 6 s < 10 s: interval now 15 s
		{11 * time.Second, errSlowDown},             // 11 s < 15 s: interval now 20 s
		{20 * time.Second, errAuthorizationPending}, // at the grown interval
		{20 * time.Second, errAuthorizationPending},
	}
	for i, s := range steps {
		clk.Add(s.wait)
		if st, e := poll(t, env, "cli", dc); st != 400 || e != s.want {
			t.Fatalf("poll %d after %s: %d %s, want %s", i, s.wait, st, e, s.want)
		}
	}
}

func TestDeviceExpiredToken(t *testing.T) {
	clk := &deviceClock{now: time.Now().UTC()}
	env := newDeviceEnv(t, func(c *Config) { c.Now = clk.Now; c.DeviceCodeTTL = 30 * time.Second })
	m := deviceAuth(t, env, "cli", nil)
	clk.Add(31 * time.Second)
	if st, e := poll(t, env, "cli", m["device_code"].(string)); st != 400 || e != errExpiredToken {
		t.Fatalf("poll after expiry: %d %s", st, e)
	}
	// The user code no longer works either.
	b := newBrowser(t, env)
	p := b.get("/device")
	action, v := p.form(t)
	v.Set("user_code", m["user_code"].(string))
	if p = b.post(action, v); p.status != 400 || !strings.Contains(p.body, "not valid or has expired") {
		t.Fatalf("expired user code: %d %s", p.status, p.body)
	}
}

func TestDeviceAccessDenied(t *testing.T) {
	env := newDeviceEnv(t)
	m := deviceAuth(t, env, "cli", nil)
	p := approveDevice(t, env, newBrowser(t, env), m["verification_uri_complete"].(string), "deny")
	if p.status != 200 || !strings.Contains(p.body, "Access denied") {
		t.Fatalf("after deny: %d %s", p.status, p.body)
	}
	if st, e := poll(t, env, "cli", m["device_code"].(string)); st != 400 || e != errAccessDenied {
		t.Fatalf("poll after deny: %d %s", st, e)
	}
}

func TestDeviceUserCodeEntry(t *testing.T) {
	env := newDeviceEnv(t)
	m := deviceAuth(t, env, "cli", nil)
	code := m["user_code"].(string)
	b := newBrowser(t, env)
	enter := func(v string) *page {
		p := b.get("/device")
		action, form := p.form(t)
		form.Set("user_code", v)
		return b.post(action, form)
	}
	if p := enter("BBBB-BBBB"); p.status != 400 || !strings.Contains(p.body, `class="error"`) {
		t.Fatalf("wrong code: %d %s", p.status, p.body)
	}
	// Case, dashes and spaces are ignored (§6.1): the code is accepted and
	// the user is sent to sign in.
	sloppy := strings.ToLower(code[:2]) + " " + strings.ReplaceAll(code[2:], "-", "")
	if p := enter(sloppy); !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("normalised code: %d %s", p.status, p.body)
	}
	// Without the entry form's CSRF token the code is not even looked up.
	if p := b.post("/device", url.Values{"user_code": {code}}); p.status != 403 {
		t.Fatalf("without CSRF: %d", p.status)
	}
	// A confidential or unregistered client, a wrong scope, the wrong grant.
	for _, tc := range []struct {
		form url.Values
		user string
		want string
	}{
		{url.Values{"client_id": {"nobody"}}, "", "invalid_client"},
		{url.Values{"client_id": {"cli"}, "scope": {"write"}}, "", "invalid_scope"},
		{url.Values{"client_id": {"demo"}}, "", "unauthorized_client"},
		{url.Values{}, "app", "invalid_client"},
	} {
		resp := env.post("/device_authorization", tc.form, tc.user, "wrong")
		if got := decode(t, resp); got["error"] != tc.want {
			t.Errorf("%v: %d %v, want %s", tc.form, resp.StatusCode, got, tc.want)
		}
	}
	// Another client cannot redeem the device code.
	if st, e := poll(t, env, "tv", m["device_code"].(string)); st != 400 || e != "invalid_grant" {
		t.Fatalf("other client: %d %s", st, e)
	}
}

// A revocation of the user's tokens between the approval and the device's
// next poll (sign out everywhere, an admin's revocation) takes the approval
// with it: the poll gets access_denied, not tokens for that user.
func TestDeviceApprovalRevokedBeforeThePoll(t *testing.T) {
	env := newDeviceEnv(t)
	m := deviceAuth(t, env, "cli", nil)
	complete := m["verification_uri_complete"].(string)
	if p := approveDevice(t, env, newBrowser(t, env), complete, "allow"); p.status != 200 {
		t.Fatalf("approval: %d %s", p.status, p.body)
	}
	if _, err := env.store.RevokeTokens(t.Context(), storage.TokenFilter{Subject: env.alice.ID}); err != nil {
		t.Fatal(err)
	}
	if st, e := poll(t, env, "cli", m["device_code"].(string)); st != 400 || e != "access_denied" {
		t.Fatalf("poll after the revocation: %d %s, want 400 access_denied", st, e)
	}
	// Without a revocation the same approval gives tokens.
	m = deviceAuth(t, env, "cli", nil)
	approveDevice(t, env, newBrowser(t, env), m["verification_uri_complete"].(string), "allow")
	if st, e := poll(t, env, "cli", m["device_code"].(string)); st != 200 {
		t.Fatalf("poll: %d %s", st, e)
	}
}

// markHookStore runs after, once, right after a poll has read an
// approval's mark.
type markHookStore struct {
	storage.Store
	after atomic.Pointer[func()]
}

func (h *markHookStore) GetToken(ctx context.Context, kind storage.TokenKind, sig string) (storage.Token, error) {
	t, err := h.Store.GetToken(ctx, kind, sig)
	if kind == deviceApprovalKind {
		if f := h.after.Swap(nil); f != nil {
			(*f)()
		}
	}
	return t, err
}

// A revocation that commits after the poll read the approval's mark, and
// before the poll's grant commits, still wins: the grant's
// compare-and-swap consumes the mark, and finds it gone.
func TestDeviceApprovalRevokedDuringThePoll(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(testing.TB) storage.Store
	}{{"Memory", openMemory}, {"SQLite", openSQLite}} {
		t.Run(tc.name, func(t *testing.T) {
			hs := &markHookStore{Store: tc.open(t)}
			env := newDeviceEnvOn(t, hs)
			m := deviceAuth(t, env, "cli", nil)
			approveDevice(t, env, newBrowser(t, env), m["verification_uri_complete"].(string), "allow")
			revoke := func() {
				if _, err := hs.Store.RevokeTokens(context.Background(), storage.TokenFilter{Subject: env.alice.ID}); err != nil {
					t.Error(err)
				}
			}
			hs.after.Store(&revoke)
			if st, e := poll(t, env, "cli", m["device_code"].(string)); st != 400 || e != "access_denied" {
				t.Fatalf("poll with a revocation after its mark was read: %d %s, want 400 access_denied", st, e)
			}
			if ts, err := hs.Store.ListTokens(t.Context(), storage.AccessToken, env.alice.ID); err != nil || len(ts) != 0 {
				t.Fatalf("alice's access tokens after the revocation: %d %v", len(ts), err)
			}
		})
	}
}

// The mark must name the user whose session the approval holds; and an
// approval recorded before marks existed (no "marked") needs none.
func TestDeviceApprovalMarkNamesTheUser(t *testing.T) {
	env := newDeviceEnv(t)
	m := deviceAuth(t, env, "cli", nil)
	approveDevice(t, env, newBrowser(t, env), m["verification_uri_complete"].(string), "allow")
	sig := hashHandle(m["device_code"].(string))
	mark, err := env.store.GetToken(t.Context(), deviceApprovalKind, sig)
	if err != nil || mark.Subject != env.alice.ID {
		t.Fatalf("mark %+v %v", mark, err)
	}
	if err := env.store.DeleteToken(t.Context(), deviceApprovalKind, sig); err != nil {
		t.Fatal(err)
	}
	mark.Subject = env.bob.ID
	if err := env.store.CreateToken(t.Context(), mark); err != nil {
		t.Fatal(err)
	}
	if st, e := poll(t, env, "cli", m["device_code"].(string)); st != 400 || e != "access_denied" {
		t.Fatalf("poll with bob's mark on alice's approval: %d %s", st, e)
	}

	m = deviceAuth(t, env, "cli", nil)
	approveDevice(t, env, newBrowser(t, env), m["verification_uri_complete"].(string), "allow")
	sig = hashHandle(m["device_code"].(string))
	if err := env.store.DeleteToken(t.Context(), deviceApprovalKind, sig); err != nil {
		t.Fatal(err)
	}
	// As an older instance recorded it: the same decision without the flag.
	rec, err := env.store.GetToken(t.Context(), storage.DeviceCode, sig)
	if err != nil {
		t.Fatal(err)
	}
	var d deviceDecision
	if err := json.Unmarshal(rec.Successor, &d); err != nil || !d.Marked {
		t.Fatalf("decision %s: %v", rec.Successor, err)
	}
	d.Marked = false
	legacy, _ := json.Marshal(d)
	if bytes.Contains(legacy, []byte("marked")) {
		t.Fatalf("legacy decision %s", legacy)
	}
	if err := env.store.DeleteToken(t.Context(), storage.DeviceCode, sig); err != nil {
		t.Fatal(err)
	}
	rec.Active, rec.Successor = false, legacy
	if err := env.store.CreateToken(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	if st, e := poll(t, env, "cli", m["device_code"].(string)); st != 200 {
		t.Fatalf("poll of an approval without a mark: %d %s", st, e)
	}
}

// A user who must change a reset password on the way keeps the device's
// user code: once the new password is set, the confirmation page follows.
func TestDeviceSignInThroughPasswordChange(t *testing.T) {
	env := newDeviceEnv(t)
	if _, err := env.store.UpdateUser(t.Context(), env.alice.ID, func(u storage.User) (storage.User, error) {
		u.MustChangePassword = true
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
	code := deviceAuth(t, env, "cli", nil)["user_code"].(string)
	b := newBrowser(t, env)
	p := b.get("/device")
	action, form := p.form(t)
	form.Set("user_code", code)
	p = b.post(action, form)
	if !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("entry: %d %s", p.status, p.body)
	}
	p = b.signIn(p, "alice@example.com", alicePW)
	if !strings.Contains(p.body, `name="new_password"`) || !strings.Contains(p.body, `value="`+code+`"`) {
		t.Fatalf("the change form does not carry the user code: %d %s", p.status, p.body)
	}
	const chosen = "a brand new passphrase 77"
	action, form = p.form(t)
	form.Set("new_password", chosen)
	form.Set("confirm_password", chosen+"x")
	p = b.post(action, form)
	if p.status != 400 || !strings.Contains(p.body, `value="`+code+`"`) {
		t.Fatalf("the change form shown again loses the user code: %d %s", p.status, p.body)
	}
	action, form = p.form(t)
	form.Set("new_password", chosen)
	form.Set("confirm_password", chosen)
	p = b.post(action, form)
	if p.status != 200 || !strings.Contains(p.body, `value="`+code+`"`) || !strings.Contains(p.body, `name="user_code"`) {
		t.Fatalf("after the change: want the device page with the code, got %d %s", p.status, p.body)
	}
	action, form = p.form(t)
	form.Set("user_code", code)
	p = b.post(action, form)
	if p.status != 200 || !strings.Contains(p.body, code) || !strings.Contains(p.body, `value="allow"`) {
		t.Fatalf("confirmation page: %d %s", p.status, p.body)
	}
}

func TestDeviceWrongUserCodesThrottledPerAddress(t *testing.T) {
	env := newDeviceEnv(t, func(c *Config) {
		c.Throttle.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	})
	m := deviceAuth(t, env, "cli", nil)
	b := newBrowser(t, env)
	p := b.get("/device")
	action, form := p.form(t)
	enter := func(ip, code string) *page {
		form.Set("user_code", code)
		req, _ := http.NewRequest(http.MethodPost, env.srv.URL+action, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", ip)
		return b.do(req)
	}
	wrong := []string{"BBBB-BBBB", "CCCC-CCCC"}
	throttled, checked := 0, 0
	for i := range 1000 {
		p := enter("203.0.113.7", wrong[i%2])
		switch p.status {
		case http.StatusTooManyRequests:
			throttled++
			if p.header.Get("Retry-After") == "" || !strings.Contains(p.body, "Too many wrong codes") {
				t.Fatalf("429 page: %v %s", p.header, p.body)
			}
		case http.StatusBadRequest:
			checked++
		default:
			t.Fatalf("attempt %d: %d", i, p.status)
		}
	}
	if throttled < 900 || checked > 100 {
		t.Fatalf("1000 wrong codes: %d checked, %d throttled", checked, throttled)
	}
	// Even the right code is refused from that address now...
	if p := enter("203.0.113.7", m["user_code"].(string)); p.status != http.StatusTooManyRequests {
		t.Fatalf("right code from the throttled address: %d", p.status)
	}
	// ...but another address is unaffected.
	if p := enter("198.51.100.9", m["user_code"].(string)); p.status != 200 || !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("other address: %d %s", p.status, p.body)
	}
}

func TestDeviceMetadata(t *testing.T) {
	env := newDeviceEnv(t)
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		resp, err := http.Get(env.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		m := decode(t, resp)
		if m["device_authorization_endpoint"] != env.issuer+"/device_authorization" {
			t.Errorf("%s: device_authorization_endpoint = %v", path, m["device_authorization_endpoint"])
		}
		found := false
		for _, g := range m["grant_types_supported"].([]any) {
			found = found || g == grantDeviceCode
		}
		if !found {
			t.Errorf("%s: grant_types_supported lacks the device grant", path)
		}
	}
}

func TestUserCodeFormat(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		c, err := newUserCode()
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := normalizeUserCode(formatUserCode(c)); !ok || n != c {
			t.Fatalf("%q does not round-trip", c)
		}
		seen[c] = true
	}
	if len(seen) < 199 {
		t.Fatalf("only %d distinct codes of 200", len(seen))
	}
	for _, bad := range []string{"", "BCDF", "BCDF-GHJKL", "ABCD-EFGH", "BCDF-GHJ1", "ＢCDF-GHJK"} {
		if _, ok := normalizeUserCode(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A poll that fails after the user approved (here a resource the client may
// not ask for: invalid_target) does not use the device code up: the next
// poll gets the tokens, and only once.
func TestDeviceApprovalSurvivesAFailedPoll(t *testing.T) {
	env := newDeviceEnv(t)
	m := deviceAuth(t, env, "cli", nil)
	code := m["device_code"].(string)
	approveDevice(t, env, newBrowser(t, env), m["verification_uri_complete"].(string), "allow")
	resp := env.post("/token", url.Values{"grant_type": {grantDeviceCode}, "device_code": {code}, "client_id": {"cli"},
		"resource": {"https://not-allowed.example/api"}}, "", "")
	if got := decode(t, resp); resp.StatusCode != 400 || got["error"] != "invalid_target" {
		t.Fatalf("poll with a refused resource: %d %v", resp.StatusCode, got)
	}
	if st, e := poll(t, env, "cli", code); st != 200 {
		t.Fatalf("poll after the failed one: %d %s", st, e)
	}
	if st, e := poll(t, env, "cli", code); st != 400 || e != errInvalidGrant {
		t.Fatalf("second successful poll: %d %s", st, e)
	}
}
