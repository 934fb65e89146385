package authserver

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/internal/assertiontest"
	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/storage"
)

// Text that PostgreSQL cannot hold (a NUL byte, invalid UTF-8) is a bad
// request on every backend, never a 5xx: the endpoints refuse it before the
// store sees it, and where a value still reaches PostgreSQL (a path
// segment, a query parameter of a page) its refusal is the client's error,
// not the database's.
func TestInvalidTextIsABadRequest(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			env := newTestEnv(t, b.open(t))
			now := time.Now().UTC()
			if err := env.store.CreateClient(t.Context(), storage.Client{ID: "bearer-app", SecretHashes: []string{password.HashSecret(bearerAppSecret)},
				GrantTypes: []string{grantJWTBearer}, Scopes: []string{"read"}, CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
			form := func(kv ...string) url.Values {
				v := url.Values{}
				for i := 0; i+1 < len(kv); i += 2 {
					v.Set(kv[i], kv[i+1])
				}
				return v
			}
			for _, tc := range []struct {
				name       string
				resp       func() *http.Response
				status     int
				code       string // the JSON error, or "" for a page
				wantDetail bool
			}{
				{"ClientIDWithNUL", func() *http.Response {
					return env.post("/token", form("grant_type", "client_credentials", "client_id", "a\x00b", "client_secret", "x"), "", "")
				}, 400, errInvalidRequest, true},
				{"ClientIDNotUTF8", func() *http.Response {
					return env.post("/token", form("grant_type", "client_credentials", "client_id", "a\xffb", "client_secret", "x"), "", "")
				}, 400, errInvalidRequest, true},
				{"UsernameWithNUL", func() *http.Response {
					return env.post("/token", form("grant_type", "password", "client_id", "demo", "username", "alice@example.com\x00", "password", "x"), "", "")
				}, 400, errInvalidRequest, true},
				{"BasicIDWithNUL", func() *http.Response {
					return env.post("/token", form("grant_type", "client_credentials"), "svc\x00", svcSecret)
				}, 401, errInvalidClient, false},
				{"IntrospectedTokenWithNUL", func() *http.Response {
					return env.post("/introspect", form("token", "abc\x00"), "svc", svcSecret)
				}, 400, errInvalidRequest, true},
				{"AuthorizeClientIDWithNUL", func() *http.Response {
					return get(t, env.srv.URL+"/authorize?response_type=code&client_id=demo%00")
				}, 400, "", false},
				{"EndSessionClientIDWithNUL", func() *http.Response {
					return get(t, env.srv.URL+"/end_session?client_id=a%00b")
				}, 400, "", false},
				// Inside a signed assertion, such text names no client,
				// issuer or user.
				{"ClientAssertionIssuerWithNUL", func() *http.Response {
					k := newECKey(t, "k1")
					a := assertiontest.Sign(t, jose.ES256, k.key, k.kid, assertiontest.Claims("a\x00b", "a\x00b", env.issuer+"/token", time.Minute))
					return env.post("/token", assertionForm(a, "grant_type", "client_credentials"), "", "")
				}, 401, errInvalidClient, false},
				{"JWTBearerIssuerWithNUL", func() *http.Response {
					k := newECKey(t, "k1")
					a := assertiontest.Sign(t, jose.ES256, k.key, k.kid, assertiontest.Claims("https://idp.example\x00", "alice@example.com", env.issuer+"/token", time.Minute))
					return env.post("/token", url.Values{"grant_type": {grantJWTBearer}, "assertion": {a}}, "bearer-app", bearerAppSecret)
				}, 400, errInvalidGrant, false},
				{"RegistrationPathWithNUL", func() *http.Response {
					req, _ := http.NewRequest(http.MethodGet, env.srv.URL+"/register/a%00b", nil)
					req.Header.Set("Authorization", "Bearer some-registration-token")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					return resp
				}, 401, "invalid_token", false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					resp := tc.resp()
					if tc.code == "" {
						body, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.StatusCode != tc.status {
							t.Fatalf("status %d, want %d\n%s", resp.StatusCode, tc.status, body)
						}
						return
					}
					m := decode(t, resp)
					if resp.StatusCode != tc.status || m["error"] != tc.code {
						t.Fatalf("%d %v, want %d %s", resp.StatusCode, m, tc.status, tc.code)
					}
					if tc.wantDetail && m["error_description"] != invalidTextDetail {
						t.Errorf("error_description %q", m["error_description"])
					}
				})
			}
		})
	}
}

func get(t *testing.T, u string) *http.Response {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// PostgreSQL's refusal of such text is storage.ErrInvalidText, which the
// endpoints answer as invalid_request rather than 503.
func TestInvalidTextFromPostgres(t *testing.T) {
	st := openTestPostgres(t)
	for _, id := range []string{"a\x00b", "a\xffb"} {
		_, err := st.GetClient(t.Context(), id)
		if !errors.Is(err, storage.ErrInvalidText) {
			t.Errorf("GetClient(%q) = %v, want ErrInvalidText", id, err)
		}
		oe := unavailable(fmt.Errorf("reading: %w", err))
		if oe.Status != http.StatusBadRequest || oe.Code != errInvalidRequest || oe.Cause != nil {
			t.Errorf("unavailable(%v) = %+v, want a 400 invalid_request without a logged cause", err, oe)
		}
	}
	if oe := unavailable(errors.New("connection refused")); oe.Status != http.StatusServiceUnavailable {
		t.Errorf("a store failure is %d, want 503", oe.Status)
	}
	if !strings.Contains(invalidTextDetail, "NUL") {
		t.Fatal(invalidTextDetail)
	}
}
