package authserver

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthkit/authserver/storage"
)

// verifyIndependently checks an access token with lestrrat-go/jwx against
// the served JWKS: signature by kid, typ at+jwt, iss and aud.
func verifyIndependently(t *testing.T, env *testEnv, token string) jwt.Token {
	t.Helper()
	set, err := jwk.Fetch(t.Context(), env.srv.URL+"/.well-known/jwks.json")
	if err != nil {
		t.Fatalf("fetch JWKS: %v", err)
	}
	msg, err := jws.Parse([]byte(token))
	if err != nil {
		t.Fatal(err)
	}
	if typ, _ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != "at+jwt" {
		t.Fatalf("typ = %q, want at+jwt", typ)
	}
	tok, err := jwt.Parse([]byte(token), jwt.WithKeySet(set), jwt.WithIssuer(env.issuer),
		jwt.WithAudience(env.issuer+"/api"), jwt.WithValidate(true))
	if err != nil {
		t.Fatalf("independent verification failed: %v", err)
	}
	return tok
}

func claim(t *testing.T, tok jwt.Token, name string) any {
	t.Helper()
	var v any
	if err := tok.Get(name, &v); err != nil {
		t.Fatalf("claim %s: %v", name, err)
	}
	return v
}

func testEndToEnd(t *testing.T, open func(testing.TB) storage.Store) {
	env := newTestEnv(t, open(t))
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, http.DefaultClient)

	t.Run("PasswordGrantWithXOAuth2", func(t *testing.T) {
		cfg := &oauth2.Config{ClientID: "demo", Endpoint: oauth2.Endpoint{TokenURL: env.srv.URL + "/token", AuthStyle: oauth2.AuthStyleInParams}}
		tok, err := cfg.PasswordCredentialsToken(ctx, "alice@example.com", alicePW)
		if err != nil {
			t.Fatal(err)
		}
		if tok.TokenType != "Bearer" || tok.RefreshToken == "" || tok.Expiry.IsZero() {
			t.Fatalf("token = %+v", tok)
		}
		jt := verifyIndependently(t, env, tok.AccessToken)
		if sub, _ := jt.Subject(); sub != env.alice.ID {
			t.Errorf("sub = %q, want %q", sub, env.alice.ID)
		}
		if got := claim(t, jt, "client_id"); got != "demo" {
			t.Errorf("client_id = %v", got)
		}
		if got := claim(t, jt, "email"); got != "alice@example.com" {
			t.Errorf("email = %v", got)
		}
		if roles, ok := claim(t, jt, "roles").([]any); !ok || len(roles) != 1 || roles[0] != "admin" {
			t.Errorf("roles = %v", claim(t, jt, "roles"))
		}
		if jti, _ := jt.JwtID(); jti == "" {
			t.Error("no jti")
		}

		// Refresh through the TokenSource: expire the token locally.
		old := *tok
		tok.Expiry = time.Now().Add(-time.Hour)
		refreshed, err := cfg.TokenSource(ctx, tok).Token()
		if err != nil {
			t.Fatal(err)
		}
		if refreshed.AccessToken == old.AccessToken || refreshed.RefreshToken == old.RefreshToken {
			t.Fatal("refresh did not rotate the tokens")
		}
		jt2 := verifyIndependently(t, env, refreshed.AccessToken)
		iat1, _ := jt.IssuedAt()
		iat2, _ := jt2.IssuedAt()
		if iat2.Before(iat1) {
			t.Errorf("refreshed iat %v before original %v", iat2, iat1)
		}
		jti1, _ := jt.JwtID()
		jti2, _ := jt2.JwtID()
		if jti1 == jti2 {
			t.Error("refreshed token reuses the jti")
		}
	})

	t.Run("ClientCredentialsWithXOAuth2", func(t *testing.T) {
		cc := &clientcredentials.Config{ClientID: "svc", ClientSecret: svcSecret, TokenURL: env.srv.URL + "/token", Scopes: []string{"read"}}
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tok.RefreshToken != "" {
			t.Error("client_credentials must not issue a refresh token")
		}
		jt := verifyIndependently(t, env, tok.AccessToken)
		if sub, _ := jt.Subject(); sub != "svc" {
			t.Errorf("sub = %q, want svc", sub)
		}
		if got := claim(t, jt, "scope"); got != "read" {
			t.Errorf("scope = %v", got)
		}
	})

	t.Run("ClientSecretPostWorks", func(t *testing.T) {
		resp := env.post("/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"svc"}, "client_secret": {svcSecret}}, "", "")
		if m := decode(t, resp); resp.StatusCode != 200 || m["token_type"] != "Bearer" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})

	t.Run("NoRefreshTokenWithoutRefreshGrant", func(t *testing.T) {
		resp := env.post("/token", url.Values{"grant_type": {"password"}, "username": {"bob@example.com"}, "password": {bobPW}, "client_id": {"noref"}}, "", "")
		m := decode(t, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		if _, ok := m["refresh_token"]; ok {
			t.Fatal("refresh token issued to a client without the refresh_token grant")
		}
	})
}

func TestEndToEndMemory(t *testing.T) { testEndToEnd(t, openMemory) }
