package adminapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/authserver/adminapi"
	"github.com/oauthkit/authserver/storage"
)

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	e.call(http.MethodGet, "/admin/v1/users", nil).want(t, http.StatusOK)

	t.Run("NoTokenIs401", func(t *testing.T) {
		r := e.callAs("", http.MethodGet, "/admin/v1/users", nil).want(t, http.StatusUnauthorized)
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("GarbageTokenIs401", func(t *testing.T) {
		e.callAs("not.a.jwt", http.MethodGet, "/admin/v1/clients", nil).want(t, http.StatusUnauthorized)
	})
	t.Run("TokenWithoutAdminScopeIs403", func(t *testing.T) {
		tok := e.clientToken("svc", svcSecret, "read")
		e.callAs(tok, http.MethodGet, "/admin/v1/users", nil).want(t, http.StatusForbidden)
		e.callAs(tok, http.MethodPost, "/admin/v1/keys/rotate", nil).want(t, http.StatusForbidden)
	})
	t.Run("UnknownPathNeedsTokenToo", func(t *testing.T) {
		e.callAs("", http.MethodGet, "/admin/v1/nothing", nil).want(t, http.StatusUnauthorized)
		e.call(http.MethodGet, "/admin/v1/nothing", nil).want(t, http.StatusNotFound)
		e.call(http.MethodPatch, "/admin/v1/users", nil).want(t, http.StatusMethodNotAllowed)
	})
	t.Run("OpenAPIDocumentIsServedAsIs", func(t *testing.T) {
		r := e.callAs("", http.MethodGet, "/admin/openapi.json", nil).want(t, http.StatusOK)
		if string(r.body) != string(adminapi.OpenAPI) {
			t.Fatal("served document differs from the file")
		}
	})
	t.Run("NotOnThePublicListener", func(t *testing.T) {
		for _, p := range []string{"/admin/v1/users", "/admin/openapi.json", "/admin/v1/keys"} {
			req, _ := http.NewRequest(http.MethodGet, e.pub.URL+p, nil)
			req.Header.Set("Authorization", "Bearer "+e.token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("public %s: %d", p, resp.StatusCode)
			}
		}
	})
	t.Run("RevokedAdminTokenIs401", func(t *testing.T) {
		tok := e.clientToken("ops", opsSecret, "admin")
		e.callAs(tok, http.MethodGet, "/admin/v1/keys", nil).want(t, http.StatusOK)
		form := url.Values{"token": {tok}}
		req, _ := http.NewRequest(http.MethodPost, e.pub.URL+"/revoke", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("ops", opsSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: %d", resp.StatusCode)
		}
		e.callAs(tok, http.MethodGet, "/admin/v1/keys", nil).want(t, http.StatusUnauthorized)
		// The other admin token still works.
		e.call(http.MethodGet, "/admin/v1/keys", nil).want(t, http.StatusOK)
	})
}

func TestClients(t *testing.T) {
	e := newEnv(t)
	in := map[string]any{"id": "billing", "name": "Billing", "grant_types": []string{"client_credentials"}, "scopes": []string{"read"}}
	r := e.call(http.MethodPost, "/admin/v1/clients", in).want(t, http.StatusCreated)
	var c adminapi.Client
	r.decode(t, &c)
	if len(c.ClientSecret) < 32 || c.Secrets != 1 || c.Public {
		t.Fatalf("created %+v", c)
	}
	secret := c.ClientSecret
	e.clientToken("billing", secret, "read") // the generated secret works

	t.Run("SecretIsNeverShownAgain", func(t *testing.T) {
		r := e.call(http.MethodGet, "/admin/v1/clients/billing", nil).want(t, http.StatusOK)
		l := e.call(http.MethodGet, "/admin/v1/clients", nil).want(t, http.StatusOK)
		for _, b := range [][]byte{r.body, l.body} {
			if strings.Contains(string(b), secret) || strings.Contains(string(b), `"client_secret":`) {
				t.Fatalf("secret in %s", b)
			}
		}
	})
	t.Run("Validation", func(t *testing.T) {
		for name, body := range map[string]any{
			"UnknownGrant":        map[string]any{"id": "x", "grant_types": []string{"implicit"}},
			"NoGrant":             map[string]any{"id": "x"},
			"BadID":               map[string]any{"id": "a b", "grant_types": []string{"client_credentials"}},
			"CodeWithoutRedirect": map[string]any{"id": "x", "grant_types": []string{"authorization_code"}},
			"PublicIntrospect":    map[string]any{"id": "x", "public": true, "introspect": true, "grant_types": []string{"password"}},
			"BadRedirect":         map[string]any{"id": "x", "grant_types": []string{"authorization_code"}, "redirect_uris": []string{"http://evil.example/cb"}},
			// Not reachable as a path segment, or not storable everywhere.
			"DotID":    map[string]any{"id": ".", "grant_types": []string{"client_credentials"}},
			"DotDotID": map[string]any{"id": "..", "grant_types": []string{"client_credentials"}},
			"NULInID":  map[string]any{"id": "a\x00b", "grant_types": []string{"client_credentials"}},
			"NULName":  map[string]any{"id": "x", "name": "a\x00b", "grant_types": []string{"client_credentials"}},
		} {
			t.Run(name, func(t *testing.T) {
				e.call(http.MethodPost, "/admin/v1/clients", body).want(t, http.StatusUnprocessableEntity)
			})
		}
		e.call(http.MethodPost, "/admin/v1/clients", `{"id":`).want(t, http.StatusBadRequest)
		e.call(http.MethodPost, "/admin/v1/clients", `{"id":"x","grant_types":["password"],"secret_hash":"x"}`).want(t, http.StatusBadRequest)
		e.call(http.MethodPost, "/admin/v1/clients", `{"id":1}`).want(t, http.StatusBadRequest)
		e.call(http.MethodPost, "/admin/v1/clients", in).want(t, http.StatusConflict)
		// A client's own tokens carry its ID as sub: never a user's ID.
		if r := e.call(http.MethodPost, "/admin/v1/clients", map[string]any{"id": e.alice.ID, "grant_types": []string{"client_credentials"}}).
			want(t, http.StatusConflict); !strings.Contains(string(r.body), "a user's ID") {
			t.Errorf("a client with alice's ID: %s", r.body)
		}
		e.call(http.MethodPost, "/admin/v1/clients", "id=x", "Content-Type", "application/x-www-form-urlencoded").want(t, http.StatusUnsupportedMediaType)
		e.call(http.MethodPost, "/admin/v1/clients", `{"id":"`+strings.Repeat("x", 70<<10)+`"}`).want(t, http.StatusRequestEntityTooLarge)
	})
	t.Run("NotFound", func(t *testing.T) {
		e.call(http.MethodGet, "/admin/v1/clients/nope", nil).want(t, http.StatusNotFound)
		e.call(http.MethodPut, "/admin/v1/clients/nope", map[string]any{"grant_types": []string{"client_credentials"}}).want(t, http.StatusNotFound)
		e.call(http.MethodDelete, "/admin/v1/clients/nope", nil).want(t, http.StatusNotFound)
		e.call(http.MethodPost, "/admin/v1/clients/nope/secret", nil).want(t, http.StatusNotFound)
	})
	t.Run("PutIsIdempotentAndGuardedByIfMatch", func(t *testing.T) {
		etag := e.call(http.MethodGet, "/admin/v1/clients/billing", nil).want(t, http.StatusOK).header.Get("ETag")
		upd := map[string]any{"name": "Billing v2", "grant_types": []string{"client_credentials"}, "scopes": []string{"read", "write"}}
		r1 := e.call(http.MethodPut, "/admin/v1/clients/billing", upd, "If-Match", etag).want(t, http.StatusOK)
		etag2 := r1.header.Get("ETag")
		if etag2 == "" || etag2 == etag {
			t.Fatalf("ETag %q after change (was %q)", etag2, etag)
		}
		// The same PUT again: same state, same ETag.
		r2 := e.call(http.MethodPut, "/admin/v1/clients/billing", upd).want(t, http.StatusOK)
		if r2.header.Get("ETag") != etag2 || string(r2.body) != string(r1.body) {
			t.Fatalf("second PUT changed the resource: %s vs %s", r2.body, r1.body)
		}
		// A writer holding the old ETag loses.
		e.call(http.MethodPut, "/admin/v1/clients/billing", map[string]any{"grant_types": []string{"client_credentials"}}, "If-Match", etag).want(t, http.StatusPreconditionFailed)
		e.call(http.MethodDelete, "/admin/v1/clients/billing", nil, "If-Match", etag).want(t, http.StatusPreconditionFailed)
		e.call(http.MethodPost, "/admin/v1/clients/billing/secret", nil, "If-Match", etag).want(t, http.StatusPreconditionFailed)
		var got adminapi.Client
		e.call(http.MethodGet, "/admin/v1/clients/billing", nil).want(t, http.StatusOK).decode(t, &got)
		if got.Name != "Billing v2" || len(got.Scopes) != 2 {
			t.Fatalf("after the lost update: %+v", got)
		}
		e.call(http.MethodPut, "/admin/v1/clients/billing", map[string]any{"id": "other", "grant_types": []string{"client_credentials"}}).want(t, http.StatusUnprocessableEntity)
		e.call(http.MethodPut, "/admin/v1/clients/billing", map[string]any{"public": true, "grant_types": []string{"password"}}).want(t, http.StatusUnprocessableEntity)
	})
	t.Run("SecretRotation", func(t *testing.T) {
		var rot adminapi.Client
		e.call(http.MethodPost, "/admin/v1/clients/billing/secret", map[string]any{"keep_old": true}).want(t, http.StatusOK).decode(t, &rot)
		if rot.Secrets != 2 || rot.ClientSecret == "" || rot.ClientSecret == secret {
			t.Fatalf("rotation %+v", rot)
		}
		e.clientToken("billing", rot.ClientSecret, "read") // cached by the server now
		previous := rot.ClientSecret
		e.call(http.MethodPost, "/admin/v1/clients/billing/secret", nil).want(t, http.StatusOK).decode(t, &rot)
		if rot.Secrets != 1 {
			t.Fatalf("rotation without keep_old kept %d", rot.Secrets)
		}
		// The instance that rotated forgets the cached secret at once.
		req, _ := http.NewRequest(http.MethodPost, e.pub.URL+"/token", strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("billing", previous)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("the replaced secret right after the rotation: %d, want 401", resp.StatusCode)
		}
		e.call(http.MethodPost, "/admin/v1/clients/app/secret", nil).want(t, http.StatusConflict)
	})
	t.Run("DeleteRevokesTokens", func(t *testing.T) {
		e.call(http.MethodDelete, "/admin/v1/clients/billing", nil).want(t, http.StatusNoContent)
		e.call(http.MethodGet, "/admin/v1/clients/billing", nil).want(t, http.StatusNotFound)
	})
	t.Run("ListIsPaginated", func(t *testing.T) {
		for i := range 5 {
			e.call(http.MethodPost, "/admin/v1/clients", map[string]any{"id": fmt.Sprintf("c%d", i), "public": true, "grant_types": []string{"password"}}).want(t, http.StatusCreated)
		}
		var ids []string
		cursor := ""
		for range 10 {
			var l adminapi.List[adminapi.Client]
			e.call(http.MethodGet, "/admin/v1/clients?limit=3&cursor="+cursor, nil).want(t, http.StatusOK).decode(t, &l)
			for _, c := range l.Items {
				ids = append(ids, c.ID)
			}
			if cursor = l.NextCursor; cursor == "" {
				break
			}
		}
		if strings.Join(ids, ",") != "app,c0,c1,c2,c3,c4,ops,svc" {
			t.Fatalf("pages gave %v", ids)
		}
	})
}

// passwordGrant signs in at the public listener; it returns the status and
// the refresh token.
func (e *env) passwordGrant(email, pw string) (int, string) {
	e.t.Helper()
	return e.tokenForm(url.Values{"grant_type": {"password"}, "username": {email}, "password": {pw}, "client_id": {"app"}, "scope": {"read"}})
}

func (e *env) tokenForm(form url.Values) (int, string) {
	e.t.Helper()
	resp, err := http.PostForm(e.pub.URL+"/token", form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		RefreshToken string `json:"refresh_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tr)
	return resp.StatusCode, tr.RefreshToken
}

func TestUsers(t *testing.T) {
	e := newEnv(t)
	const bobPW = "tangerine submarine 42"
	var bob adminapi.User
	e.call(http.MethodPost, "/admin/v1/users", map[string]any{"email": "bob@example.com", "name": "Bob", "roles": []string{"user"}, "password": bobPW}).
		want(t, http.StatusCreated).decode(t, &bob)
	if bob.ID == "" || bob.Email != "bob@example.com" || bob.Disabled {
		t.Fatalf("created %+v", bob)
	}
	base := "/admin/v1/users/" + bob.ID

	t.Run("Validation", func(t *testing.T) {
		e.call(http.MethodPost, "/admin/v1/users", map[string]any{"email": "carol@example.com", "password": "short"}).want(t, http.StatusUnprocessableEntity)
		e.call(http.MethodPost, "/admin/v1/users", map[string]any{"email": "carol@example.com"}).want(t, http.StatusUnprocessableEntity)
		e.call(http.MethodPost, "/admin/v1/users", map[string]any{"email": "not-an-email", "password": bobPW}).want(t, http.StatusUnprocessableEntity)
		e.call(http.MethodPost, "/admin/v1/users", map[string]any{"email": "nul\x00@example.com", "password": bobPW}).want(t, http.StatusUnprocessableEntity)
		e.call(http.MethodPost, "/admin/v1/users", map[string]any{"email": "carol@example.com", "name": "Carol\x00", "password": bobPW}).want(t, http.StatusUnprocessableEntity)
		e.call(http.MethodPost, "/admin/v1/users", map[string]any{"email": "carol@example.com", "roles": []string{"a\x00"}, "password": bobPW}).want(t, http.StatusUnprocessableEntity)
		e.call(http.MethodPost, "/admin/v1/users", map[string]any{"email": "BOB@example.com", "password": bobPW}).want(t, http.StatusConflict)
		e.call(http.MethodPut, base, map[string]any{"email": "alice@example.com"}).want(t, http.StatusConflict)
		e.call(http.MethodPut, base, map[string]any{"email": "bob@example.com", "password": bobPW}).want(t, http.StatusUnprocessableEntity)
		e.call(http.MethodPost, base+"/password", map[string]any{"password": "password"}).want(t, http.StatusUnprocessableEntity)
	})
	t.Run("NotFound", func(t *testing.T) {
		for _, c := range []struct{ m, p string }{{"GET", ""}, {"DELETE", ""}, {"POST", "/disable"}, {"POST", "/enable"},
			{"GET", "/consents"}, {"DELETE", "/consents"}, {"DELETE", "/sessions"}} {
			e.call(c.m, "/admin/v1/users/nobody"+c.p, nil).want(t, http.StatusNotFound)
		}
		e.call(http.MethodPut, "/admin/v1/users/nobody", map[string]any{"email": "x@example.com"}).want(t, http.StatusNotFound)
		e.call(http.MethodPost, "/admin/v1/users/nobody/password", map[string]any{"password": bobPW}).want(t, http.StatusNotFound)
	})
	t.Run("FindByEmail", func(t *testing.T) {
		var l adminapi.List[adminapi.User]
		e.call(http.MethodGet, "/admin/v1/users?email=Bob@Example.com", nil).want(t, http.StatusOK).decode(t, &l)
		if len(l.Items) != 1 || l.Items[0].ID != bob.ID {
			t.Fatalf("by email: %+v", l)
		}
		e.call(http.MethodGet, "/admin/v1/users?email=zed@example.com", nil).want(t, http.StatusOK).decode(t, &l)
		if len(l.Items) != 0 {
			t.Fatalf("unknown email: %+v", l)
		}
	})
	t.Run("PutWithIfMatch", func(t *testing.T) {
		etag := e.call(http.MethodGet, base, nil).want(t, http.StatusOK).header.Get("ETag")
		upd := map[string]any{"email": "bob@example.com", "name": "Robert", "roles": []string{"user", "support"}}
		r := e.call(http.MethodPut, base, upd, "If-Match", etag).want(t, http.StatusOK)
		e.call(http.MethodPut, base, upd, "If-Match", r.header.Get("ETag")).want(t, http.StatusOK) // idempotent: same ETag still valid
		e.call(http.MethodPut, base, upd, "If-Match", etag).want(t, http.StatusPreconditionFailed)
		e.call(http.MethodPost, base+"/disable", nil, "If-Match", etag).want(t, http.StatusPreconditionFailed)
		var u adminapi.User
		e.call(http.MethodGet, base, nil).want(t, http.StatusOK).decode(t, &u)
		if u.Name != "Robert" || strings.Join(u.Roles, ",") != "support,user" || u.Disabled {
			t.Fatalf("after PUT: %+v", u)
		}
	})
	t.Run("PasswordResetAndDisable", func(t *testing.T) {
		if st, _ := e.passwordGrant("bob@example.com", bobPW); st != http.StatusOK {
			t.Fatalf("sign-in before reset: %d", st)
		}
		const newPW = "violet elephant parade 7"
		e.call(http.MethodPost, base+"/password", map[string]any{"password": newPW}).want(t, http.StatusOK)
		if st, _ := e.passwordGrant("bob@example.com", bobPW); st == http.StatusOK {
			t.Fatal("the old password still works")
		}
		st, refresh := e.passwordGrant("bob@example.com", newPW)
		if st != http.StatusOK || refresh == "" {
			t.Fatalf("sign-in with the new password: %d", st)
		}
		var u adminapi.User
		e.call(http.MethodPost, base+"/disable", nil).want(t, http.StatusOK).decode(t, &u)
		if !u.Disabled {
			t.Fatal("not disabled")
		}
		if st, _ := e.passwordGrant("bob@example.com", newPW); st == http.StatusOK {
			t.Fatal("a disabled user signed in")
		}
		if st, _ := e.tokenForm(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {"app"}}); st == http.StatusOK {
			t.Fatal("a disabled user's refresh token still works")
		}
		e.call(http.MethodPost, base+"/enable", nil).want(t, http.StatusOK).decode(t, &u)
		if st, _ := e.passwordGrant("bob@example.com", newPW); u.Disabled || st != http.StatusOK {
			t.Fatalf("enabled user cannot sign in: %d", st)
		}
	})
	t.Run("SessionsAndConsents", func(t *testing.T) {
		var l adminapi.List[json.RawMessage]
		e.call(http.MethodGet, base+"/consents", nil).want(t, http.StatusOK).decode(t, &l)
		if len(l.Items) != 0 {
			t.Fatalf("consents %s", l.Items)
		}
		_, refresh := e.passwordGrant("bob@example.com", "violet elephant parade 7")
		var n adminapi.Count
		e.call(http.MethodDelete, base+"/sessions", nil).want(t, http.StatusOK).decode(t, &n)
		if n.Revoked == 0 {
			t.Fatal("nothing revoked")
		}
		if st, _ := e.tokenForm(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {"app"}}); st == http.StatusOK {
			t.Fatal("refresh token survived the revocation")
		}
		e.call(http.MethodDelete, base+"/consents?client_id=app", nil).want(t, http.StatusOK)
	})
	t.Run("Delete", func(t *testing.T) {
		e.call(http.MethodDelete, base, nil).want(t, http.StatusNoContent)
		e.call(http.MethodGet, base, nil).want(t, http.StatusNotFound)
	})
}

func TestUserPaginationOver1000Users(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC()
	for i := range 1000 {
		u := storage.User{ID: fmt.Sprintf("u%04d", i), Email: fmt.Sprintf("user%d@example.com", i), Roles: []string{"user"},
			PasswordHash: e.alice.PasswordHash, CreatedAt: now, UpdatedAt: now}
		if err := e.store.CreateUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	prev, cursor, pages := "", "", 0
	for {
		var l adminapi.List[adminapi.User]
		e.call(http.MethodGet, "/admin/v1/users?limit=97&cursor="+cursor, nil).want(t, http.StatusOK).decode(t, &l)
		pages++
		for _, u := range l.Items {
			if seen[u.ID] || u.ID <= prev {
				t.Fatalf("page %d: %s out of order or repeated (after %s)", pages, u.ID, prev)
			}
			seen[u.ID], prev = true, u.ID
		}
		if cursor = l.NextCursor; cursor == "" {
			break
		}
		if pages > 20 {
			t.Fatal("pagination does not end")
		}
	}
	if len(seen) != 1001 || pages != 11 {
		t.Fatalf("%d users in %d pages, want 1001 in 11", len(seen), pages)
	}
	e.call(http.MethodGet, "/admin/v1/users?limit=0", nil).want(t, http.StatusBadRequest)
	e.call(http.MethodGet, "/admin/v1/users?limit=501", nil).want(t, http.StatusBadRequest)
	e.call(http.MethodGet, "/admin/v1/users?limit=x", nil).want(t, http.StatusBadRequest)
	e.call(http.MethodGet, "/admin/v1/users?cursor=***", nil).want(t, http.StatusBadRequest)
}

func TestKeysTokensAudit(t *testing.T) {
	e := newEnv(t)
	var before adminapi.List[adminapi.Key]
	e.call(http.MethodGet, "/admin/v1/keys", nil).want(t, http.StatusOK).decode(t, &before)
	active := func(l adminapi.List[adminapi.Key]) string {
		for _, k := range l.Items {
			if k.State == "active" {
				return k.ID
			}
		}
		return ""
	}
	if active(before) == "" || strings.Contains(string(e.call(http.MethodGet, "/admin/v1/keys", nil).body), "private") {
		t.Fatalf("keys %+v", before)
	}
	var after adminapi.List[adminapi.Key]
	e.call(http.MethodPost, "/admin/v1/keys/rotate", nil).want(t, http.StatusOK).decode(t, &after)
	if len(after.Items) != len(before.Items)+1 || active(after) != active(before) {
		t.Fatalf("rotate: %+v -> %+v", before, after)
	}
	e.call(http.MethodPost, "/admin/v1/keys/rotate", map[string]any{"now": true}).want(t, http.StatusOK).decode(t, &after)
	if active(after) == active(before) {
		t.Fatal("rotate now did not activate a new key")
	}
	e.call(http.MethodPost, "/admin/v1/keys/rotate", `{"now":"yes"}`).want(t, http.StatusBadRequest)

	e.call(http.MethodPost, "/admin/v1/tokens/revoke", map[string]any{}).want(t, http.StatusUnprocessableEntity)
	tok := e.clientToken("svc", svcSecret, "read")
	_ = tok
	var n adminapi.Count
	e.call(http.MethodPost, "/admin/v1/tokens/revoke", map[string]any{"client_id": "svc"}).want(t, http.StatusOK).decode(t, &n)
	if n.Revoked < 1 {
		t.Fatalf("revoked %d", n.Revoked)
	}

	var created adminapi.Client
	e.call(http.MethodPost, "/admin/v1/clients", map[string]any{"id": "x1", "grant_types": []string{"client_credentials"}}).want(t, http.StatusCreated).decode(t, &created)
	e.call(http.MethodPost, "/admin/v1/users", map[string]any{"email": "dan@example.com", "password": alicePW + "x"}).want(t, http.StatusCreated)

	var l adminapi.List[map[string]any]
	e.call(http.MethodGet, "/admin/v1/audit?event=admin_change&limit=3", nil).want(t, http.StatusOK).decode(t, &l)
	if len(l.Items) != 3 || l.Items[0]["command"] != "users create" || l.Items[1]["command"] != "clients create" || l.Items[0]["actor_client_id"] != "ops" {
		t.Fatalf("audit %+v", l.Items)
	}
	e.call(http.MethodGet, "/admin/v1/audit?command=keys+rotate", nil).want(t, http.StatusOK).decode(t, &l)
	if len(l.Items) != 2 {
		t.Fatalf("keys rotate events: %+v", l.Items)
	}
	e.call(http.MethodGet, "/admin/v1/audit?limit=0", nil).want(t, http.StatusBadRequest)
	// No secret, password or token in the audit log.
	log := e.audit.String()
	for _, s := range []string{created.ClientSecret, alicePW, e.token, tok, opsSecret} {
		if strings.Contains(log, s) {
			t.Fatalf("the audit log holds a secret: %q", s)
		}
	}
}

// A method the resource does not take is 405 with the methods it does take
// in Allow (RFC 9110 §15.5.6).
func TestMethodNotAllowedNamesTheMethods(t *testing.T) {
	e := newEnv(t)
	for path, want := range map[string]string{"/admin/v1/keys": "GET", "/admin/v1/users/u-alice/sessions": "GET, DELETE", "/admin/v1/keys/rotate": "POST"} {
		method := http.MethodPatch
		r := e.call(method, path, nil).want(t, http.StatusMethodNotAllowed)
		if got := r.header.Get("Allow"); got != want {
			t.Errorf("%s %s: Allow %q, want %q", method, path, got, want)
		}
	}
}
