package adminapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/adminapi"
	"github.com/oauthkit/authserver/internal/assertiontest"
)

// assertionToken asks the public listener for a client_credentials token
// with a client assertion (RFC 7523 §2.2) signed by key under alg, and
// returns the status.
func (e *env) assertionToken(t *testing.T, client string, alg jose.SignatureAlgorithm, key any, kid string) int {
	t.Helper()
	a := assertiontest.Sign(t, alg, key, kid, assertiontest.Claims(client, client, e.pub.URL+"/token", time.Minute))
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"read"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
	resp, err := http.PostForm(e.pub.URL+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The admin API registers private_key_jwt and client_secret_jwt clients
// with the CLI's rules (authserver.ValidateClient); the clients then
// authenticate at the token endpoint. A client_secret_jwt secret is shown
// once and works as the HMAC key; rotation replaces it; a private_key_jwt
// client has no secret and gets new keys by PUT.
func TestClientAuthenticationMethods(t *testing.T) {
	e := newEnv(t)
	k1, k1JWKS := assertiontest.ECKey(t, "k1")
	k2, k2JWKS := assertiontest.ECKey(t, "k2")

	var pk adminapi.Client
	e.call(http.MethodPost, "/admin/v1/clients", map[string]any{"id": "pk", "grant_types": []string{"client_credentials"}, "scopes": []string{"read"},
		"token_endpoint_auth_method": "private_key_jwt", "jwks": json.RawMessage(k1JWKS)}).want(t, http.StatusCreated).decode(t, &pk)
	if pk.ClientSecret != "" || pk.Secrets != 0 || pk.TokenEndpointAuthMethod != "private_key_jwt" || !strings.Contains(string(pk.JWKS), `"kid":"k1"`) {
		t.Fatalf("created %+v", pk)
	}
	if s := e.assertionToken(t, "pk", jose.ES256, k1, "k1"); s != http.StatusOK {
		t.Fatalf("ES256 assertion of the registered key: %d", s)
	}

	var cs adminapi.Client
	e.call(http.MethodPost, "/admin/v1/clients", map[string]any{"id": "cs", "grant_types": []string{"client_credentials"}, "scopes": []string{"read"},
		"token_endpoint_auth_method": "client_secret_jwt"}).want(t, http.StatusCreated).decode(t, &cs)
	if len(cs.ClientSecret) < 64 || cs.Secrets != 1 || cs.TokenEndpointAuthMethod != "client_secret_jwt" {
		t.Fatalf("created %+v", cs)
	}
	if s := e.assertionToken(t, "cs", jose.HS256, []byte(cs.ClientSecret), ""); s != http.StatusOK {
		t.Fatalf("HS256 assertion with the shown secret: %d", s)
	}
	if r := e.call(http.MethodGet, "/admin/v1/clients/cs", nil).want(t, http.StatusOK); strings.Contains(string(r.body), cs.ClientSecret) {
		t.Fatalf("secret shown again: %s", r.body)
	}

	t.Run("Validation", func(t *testing.T) {
		cc := func(extra map[string]any) map[string]any {
			m := map[string]any{"id": "bad", "grant_types": []string{"client_credentials"}}
			for k, v := range extra {
				m[k] = v
			}
			return m
		}
		privJWKS := `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}`
		for name, tc := range map[string]struct {
			body map[string]any
			want string
		}{
			"UnknownMethod":          {cc(map[string]any{"token_endpoint_auth_method": "tls_client_auth"}), "unknown token_endpoint_auth_method"},
			"PrivateKeyJWTNoKeys":    {cc(map[string]any{"token_endpoint_auth_method": "private_key_jwt"}), "private_key_jwt needs jwks_uri or jwks"},
			"PrivateKeyInJWKS":       {cc(map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks": json.RawMessage(privJWKS)}), "not a public key"},
			"BothKeySources":         {cc(map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks": json.RawMessage(k1JWKS), "jwks_uri": "https://pk.example/jwks"}), "not both"},
			"HTTPJWKSURI":            {cc(map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://pk.example/jwks"}), "must be https"},
			"KeysWithoutPrivateKey":  {cc(map[string]any{"jwks": json.RawMessage(k1JWKS)}), "only for clients with token_endpoint_auth_method private_key_jwt"},
			"NoneForConfidential":    {cc(map[string]any{"token_endpoint_auth_method": "none"}), "none is for public clients only"},
			"SecretMethodForPublic":  {map[string]any{"id": "bad", "public": true, "grant_types": []string{"password"}, "token_endpoint_auth_method": "client_secret_post"}, "a public client authenticates with"},
			"JWKSWithoutKeysMember":  {cc(map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks": json.RawMessage(`{"keys":[]}`)}), "no keys"},
			"JWKSURIWithFragment":    {cc(map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://pk.example/jwks#x"}), "without fragment"},
			"JWKSURIOnClientSecretJ": {cc(map[string]any{"token_endpoint_auth_method": "client_secret_jwt", "jwks_uri": "https://pk.example/jwks"}), "only for clients with"},
		} {
			t.Run(name, func(t *testing.T) {
				r := e.call(http.MethodPost, "/admin/v1/clients", tc.body).want(t, http.StatusUnprocessableEntity)
				if !strings.Contains(string(r.body), tc.want) {
					t.Fatalf("problem %s, want it to say %q", r.body, tc.want)
				}
			})
		}
		e.call(http.MethodGet, "/admin/v1/clients/bad", nil).want(t, http.StatusNotFound)
	})

	t.Run("PutReplacesKeysNotTheMethod", func(t *testing.T) {
		upd := map[string]any{"grant_types": []string{"client_credentials"}, "scopes": []string{"read"}, "token_endpoint_auth_method": "private_key_jwt", "jwks": json.RawMessage(k2JWKS)}
		r1 := e.call(http.MethodPut, "/admin/v1/clients/pk", upd).want(t, http.StatusOK)
		if s := e.assertionToken(t, "pk", jose.ES256, k2, "k2"); s != http.StatusOK {
			t.Fatalf("assertion with the new key: %d", s)
		}
		if s := e.assertionToken(t, "pk", jose.ES256, k1, "k1"); s != http.StatusUnauthorized {
			t.Fatalf("assertion with the replaced key: %d", s)
		}
		// The same PUT again changes nothing (the set is stored compact).
		if r2 := e.call(http.MethodPut, "/admin/v1/clients/pk", upd).want(t, http.StatusOK); r2.header.Get("ETag") != r1.header.Get("ETag") {
			t.Fatalf("second PUT changed the ETag: %s vs %s", r2.header.Get("ETag"), r1.header.Get("ETag"))
		}
		r := e.call(http.MethodPut, "/admin/v1/clients/pk", map[string]any{"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "client_secret_basic"}).
			want(t, http.StatusUnprocessableEntity)
		if !strings.Contains(string(r.body), "cannot change from private_key_jwt to client_secret_basic") {
			t.Fatalf("problem %s", r.body)
		}
		e.call(http.MethodPut, "/admin/v1/clients/cs", map[string]any{"grant_types": []string{"client_credentials"}}).want(t, http.StatusUnprocessableEntity)
		// Between client_secret_basic and client_secret_post the secret stays.
		e.call(http.MethodPut, "/admin/v1/clients/svc", map[string]any{"grant_types": []string{"client_credentials"}, "scopes": []string{"read"},
			"token_endpoint_auth_method": "client_secret_post"}).want(t, http.StatusOK)
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"svc"}, "client_secret": {svcSecret}}
		resp, err := http.PostForm(e.pub.URL+"/token", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("client_secret_post after the PUT: %d", resp.StatusCode)
		}
	})

	t.Run("SecretRotation", func(t *testing.T) {
		e.call(http.MethodPost, "/admin/v1/clients/pk/secret", nil).want(t, http.StatusConflict)
		e.call(http.MethodPost, "/admin/v1/clients/cs/secret", map[string]any{"keep_old": true}).want(t, http.StatusConflict)
		var rot adminapi.Client
		e.call(http.MethodPost, "/admin/v1/clients/cs/secret", nil).want(t, http.StatusOK).decode(t, &rot)
		if len(rot.ClientSecret) < 64 || rot.ClientSecret == cs.ClientSecret || rot.Secrets != 1 {
			t.Fatalf("rotation %+v", rot)
		}
		if s := e.assertionToken(t, "cs", jose.HS256, []byte(rot.ClientSecret), ""); s != http.StatusOK {
			t.Fatalf("HS256 assertion with the rotated secret: %d", s)
		}
		if s := e.assertionToken(t, "cs", jose.HS256, []byte(cs.ClientSecret), ""); s != http.StatusUnauthorized {
			t.Fatalf("HS256 assertion with the old secret: %d", s)
		}
	})
}
