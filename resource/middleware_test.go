package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/oauthkit/authserver/internal/dpop"
	"github.com/oauthkit/authserver/internal/dpop/dpoptest"
)

func TestBearerExtraction(t *testing.T) {
	is := newTestIssuer(t)
	tok := is.mint(t)
	h := newAuth(t, is, nil).Middleware(okHandler)
	cases := []struct {
		name       string
		header     []string
		wantStatus int
		wantCode   ErrorCode
	}{
		{"CanonicalScheme", []string{"Bearer " + tok}, 200, ""},
		{"LowerCaseScheme", []string{"bearer " + tok}, 200, ""},
		{"UpperCaseScheme", []string{"BEARER " + tok}, 200, ""},
		{"SeveralSpaces", []string{"Bearer   " + tok}, 200, ""},
		{"NoHeader", nil, 401, ""},
		{"OtherScheme", []string{"Basic dXNlcjpwYXNz"}, 401, ""},
		{"SchemeWithSuffix", []string{"Bearerx " + tok}, 401, ""},
		{"SchemeOnly", []string{"Bearer"}, 400, CodeInvalidRequest},
		{"TwoHeaders", []string{"Bearer " + tok, "Bearer " + tok}, 400, CodeInvalidRequest},
		{"TwoTokens", []string{"Bearer " + tok + " " + tok}, 400, CodeInvalidRequest},
		{"CommaSeparated", []string{"Bearer " + tok + ", Bearer " + tok}, 400, CodeInvalidRequest},
		{"TabAfterScheme", []string{"Bearer\t" + tok}, 400, CodeInvalidRequest},
		{"BadCharacter", []string{"Bearer abc$def"}, 400, CodeInvalidRequest},
		{"PaddingInTheMiddle", []string{"Bearer abc=def"}, 400, CodeInvalidRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := serve(h, tc.header...)
			if w.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tc.wantStatus, w.Body)
			}
			if w.Code == 200 {
				if w.Body.String() != "user-42" {
					t.Errorf("body = %q", w.Body)
				}
				return
			}
			ch := w.Header().Get("WWW-Authenticate")
			if tc.wantCode == "" && ch != "Bearer" {
				t.Errorf("challenge = %q, want bare Bearer (RFC 6750 §3.1)", ch)
			}
			if tc.wantCode != "" && !strings.Contains(ch, `error="`+string(tc.wantCode)+`"`) {
				t.Errorf("challenge = %q, want %s", ch, tc.wantCode)
			}
		})
	}
}

func TestQueryTokenIsIgnored(t *testing.T) {
	is := newTestIssuer(t)
	h := newAuth(t, is, nil).Middleware(okHandler)
	r := httptest.NewRequest(http.MethodGet, "/api/thing?access_token="+is.mint(t), nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("status %d, challenge %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
}

func TestFormBodyToken(t *testing.T) {
	is := newTestIssuer(t)
	tok := is.mint(t)
	post := func(h http.Handler, method, ct string, form url.Values, authz string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/api/thing", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", ct)
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	const formCT = "application/x-www-form-urlencoded"
	off := newAuth(t, is, nil).Middleware(okHandler)
	if w := post(off, "POST", formCT, url.Values{"access_token": {tok}}, ""); w.Code != 401 {
		t.Errorf("disabled: status %d, want 401", w.Code)
	}
	on := newAuth(t, is, func(c *Config) { c.AllowFormToken = true })
	h := on.Middleware(okHandler)
	cases := []struct {
		name, method, ct string
		form             url.Values
		authz            string
		want             int
	}{
		{"Post", "POST", formCT, url.Values{"access_token": {tok}, "other": {"x"}}, "", 200},
		{"PostWithCharset", "POST", formCT + "; charset=utf-8", url.Values{"access_token": {tok}}, "", 200},
		{"GetIsNotAllowed", "GET", formCT, url.Values{"access_token": {tok}}, "", 401},
		{"JSONBodyIsNotForm", "POST", "application/json", url.Values{"access_token": {tok}}, "", 401},
		{"HeaderAndBody", "POST", formCT, url.Values{"access_token": {tok}}, "Bearer " + tok, 400},
		{"TwoBodyTokens", "POST", formCT, url.Values{"access_token": {tok, tok}}, "", 400},
		{"HeaderOnly", "POST", formCT, url.Values{"other": {"x"}}, "Bearer " + tok, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if w := post(h, tc.method, tc.ct, tc.form, tc.authz); w.Code != tc.want {
				t.Fatalf("status %d, want %d; body %s", w.Code, tc.want, w.Body)
			}
		})
	}
	if m := on.Metadata(); strings.Join(m.BearerMethodsSupported, ",") != "header,body" {
		t.Errorf("bearer_methods_supported = %q", m.BearerMethodsSupported)
	}
}

func TestChallengeCarriesRealmAndResourceMetadata(t *testing.T) {
	is := newTestIssuer(t)
	a := newAuth(t, is, func(c *Config) {
		c.Realm = "items api"
		c.ResourceMetadataURL = "https://api.example.com/.well-known/oauth-protected-resource"
	})
	h := a.Middleware(okHandler)
	if got, want := serve(h).Header().Get("WWW-Authenticate"),
		`Bearer realm="items api", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"`; got != want {
		t.Errorf("missing token: challenge\n%s, want\n%s", got, want)
	}
	expired := is.mint(t, func(m map[string]any) { m["exp"] = is.clock.Now().Unix() - 3600 })
	w := serve(h, "Bearer "+expired)
	want := `Bearer realm="items api", error="invalid_token", error_description="the access token expired", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"`
	if got := w.Header().Get("WWW-Authenticate"); got != want {
		t.Errorf("expired: challenge\n%s, want\n%s", got, want)
	}
	var body map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body["error"] != "invalid_token" || body["error_description"] != "the access token expired" {
		t.Errorf("body = %v", body)
	}
	if ct, cc := w.Header().Get("Content-Type"), w.Header().Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
		t.Errorf("Content-Type %q, Cache-Control %q", ct, cc)
	}
}

func TestRequireScopesAndRoles(t *testing.T) {
	is := newTestIssuer(t)
	a := newAuth(t, is, nil)
	tok := is.mint(t) // scopes openid profile read:items; roles user editor
	cases := []struct {
		name      string
		mw        func(http.Handler) http.Handler
		want      int
		wantScope string
	}{
		{"AnyScopeOneMatches", a.RequireAnyScope("write:items", "read:items"), 200, ""},
		{"AnyScopeNoneMatches", a.RequireAnyScope("write:items", "admin"), 403, "write:items admin"},
		{"AllScopesAllMatch", a.RequireAllScopes("openid", "read:items"), 200, ""},
		{"AllScopesOneMissing", a.RequireAllScopes("read:items", "write:items"), 403, "read:items write:items"},
		{"AnyRoleOneMatches", a.RequireAnyRole("admin", "editor"), 200, ""},
		{"AnyRoleNoneMatches", a.RequireAnyRole("admin"), 403, ""},
		{"AllRolesAllMatch", a.RequireAllRoles("user", "editor"), 200, ""},
		{"AllRolesOneMissing", a.RequireAllRoles("user", "admin"), 403, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, chain := range []struct {
				name string
				h    http.Handler
			}{
				{"AfterMiddleware", a.Middleware(tc.mw(okHandler))},
				{"Standalone", tc.mw(okHandler)},
			} {
				w := serve(chain.h, "Bearer "+tok)
				if w.Code != tc.want {
					t.Fatalf("%s: status %d, want %d; body %s", chain.name, w.Code, tc.want, w.Body)
				}
				if tc.want != 403 {
					continue
				}
				ch := w.Header().Get("WWW-Authenticate")
				if !strings.Contains(ch, `error="insufficient_scope"`) {
					t.Errorf("%s: challenge %q", chain.name, ch)
				}
				if tc.wantScope != "" && !strings.Contains(ch, `scope="`+tc.wantScope+`"`) {
					t.Errorf("%s: challenge %q, want scope %q", chain.name, ch, tc.wantScope)
				}
				if tc.wantScope == "" && strings.Contains(ch, "scope=") {
					t.Errorf("%s: a role check named scopes: %q", chain.name, ch)
				}
			}
		})
	}
	t.Run("StandaloneRefusesMissingToken", func(t *testing.T) {
		if w := serve(a.RequireAnyRole("user")(okHandler)); w.Code != 401 {
			t.Fatalf("status %d", w.Code)
		}
	})
	t.Run("EmptyListPanics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		a.RequireAllScopes()
	})
}

// TestScopeRefusalUsesTheRequestsScheme: a DPoP-authenticated request that
// fails a scope or role check is answered with a DPoP challenge carrying
// the RFC 6750 §3 error (and scope, for a scope check) and algs (RFC 9449
// §7.1), not a Bearer one; a Bearer request keeps its Bearer challenge.
func TestScopeRefusalUsesTheRequestsScheme(t *testing.T) {
	is := newTestIssuer(t, newECKey("ec-1"))
	client := dpoptest.NewKey(t)
	bound := is.mint(t, func(c map[string]any) { c["cnf"] = map[string]any{"jkt": client.Signer.JKT()} })
	a := newAuth(t, is, nil)
	for _, tc := range []struct {
		name, scope string
		guard       func(http.Handler) http.Handler
	}{
		{"Scope", "items:write", a.RequireAnyScope("items:write")},
		{"Role", "", a.RequireAnyRole("admin")},
	} {
		for _, chain := range []struct {
			name string
			h    http.Handler
		}{
			{"AfterMiddleware", a.Middleware(tc.guard(okHandler))},
			{"Standalone", tc.guard(okHandler)},
		} {
			t.Run(tc.name+"/"+chain.name, func(t *testing.T) {
				p := client.Proof(dpop.ProofClaims{Method: "GET", URL: dpopTestURL, AccessToken: bound, IssuedAt: is.clock.Now()})
				w := serveDPoP(chain.h, "DPoP "+bound, p)
				wantRefusal(t, w, http.StatusForbidden, CodeInsufficientScope, "DPoP")
				chs := w.Header().Values("WWW-Authenticate")
				ch := chs[0]
				if len(chs) != 1 || !strings.Contains(ch, `error_description="`) || !strings.Contains(ch, `algs="ES256 `) {
					t.Fatalf("challenges %q, want one DPoP challenge with error_description and algs", chs)
				}
				if tc.scope != "" && !strings.Contains(ch, `scope="`+tc.scope+`"`) {
					t.Fatalf("challenge %q, want scope=%q", ch, tc.scope)
				}
				if tc.scope == "" && strings.Contains(ch, "scope=") {
					t.Fatalf("a role check named scopes: %q", ch)
				}
			})
		}
	}
	t.Run("BearerStaysBearer", func(t *testing.T) {
		w := serve(a.Middleware(a.RequireAnyScope("items:write")(okHandler)), "Bearer "+is.mint(t))
		wantRefusal(t, w, http.StatusForbidden, CodeInsufficientScope, "Bearer")
	})
}

// TestRequireTrustsOnlyItsOwnVerification: a guard trusts claims in the
// context only when its own Authenticator verified them. Claims verified
// by another Authenticator (another audience, here) or put there with
// NewContext make it authenticate the request itself; after its own
// Middleware it does not verify the token a second time.
func TestRequireTrustsOnlyItsOwnVerification(t *testing.T) {
	is := newTestIssuer(t)
	var checksA, checksB int
	authA := newAuth(t, is, nil, WithTokenCheck(func(context.Context, string, *Claims) error { checksA++; return nil }))
	authB := newAuth(t, is, func(c *Config) { c.Audience = is.URL() + "/billing" },
		WithTokenCheck(func(context.Context, string, *Claims) error { checksB++; return nil }))
	tokForA := is.mint(t) // aud {issuer}/api only
	if _, err := authB.Verify(t.Context(), tokForA); err == nil {
		t.Fatal("setup: B accepts A's token by itself")
	}
	tokForBoth := is.mint(t, func(c map[string]any) { c["aud"] = []string{is.audience(), is.URL() + "/billing"} })

	// A router-wide middleware of A, and one route guarded by B.
	h := authA.Middleware(authB.RequireAnyScope("read:items")(okHandler))
	if w := serve(h, "Bearer "+tokForA); w.Code != http.StatusUnauthorized {
		t.Fatalf("B's guard after A's middleware, token for A only: %d, want 401", w.Code)
	}
	checksA, checksB = 0, 0
	if w := serve(h, "Bearer "+tokForBoth); w.Code != http.StatusOK || checksA != 1 || checksB != 1 {
		t.Fatalf("token for both: %d, verified %d times by A and %d by B, want 200, 1 and 1", w.Code, checksA, checksB)
	}
	checksA = 0
	own := authA.Middleware(authA.RequireAnyScope("read:items")(okHandler))
	if w := serve(own, "Bearer "+tokForA); w.Code != http.StatusOK || checksA != 1 {
		t.Fatalf("A's guard after A's middleware: %d, verified %d times, want 200 and once", w.Code, checksA)
	}

	// Claims from NewContext (no token at all) are not trusted by a guard.
	r := httptest.NewRequest(http.MethodGet, "/api/thing", nil)
	r = r.WithContext(NewContext(r.Context(), &Claims{Subject: "x", Scopes: []string{"read:items"}}))
	w := httptest.NewRecorder()
	authA.RequireAnyScope("read:items")(okHandler).ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("guard over claims from NewContext: %d, want 401", w.Code)
	}
}

func TestComposesWithGorillaMux(t *testing.T) {
	is := newTestIssuer(t)
	a := newAuth(t, is, nil)
	r := mux.NewRouter()
	r.Use(a.Middleware)
	r.Handle("/api/items", okHandler).Methods(http.MethodGet)
	admin := r.PathPrefix("/api/admin").Subrouter()
	admin.Use(a.RequireAnyRole("admin"))
	admin.Handle("/users", okHandler)

	get := func(path, tok string) int {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		return w.Code
	}
	user := is.mint(t)
	admn := is.mint(t, func(m map[string]any) { m["roles"] = []string{"admin"} })
	for _, tc := range []struct {
		path, tok string
		want      int
	}{
		{"/api/items", "", 401},
		{"/api/items", user, 200},
		{"/api/admin/users", user, 403},
		{"/api/admin/users", admn, 200},
	} {
		if got := get(tc.path, tc.tok); got != tc.want {
			t.Errorf("GET %s: %d, want %d", tc.path, got, tc.want)
		}
	}
}

func TestComposesWithServeMux(t *testing.T) {
	is := newTestIssuer(t)
	a := newAuth(t, is, nil)
	m := http.NewServeMux()
	m.Handle("GET /api/items", a.Middleware(okHandler))
	m.Handle("DELETE /api/items/{id}", a.Middleware(a.RequireAllScopes("write:items")(okHandler)))
	req := httptest.NewRequest(http.MethodDelete, "/api/items/7", nil)
	req.Header.Set("Authorization", "Bearer "+is.mint(t))
	w := httptest.NewRecorder()
	m.ServeHTTP(w, req)
	if w.Code != 403 || !strings.Contains(w.Header().Get("WWW-Authenticate"), `scope="write:items"`) {
		t.Fatalf("status %d, challenge %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
}

func TestErrorHandlerHook(t *testing.T) {
	is := newTestIssuer(t)
	var got *Error
	a := newAuth(t, is, func(c *Config) {
		c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, e *Error) {
			got = e
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(e.Status)
			fmt.Fprintf(w, "nope: %s", e.Code)
		}
	})
	expired := is.mint(t, func(m map[string]any) { m["exp"] = is.clock.Now().Unix() - 3600 })
	w := serve(a.Middleware(okHandler), "Bearer "+expired)
	if w.Code != 401 || w.Body.String() != "nope: invalid_token" {
		t.Fatalf("status %d body %q", w.Code, w.Body)
	}
	if !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("the challenge was not set before the hook ran: %q", w.Header().Get("WWW-Authenticate"))
	}
	if got == nil || !errors.Is(got, ErrTokenExpired) {
		t.Errorf("hook got %v, want an error wrapping ErrTokenExpired", got)
	}
}

func TestTokenCheckHook(t *testing.T) {
	is := newTestIssuer(t)
	revoked := is.mint(t, func(m map[string]any) { m["jti"] = "revoked-1" })
	dbDown := is.mint(t, func(m map[string]any) { m["jti"] = "db-down" })
	errRevoked := errors.New("revoked")
	var sawRaw string
	a := newAuth(t, is, nil, WithTokenCheck(func(ctx context.Context, raw string, c *Claims) error {
		sawRaw = raw
		switch c.ID {
		case "revoked-1":
			return errRevoked
		case "db-down":
			return fmt.Errorf("storage: %w", ErrUnavailable)
		}
		return nil
	}))
	h := a.Middleware(okHandler)
	ok := is.mint(t)
	if w := serve(h, "Bearer "+ok); w.Code != 200 || sawRaw != ok {
		t.Fatalf("good token: status %d", w.Code)
	}
	w := serve(h, "Bearer "+revoked)
	if w.Code != 401 || !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("revoked: status %d, challenge %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	if _, err := a.Verify(t.Context(), revoked); !errors.Is(err, errRevoked) || !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Verify(revoked) = %v", err)
	}
	if w := serve(h, "Bearer "+dbDown); w.Code != 503 || w.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("unavailable: status %d, challenge %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	// The hook never sees a token that failed verification.
	sawRaw = ""
	serve(h, "Bearer "+is.mint(t, func(m map[string]any) { m["aud"] = "x" }))
	if sawRaw != "" {
		t.Error("the hook ran for an invalid token")
	}
}

func TestContextAccessors(t *testing.T) {
	if _, ok := FromContext(context.Background()); ok {
		t.Error("claims in an empty context")
	}
	if _, ok := FromContext(NewContext(context.Background(), nil)); ok {
		t.Error("nil claims reported as present")
	}
	c := &Claims{Subject: "s"}
	if got, ok := FromContext(NewContext(context.Background(), c)); !ok || got != c {
		t.Error("claims lost")
	}
}

func TestNewValidatesConfig(t *testing.T) {
	is := newTestIssuer(t)
	for name, cfg := range map[string]Config{
		"NoIssuer":               {Audience: "a", JWKSURL: is.jwksURL()},
		"NoAudience":             {Issuer: is.URL(), JWKSURL: is.jwksURL()},
		"BadMode":                {Issuer: is.URL(), Audience: "a", JWKSURL: is.jwksURL(), Mode: 7},
		"IntrospectWithoutCreds": {Issuer: is.URL(), Audience: "a", Mode: ModeIntrospect},
		"IssuerUnreachable":      {Issuer: "http://127.0.0.1:1", Audience: "a"},
	} {
		if _, err := New(t.Context(), cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestModeText(t *testing.T) {
	for _, m := range []Mode{ModeLocal, ModeIntrospect, ModeLocalThenIntrospect} {
		var back Mode
		b, _ := m.MarshalText()
		if err := back.UnmarshalText(b); err != nil || back != m {
			t.Errorf("%v: round trip gave %v, %v", m, back, err)
		}
	}
	if _, err := ParseMode("both"); err == nil {
		t.Error("ParseMode accepted an unknown name")
	}
}
