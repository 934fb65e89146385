package authserver

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/oauthkit/authserver/storage"
)

func TestIntrospection(t *testing.T) {
	env := newTestEnv(t, openMemory(t))
	at, rt := env.passwordToken("alice@example.com", alicePW)

	t.Run("ActiveAccessToken", func(t *testing.T) {
		m := env.introspect(at)
		want := map[string]any{"active": true, "client_id": "demo", "username": "alice@example.com", "token_type": "Bearer",
			"sub": env.alice.ID, "iss": env.issuer, "scope": "read write"}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s = %v, want %v", k, m[k], v)
			}
		}
		for _, k := range []string{"exp", "iat", "jti", "aud", "roles"} {
			if m[k] == nil {
				t.Errorf("missing %s in %v", k, m)
			}
		}
		tok, err := jwt.ParseInsecure([]byte(at))
		if err != nil {
			t.Fatal(err)
		}
		if jti, _ := tok.JwtID(); m["jti"] != jti {
			t.Errorf("jti %v is not the token's %q", m["jti"], jti)
		}
	})
	t.Run("ActiveRefreshTokenHasOwnExpiry", func(t *testing.T) {
		m := env.introspect(rt)
		if m["active"] != true || m["token_type"] != "refresh_token" {
			t.Fatalf("%v", m)
		}
		mat := env.introspect(at)
		if m["exp"].(float64)-mat["exp"].(float64) < 24*3600 {
			t.Errorf("refresh exp %v is not the refresh token's own (access exp %v)", m["exp"], mat["exp"])
		}
	})
	t.Run("InactiveIsOnlyActiveFalse", func(t *testing.T) {
		for _, tok := range []string{"garbage", "a.b.c", at[:len(at)-4] + "AAAA", "ory_rt_x.y", rt + "x", strings.Repeat("A", 9000)} {
			resp := env.post("/introspect", url.Values{"token": {tok}}, "rs", rsSecret)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != `{"active":false}` {
				t.Errorf("%.20q: %d %s", tok, resp.StatusCode, b)
			}
		}
	})
	t.Run("HintIsOnlyAHint", func(t *testing.T) {
		resp := env.post("/introspect", url.Values{"token": {at}, "token_type_hint": {"refresh_token"}}, "rs", rsSecret)
		if m := decode(t, resp); m["active"] != true {
			t.Fatalf("%v", m)
		}
	})
	t.Run("ClientSecretPost", func(t *testing.T) {
		resp := env.post("/introspect", url.Values{"token": {at}, "client_id": {"rs"}, "client_secret": {rsSecret}}, "", "")
		if m := decode(t, resp); resp.StatusCode != 200 || m["active"] != true {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("BearerCallerAllowedToIntrospect", func(t *testing.T) {
		rsTok := decode(t, env.post("/token", url.Values{"grant_type": {"client_credentials"}}, "rs", rsSecret))["access_token"].(string)
		resp := env.post("/introspect", url.Values{"token": {at}}, "", "", "Authorization", "Bearer "+rsTok)
		if m := decode(t, resp); resp.StatusCode != 200 || m["active"] != true {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("DeactivatedBearerCaller", func(t *testing.T) {
		rsTok := decode(t, env.post("/token", url.Values{"grant_type": {"client_credentials"}}, "rs", rsSecret))["access_token"].(string)
		rec, err := env.store.GetToken(t.Context(), storage.AccessToken, jwtSignature(rsTok))
		if err != nil {
			t.Fatal(err)
		}
		if n, err := env.store.DeactivateTokens(t.Context(), storage.AccessToken, rec.RequestID); err != nil || n != 1 {
			t.Fatalf("deactivate: %d %v", n, err)
		}
		resp := env.post("/introspect", url.Values{"token": {at}}, "", "", "Authorization", "Bearer "+rsTok)
		if m := decode(t, resp); resp.StatusCode != 401 || m["error"] != "invalid_token" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("CallerErrors", func(t *testing.T) {
		svcTok := decode(t, env.post("/token", url.Values{"grant_type": {"client_credentials"}}, "svc", svcSecret))["access_token"].(string)
		cases := []struct {
			name      string
			form      url.Values
			user, pw  string
			hdr       []string
			status    int
			code      string
			challenge string
		}{
			{"NoAuth", url.Values{"token": {at}}, "", "", nil, 401, "invalid_client", "Basic"},
			{"WrongSecret", url.Values{"token": {at}}, "rs", "wrong-wrong-wrong-wrong-wrong-wrong", nil, 401, "invalid_client", "Basic"},
			{"ClientWithoutPermission", url.Values{"token": {at}}, "svc", svcSecret, nil, 403, "unauthorized_client", ""},
			{"PublicClient", url.Values{"token": {at}, "client_id": {"demo"}}, "", "", nil, 403, "unauthorized_client", ""},
			{"BearerWithoutPermission", url.Values{"token": {at}}, "", "", []string{"Authorization", "Bearer " + svcTok}, 403, "insufficient_scope", "Bearer"},
			{"UserBearer", url.Values{"token": {at}}, "", "", []string{"Authorization", "Bearer " + at}, 403, "insufficient_scope", "Bearer"},
			{"BadBearer", url.Values{"token": {at}}, "", "", []string{"Authorization", "Bearer nope"}, 401, "invalid_token", "Bearer"},
			{"MissingToken", url.Values{}, "rs", rsSecret, nil, 400, "invalid_request", ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				resp := env.post("/introspect", tc.form, tc.user, tc.pw, tc.hdr...)
				m := decode(t, resp)
				if resp.StatusCode != tc.status || m["error"] != tc.code {
					t.Fatalf("got %d %v, want %d %s", resp.StatusCode, m, tc.status, tc.code)
				}
				if wa := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(wa, tc.challenge) || (tc.challenge == "" && wa != "") {
					t.Errorf("WWW-Authenticate = %q, want %q…", wa, tc.challenge)
				}
			})
		}
	})
	t.Run("SignedResponseRFC9701", func(t *testing.T) {
		resp := env.post("/introspect", url.Values{"token": {at}}, "rs", rsSecret, "Accept", "application/token-introspection+jwt")
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/token-introspection+jwt" {
			t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		set, err := jwk.Fetch(t.Context(), env.srv.URL+"/.well-known/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		msg, err := jws.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if typ, _ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != "token-introspection+jwt" {
			t.Errorf("typ = %q", typ)
		}
		tok, err := jwt.Parse(b, jwt.WithKeySet(set), jwt.WithIssuer(env.issuer), jwt.WithAudience("rs"))
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		var ti map[string]any
		if err := tok.Get("token_introspection", &ti); err != nil {
			t.Fatal(err)
		}
		if ti["active"] != true || ti["sub"] != env.alice.ID {
			t.Errorf("token_introspection = %v", ti)
		}
	})
}

func TestRevocation(t *testing.T) {
	env := newTestEnv(t, openMemory(t))
	revoke := func(token, client, secret string) (*http.Response, map[string]any) {
		f := url.Values{"token": {token}}
		if secret == "" {
			f.Set("client_id", client)
			client = ""
		}
		resp := env.post("/revoke", f, client, secret)
		return resp, decode(t, resp)
	}
	t.Run("AnotherClientCannotRevoke", func(t *testing.T) {
		at, _ := env.passwordToken("alice@example.com", alicePW)
		resp, m := revoke(at, "app", appSecret)
		if resp.StatusCode != 400 || m["error"] != "unauthorized_client" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		if env.introspect(at)["active"] != true {
			t.Fatal("a foreign revocation must leave the token active")
		}
	})
	t.Run("RefreshRevocationKillsAccessToken", func(t *testing.T) {
		at, rt := env.passwordToken("alice@example.com", alicePW)
		if resp, m := revoke(rt, "demo", ""); resp.StatusCode != 200 || m != nil {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		if env.introspect(at)["active"] != false || env.introspect(rt)["active"] != false {
			t.Fatal("revoking the refresh token must revoke the grant")
		}
	})
	t.Run("AccessRevocationKillsRefreshToken", func(t *testing.T) {
		at, rt := env.passwordToken("bob@example.com", bobPW)
		if resp, _ := revoke(at, "demo", ""); resp.StatusCode != 200 {
			t.Fatal(resp.Status)
		}
		if env.introspect(at)["active"] != false || env.introspect(rt)["active"] != false {
			t.Fatal("revoking the access token must revoke the grant")
		}
		resp := env.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"demo"}}, "", "")
		if m := decode(t, resp); m["error"] != "invalid_grant" {
			t.Fatalf("refresh after revocation: %v", m)
		}
	})
	t.Run("UnknownTokenIs200", func(t *testing.T) {
		for _, tok := range []string{"garbage", "a.b.c", "ory_rt_a.b"} {
			if resp, _ := revoke(tok, "demo", ""); resp.StatusCode != 200 {
				t.Errorf("%q: %d", tok, resp.StatusCode)
			}
		}
	})
	t.Run("Errors", func(t *testing.T) {
		resp := env.post("/revoke", url.Values{"client_id": {"demo"}}, "", "")
		if m := decode(t, resp); resp.StatusCode != 400 || m["error"] != "invalid_request" {
			t.Fatalf("missing token: %d %v", resp.StatusCode, m)
		}
		resp = env.post("/revoke", url.Values{"token": {"x"}}, "app", "wrong-wrong-wrong-wrong-wrong-wrong")
		if m := decode(t, resp); resp.StatusCode != 401 || m["error"] != "invalid_client" || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
			t.Fatalf("bad client: %d %v", resp.StatusCode, m)
		}
	})
}

// A storage failure is 503 temporarily_unavailable at revocation and
// introspection, never a false 200 or active:false.
func TestStorageFailureIs503(t *testing.T) {
	st := openSQLite(t)
	env := newTestEnv(t, st)
	at, _ := env.passwordToken("alice@example.com", alicePW)
	st.Close() // the database goes away
	for _, path := range []string{"/revoke", "/introspect"} {
		resp := env.post(path, url.Values{"token": {at}}, "rs", rsSecret)
		m := decode(t, resp)
		if resp.StatusCode != 503 || m["error"] != "temporarily_unavailable" {
			t.Errorf("%s with the database down: %d %v", path, resp.StatusCode, m)
		}
	}
}
