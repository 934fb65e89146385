package adminapi_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/authserver/adminapi"
	"github.com/oauthkit/authserver/authserver"
	"github.com/oauthkit/authserver/storage"
)

// tokenError posts a token request and returns the status and the error
// response's error and error_description.
func (e *env) tokenError(form url.Values) (int, string, string) {
	e.t.Helper()
	resp, err := http.PostForm(e.pub.URL+"/token", form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var er struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&er)
	return resp.StatusCode, er.Error, er.Description
}

// submit posts the form of page (its hidden fields plus fields) to its
// action, relative to base.
func submit(t *testing.T, c *http.Client, base *url.URL, page string, fields url.Values) (*http.Response, string) {
	t.Helper()
	form := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		form.Set(m[1], htmlUnescape(m[2]))
	}
	for k, v := range fields {
		form[k] = v
	}
	m := actionRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form in %s", page)
	}
	ref, _ := url.Parse(htmlUnescape(m[1]))
	return fetch(t, c, http.MethodPost, base.ResolveReference(ref).String(), form)
}

func TestForcedPasswordChange(t *testing.T) {
	ce := newConsoleEnv(t)
	const reset = "temporary password 2024!"
	const chosen = "my own new passphrase 99"
	base := "/admin/v1/users/" + ce.alice.ID
	etag := ce.call(http.MethodGet, base, nil).want(t, http.StatusOK).header.Get("ETag")
	ce.call(http.MethodPut, base, map[string]any{"email": "alice@example.com", "name": "Alice A.", "roles": []string{"admin"}}).want(t, http.StatusOK)

	t.Run("StaleIfMatchIs412", func(t *testing.T) {
		ce.call(http.MethodPost, base+"/password", map[string]any{"password": reset, "force_change": true}, "If-Match", etag).want(t, http.StatusPreconditionFailed)
	})
	t.Run("NeedsAnAdminToken", func(t *testing.T) {
		ce.callAs("", http.MethodPost, base+"/password", map[string]any{"password": reset, "force_change": true}).want(t, http.StatusUnauthorized)
		tok := ce.clientToken("svc", svcSecret, "read")
		ce.callAs(tok, http.MethodPost, base+"/password", map[string]any{"password": reset, "force_change": true}).want(t, http.StatusForbidden)
		ce.call(http.MethodPost, "/admin/v1/users/nobody/password", map[string]any{"password": reset, "force_change": true}).want(t, http.StatusNotFound)
		ce.call(http.MethodPost, base+"/password", `{"password":"`+reset+`","force_change":"yes"}`).want(t, http.StatusBadRequest)
	})

	// Alice has a browser session before the reset; the reset ends it.
	before := browser(t)
	if resp, _ := ce.signIn(t, before, "alice@example.com", alicePW); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in before the reset: %d", resp.StatusCode)
	}
	var ss adminapi.List[adminapi.Session]
	ce.call(http.MethodGet, base+"/sessions", nil).want(t, http.StatusOK).decode(t, &ss)
	if len(ss.Items) != 1 {
		t.Fatalf("sessions before the reset: %+v", ss.Items)
	}

	var u adminapi.User
	ce.call(http.MethodPost, base+"/password", map[string]any{"password": reset, "force_change": true}).want(t, http.StatusOK).decode(t, &u)
	if !u.MustChangePassword {
		t.Fatalf("after the reset: %+v", u)
	}
	ce.call(http.MethodGet, base+"/sessions", nil).want(t, http.StatusOK).decode(t, &ss)
	if len(ss.Items) != 0 {
		t.Fatalf("the forced reset left sessions: %+v", ss.Items)
	}

	t.Run("PasswordGrantRefusesUntilChanged", func(t *testing.T) {
		st, code, desc := ce.tokenError(url.Values{"grant_type": {"password"}, "username": {"alice@example.com"}, "password": {reset}, "client_id": {"app"}, "scope": {"read"}})
		if st != http.StatusBadRequest || code != "invalid_grant" || !strings.Contains(desc, "must be changed") {
			t.Fatalf("password grant with the reset password: %d %s %q", st, code, desc)
		}
		// A wrong password still gets the usual answer, which tells nothing.
		_, _, desc = ce.tokenError(url.Values{"grant_type": {"password"}, "username": {"alice@example.com"}, "password": {"wrong password 123"}, "client_id": {"app"}, "scope": {"read"}})
		if strings.Contains(desc, "changed") {
			t.Fatalf("a wrong password learns of the reset: %q", desc)
		}
	})

	c := browser(t)
	resp, page := ce.signIn(t, c, "alice@example.com", reset)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Choose a new password") || !strings.Contains(page, `name="new_password"`) {
		t.Fatalf("after the reset password: %d %s", resp.StatusCode, page)
	}
	if strings.Contains(page, reset) {
		t.Fatal("the change form holds the password")
	}
	pub := resp.Request.URL
	t.Run("ChangeFormValidates", func(t *testing.T) {
		r, p := submit(t, c, pub, page, url.Values{"new_password": {chosen}, "confirm_password": {chosen + "x"}})
		if r.StatusCode != http.StatusBadRequest || !strings.Contains(p, "differ") {
			t.Fatalf("mismatch: %d %s", r.StatusCode, p)
		}
		r, p = submit(t, c, pub, page, url.Values{"new_password": {reset}, "confirm_password": {reset}})
		if r.StatusCode != http.StatusBadRequest || !strings.Contains(p, "other than") {
			t.Fatalf("same password: %d %s", r.StatusCode, p)
		}
		r, p = submit(t, c, pub, page, url.Values{"new_password": {"short"}, "confirm_password": {"short"}})
		if r.StatusCode != http.StatusBadRequest || !strings.Contains(p, "cannot be used") {
			t.Fatalf("short password: %d %s", r.StatusCode, p)
		}
		bad := url.Values{"new_password": {chosen}, "confirm_password": {chosen}, "csrf_token": {"forged"}}
		if r, _ := submit(t, c, pub, page, bad); r.StatusCode != http.StatusForbidden {
			t.Fatalf("forged CSRF token: %d", r.StatusCode)
		}
	})
	resp, done := submit(t, c, pub, page, url.Values{"new_password": {chosen}, "confirm_password": {chosen}})
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Request.URL.String(), ce.ui.URL) {
		t.Fatalf("after the change the authorization goes on to the console: %d at %s\n%s", resp.StatusCode, resp.Request.URL, done)
	}
	t.Run("HandleIsSingleUse", func(t *testing.T) {
		r, p := submit(t, c, pub, page, url.Values{"new_password": {chosen + "2"}, "confirm_password": {chosen + "2"}})
		// The authorization request it continued is completed too.
		if r.StatusCode != http.StatusBadRequest || !(strings.Contains(p, "ran out") || strings.Contains(p, "already completed")) {
			t.Fatalf("second use of the change form: %d %s", r.StatusCode, p)
		}
	})
	ce.call(http.MethodGet, base, nil).want(t, http.StatusOK).decode(t, &u)
	if u.MustChangePassword {
		t.Fatal("must_change_password still set after the change")
	}
	if st, _ := ce.passwordGrant("alice@example.com", chosen); st != http.StatusOK {
		t.Fatalf("password grant with the new password: %d", st)
	}
	if st, _ := ce.passwordGrant("alice@example.com", reset); st == http.StatusOK {
		t.Fatal("the reset password still works")
	}
	if !strings.Contains(ce.audit.String(), `"event":"password_changed"`) {
		t.Fatal("no password_changed audit event")
	}
	for _, s := range []string{reset, chosen} {
		if strings.Contains(ce.audit.String(), s) {
			t.Fatal("a password is in the audit log")
		}
	}
	// A reset without force_change clears the flag.
	ce.call(http.MethodPost, base+"/password", map[string]any{"password": reset, "force_change": true}).want(t, http.StatusOK)
	ce.call(http.MethodPost, base+"/password", map[string]any{"password": reset}).want(t, http.StatusOK).decode(t, &u)
	if st, _ := ce.passwordGrant("alice@example.com", reset); u.MustChangePassword || st != http.StatusOK {
		t.Fatalf("plain reset: %+v, password grant %d", u, st)
	}
}

// Setting the password again, with or without force_change, ends the change
// forms still open for the earlier reset password: they are deleted, and
// one submitted anyway cannot replace the administrator's password.
func TestSetPasswordEndsPendingChanges(t *testing.T) {
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprintf("ForceChange=%v", force), func(t *testing.T) {
			ce := newConsoleEnv(t)
			const reset, again, chosen = "temporary password 2024!", "another temporary 2025!", "my own new passphrase 99"
			base := "/admin/v1/users/" + ce.alice.ID
			ce.call(http.MethodPost, base+"/password", map[string]any{"password": reset, "force_change": true}).want(t, http.StatusOK)
			c := browser(t)
			resp, page := ce.signIn(t, c, "alice@example.com", reset)
			if !strings.Contains(page, `name="new_password"`) {
				t.Fatalf("no change form: %d", resp.StatusCode)
			}
			ce.call(http.MethodPost, base+"/password", map[string]any{"password": again, "force_change": force}).want(t, http.StatusOK)
			if ts, err := ce.store.ListTokens(t.Context(), storage.TokenKind("password_change"), ce.alice.ID); err != nil || len(ts) != 0 {
				t.Fatalf("pending changes after set-password: %d %v", len(ts), err)
			}
			r, p := submit(t, c, resp.Request.URL, page, url.Values{"new_password": {chosen}, "confirm_password": {chosen}})
			if r.StatusCode != http.StatusBadRequest || strings.Contains(p, "You are signed in") {
				t.Fatalf("the old change form after set-password: %d", r.StatusCode)
			}
			if st, _ := ce.passwordGrant("alice@example.com", chosen); st == http.StatusOK {
				t.Fatal("the old change form set the password")
			}
		})
	}
}

func TestSessionsAndRevocationByGrant(t *testing.T) {
	ce := newConsoleEnv(t)
	base := "/admin/v1/users/" + ce.alice.ID
	c := browser(t)
	if resp, _ := ce.signIn(t, c, "alice@example.com", alicePW); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	var ss adminapi.List[adminapi.Session]
	ce.call(http.MethodGet, base+"/sessions", nil).want(t, http.StatusOK).decode(t, &ss)
	if len(ss.Items) != 1 {
		t.Fatalf("sessions: %+v", ss.Items)
	}
	s := ss.Items[0]
	exp, err := time.Parse(time.RFC3339, s.ExpiresAt)
	if err != nil || !exp.After(time.Now()) || s.ID == "" || !slices.Equal(s.Clients, []string{"admin-console"}) || len(s.Grants) != 1 {
		t.Fatalf("session %+v", s)
	}
	// The ID is the public sid, not the cookie's value or its hash.
	for _, ck := range c.Jar.Cookies(mustURL(t, ce.pub.URL)) {
		if strings.Contains(ck.Value, s.ID) || strings.Contains(s.ID, ck.Value) {
			t.Fatalf("the session's id %q is its cookie", s.ID)
		}
	}

	t.Run("AuthAndNotFound", func(t *testing.T) {
		ce.callAs("", http.MethodGet, base+"/sessions", nil).want(t, http.StatusUnauthorized)
		ce.callAs("", http.MethodDelete, base+"/sessions/"+s.ID, nil).want(t, http.StatusUnauthorized)
		tok := ce.clientToken("svc", svcSecret, "read")
		ce.callAs(tok, http.MethodGet, base+"/sessions", nil).want(t, http.StatusForbidden)
		ce.callAs(tok, http.MethodDelete, base+"/sessions/"+s.ID, nil).want(t, http.StatusForbidden)
		ce.callAs(tok, http.MethodPost, "/admin/v1/tokens/revoke", map[string]any{"grant_id": s.Grants[0].GrantID}).want(t, http.StatusForbidden)
		ce.call(http.MethodGet, "/admin/v1/users/nobody/sessions", nil).want(t, http.StatusNotFound)
		ce.call(http.MethodDelete, "/admin/v1/users/nobody/sessions/"+s.ID, nil).want(t, http.StatusNotFound)
		ce.call(http.MethodDelete, base+"/sessions/no-such-session", nil).want(t, http.StatusNotFound)
		// Another user's session is not found under bob.
		ce.call(http.MethodDelete, "/admin/v1/users/u-bob/sessions/"+s.ID, nil).want(t, http.StatusNotFound)
	})

	t.Run("RevokeByGrant", func(t *testing.T) {
		// bob's tokens are another grant, and survive.
		_, bobRefresh := ce.passwordGrant("bob@example.com", bobPassword)
		var n adminapi.Count
		ce.call(http.MethodPost, "/admin/v1/tokens/revoke", map[string]any{"grant_id": s.Grants[0].GrantID}).want(t, http.StatusOK).decode(t, &n)
		if n.Revoked < 1 {
			t.Fatalf("revoked %d", n.Revoked)
		}
		ce.call(http.MethodGet, base+"/sessions", nil).want(t, http.StatusOK).decode(t, &ss)
		if len(ss.Items) != 1 || len(ss.Items[0].Grants) != 0 {
			t.Fatalf("after revoking the grant: %+v", ss.Items)
		}
		if st, _ := ce.tokenForm(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {bobRefresh}, "client_id": {"app"}}); st != http.StatusOK {
			t.Fatalf("another grant's refresh token: %d", st)
		}
		ce.call(http.MethodPost, "/admin/v1/tokens/revoke", map[string]any{"grant_id": "no-such-grant"}).want(t, http.StatusOK).decode(t, &n)
		if n.Revoked != 0 {
			t.Fatalf("unknown grant revoked %d", n.Revoked)
		}
	})

	t.Run("EndOneSession", func(t *testing.T) {
		other := browser(t)
		if resp, _ := ce.signIn(t, other, "alice@example.com", alicePW); resp.StatusCode != http.StatusOK {
			t.Fatalf("second sign-in: %d", resp.StatusCode)
		}
		ce.call(http.MethodGet, base+"/sessions", nil).want(t, http.StatusOK).decode(t, &ss)
		if len(ss.Items) != 2 {
			t.Fatalf("two browsers, %d sessions", len(ss.Items))
		}
		ce.call(http.MethodDelete, base+"/sessions/"+s.ID, nil).want(t, http.StatusNoContent)
		ce.call(http.MethodDelete, base+"/sessions/"+s.ID, nil).want(t, http.StatusNotFound)
		ce.call(http.MethodGet, base+"/sessions", nil).want(t, http.StatusOK).decode(t, &ss)
		if len(ss.Items) != 1 || ss.Items[0].ID == s.ID {
			t.Fatalf("after ending %s: %+v", s.ID, ss.Items)
		}
		// The ended browser must sign in again at the public listener.
		resp, page := fetch(t, c, http.MethodGet, ce.pub.URL+"/consents", nil)
		if strings.Contains(page, "alice@example.com") {
			t.Fatalf("the ended session still works: %d", resp.StatusCode)
		}
		if _, page := fetch(t, other, http.MethodGet, ce.pub.URL+"/consents", nil); !strings.Contains(page, "alice@example.com") {
			t.Fatal("the other session ended too")
		}
	})
}

func TestUsersByEmailPrefix(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC()
	var want []string
	for i := range 40 {
		email := fmt.Sprintf("User%02d@Example.com", i)
		u := storage.User{ID: fmt.Sprintf("id-%03d", 99-i), Email: email, PasswordHash: e.alice.PasswordHash, CreatedAt: now, UpdatedAt: now}
		if err := e.store.CreateUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(strings.ToLower(email), "user1") {
			want = append(want, strings.ToLower(email))
		}
	}
	var got []string
	cursor := ""
	for range 10 {
		var l adminapi.List[adminapi.User]
		e.call(http.MethodGet, "/admin/v1/users?email_prefix=USER1&limit=3&cursor="+cursor, nil).want(t, http.StatusOK).decode(t, &l)
		for _, u := range l.Items {
			got = append(got, strings.ToLower(u.Email))
		}
		if cursor = l.NextCursor; cursor == "" {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages gave %v, want %v", got, want)
	}
	e.call(http.MethodGet, "/admin/v1/users?email_prefix=%00", nil).want(t, http.StatusBadRequest)
	e.call(http.MethodGet, "/admin/v1/users?email_prefix=%ff", nil).want(t, http.StatusBadRequest)
	e.callAs("", http.MethodGet, "/admin/v1/users?email_prefix=user", nil).want(t, http.StatusUnauthorized)
}

// Ending a user's sessions through the admin API or the console sends a
// logout token to each client that got an ID token in them (Back-Channel
// Logout 1.0), as a sign-out on the public pages does: one session by sid,
// all of them (also when the session record itself is already gone), a
// revocation of all of a user's tokens, a disabled or deleted user's, a
// forced password reset's.
func TestAdminEndedSessionsSendLogoutTokens(t *testing.T) {
	got := make(chan string, 8)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err == nil {
			got <- r.PostForm.Get("logout_token")
		}
	}))
	t.Cleanup(recv.Close)
	// The receiver is on loopback, which the server refuses to call unless
	// told otherwise.
	ce := newConsoleEnv(t, func(c *authserver.Config) { c.InsecureAllowPrivateClientURLs = true })
	t.Cleanup(ce.srv.WaitBackchannel)
	now := time.Now().UTC()
	rp := storage.Client{ID: "rp", Public: true, GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"},
		RedirectURIs: []string{"https://rp.example/cb"}, BackchannelLogoutURI: recv.URL + "/bc", SkipConsent: true, CreatedAt: now, UpdatedAt: now}
	if err := ce.store.CreateClient(t.Context(), rp); err != nil {
		t.Fatal(err)
	}
	// signIn starts a browser session of the user in which rp gets a code
	// with the openid scope (which records rp as a client to notify); it
	// returns the session's sid.
	sessions := func(id string) []string {
		t.Helper()
		var ss adminapi.List[adminapi.Session]
		ce.call(http.MethodGet, "/admin/v1/users/"+id+"/sessions", nil).want(t, http.StatusOK).decode(t, &ss)
		var out []string
		for _, s := range ss.Items {
			out = append(out, s.ID)
		}
		return out
	}
	signIn := func(email, pw, id string) string {
		t.Helper()
		before := sessions(id)
		c := browser(t)
		ce.signIn(t, c, email, pw) // the console may refuse the user: the session exists
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, _ := fetch(t, c, http.MethodGet, ce.pub.URL+"/authorize?"+url.Values{"response_type": {"code"}, "client_id": {"rp"},
			"redirect_uri": {"https://rp.example/cb"}, "scope": {"openid"}, "state": {"state-123"}, "nonce": {"n-1"},
			"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}.Encode(), nil)
		loc, err := resp.Location()
		if err != nil || loc.Query().Get("code") == "" {
			t.Fatalf("authorize: %d %v", resp.StatusCode, loc)
		}
		after := slices.DeleteFunc(sessions(id), func(sid string) bool { return slices.Contains(before, sid) })
		if len(after) != 1 {
			t.Fatalf("new sessions of %s: %v", id, after)
		}
		return after[0]
	}
	// told waits for rp's logout token and checks it is for the user's
	// session sid.
	told := func(what, id, sid string) {
		t.Helper()
		select {
		case lt := <-got:
			parts := strings.Split(lt, ".")
			var c map[string]any
			if b, err := base64.RawURLEncoding.DecodeString(parts[min(1, len(parts)-1)]); err != nil || json.Unmarshal(b, &c) != nil {
				t.Fatalf("%s: not a logout token: %q", what, lt)
			}
			if c["sub"] != id || c["sid"] != sid || c["events"] == nil {
				t.Fatalf("%s: logout token claims %v, want sub %s and sid %s", what, c, id, sid)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no logout token", what)
		}
	}
	alice, bob := ce.alice.ID, "u-bob"
	base := "/admin/v1/users/" + alice

	// The console, as alice (an admin), on bob.
	admin := browser(t)
	_, page := ce.signIn(t, admin, "alice@example.com", alicePW)
	csrf := csrfOf(t, page)
	sid := signIn("bob@example.com", bobPassword, bob)
	if resp, _ := fetch(t, admin, http.MethodPost, ce.ui.URL+"/admin/ui/users/u-bob/sessions/revoke", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("console, end sessions: %d", resp.StatusCode)
	}
	told("console, end sessions", bob, sid)
	sid = signIn("bob@example.com", bobPassword, bob)
	if resp, _ := fetch(t, admin, http.MethodPost, ce.ui.URL+"/admin/ui/users/u-bob/disable", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("console, disable: %d", resp.StatusCode)
	}
	told("console, disable", bob, sid)
	ce.call(http.MethodPost, "/admin/v1/users/u-bob/enable", nil).want(t, http.StatusOK)

	// The admin API.
	sid = signIn("alice@example.com", alicePW, alice)
	ce.call(http.MethodDelete, base+"/sessions/"+sid, nil).want(t, http.StatusNoContent)
	told("DELETE /sessions/{sid}", alice, sid)

	sid = signIn("alice@example.com", alicePW, alice)
	var n adminapi.Count
	ce.call(http.MethodDelete, base+"/sessions", nil).want(t, http.StatusOK).decode(t, &n)
	told("DELETE /sessions", alice, sid)
	if n.Revoked < 2 { // the session and the grant's code at least
		t.Fatalf("DELETE /sessions revoked %d", n.Revoked)
	}

	// A session whose record is already gone (a disabled user's is dropped
	// when next seen): its clients are still told.
	sid = signIn("alice@example.com", alicePW, alice)
	ts, err := ce.store.ListTokens(t.Context(), storage.BrowserSession, alice)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range ts {
		if tk.RequestID == sid {
			if err := ce.store.DeleteToken(t.Context(), storage.BrowserSession, tk.Signature); err != nil {
				t.Fatal(err)
			}
		}
	}
	if slices.Contains(sessions(alice), sid) {
		t.Fatal("the session record is still there")
	}
	ce.call(http.MethodDelete, base+"/sessions", nil).want(t, http.StatusOK)
	told("DELETE /sessions after the record went", alice, sid)

	sid = signIn("alice@example.com", alicePW, alice)
	ce.call(http.MethodPost, "/admin/v1/tokens/revoke", map[string]any{"user_id": alice}).want(t, http.StatusOK)
	told("POST /tokens/revoke {user_id}", alice, sid)

	sid = signIn("alice@example.com", alicePW, alice)
	ce.call(http.MethodPost, base+"/disable", nil).want(t, http.StatusOK)
	told("disable", alice, sid)
	ce.call(http.MethodPost, base+"/enable", nil).want(t, http.StatusOK)

	sid = signIn("bob@example.com", bobPassword, bob)
	ce.call(http.MethodDelete, "/admin/v1/users/u-bob", nil).want(t, http.StatusNoContent)
	told("DELETE /users/{id}", bob, sid)

	sid = signIn("alice@example.com", alicePW, alice)
	ce.call(http.MethodPost, base+"/password", map[string]any{"password": "a new password, long enough", "force_change": true}).want(t, http.StatusOK)
	told("set-password with force_change", alice, sid)

	select {
	case lt := <-got:
		t.Fatalf("an extra logout token: %q", lt)
	case <-time.After(200 * time.Millisecond):
	}
}
