package authserver

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// Any registration body is either refused with an RFC 7591 error or gives a
// client that ValidateClient accepts and that registrationView can echo.
func FuzzRegistrationMetadata(f *testing.F) {
	for _, seed := range []string{
		`{"redirect_uris":["https://a.example/cb"],"scope":"openid email"}`,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}}`,
		`{"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1/cb"],"response_types":["code"]}`,
		`{"redirect_uris":["https://a.example/cb"],"subject_type":"pairwise","post_logout_redirect_uris":["https://a.example/bye"]}`,
		`{"jwks":null,"grant_types":null}`,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_jwt"}`,
		`{"redirect_uris":["https://a.example/cb"],"backchannel_logout_uri":"http://127.0.0.1:8080/bc"}`,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://[::ffff:a9fe:a9fe]/jwks"}`,
	} {
		f.Add([]byte(seed))
	}
	s := &Server{cfg: Config{Issuer: "https://auth.example", Registration: RegistrationConfig{Scopes: oidcScopes}}}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req registrationRequest
		if json.Unmarshal(body, &req) != nil {
			return
		}
		c := storage.Client{ID: "fuzz-client", CreatedAt: time.Unix(0, 0)}
		if oe := s.applyMetadata(req.clientMetadata, &c); oe != nil {
			if oe.Status != 400 || (oe.Code != errInvalidClientMetadata && oe.Code != errInvalidRedirectURI) {
				t.Fatalf("error %+v", oe)
			}
			return
		}
		if err := ValidateClient(c, regNames); err != nil {
			t.Fatalf("accepted a client ValidateClient refuses: %v", err)
		}
		if c.SkipConsent || c.Introspect || len(c.Resources) > 0 || len(c.ExchangeAudiences) > 0 {
			t.Fatalf("registration granted an operator-only setting: %+v", c)
		}
		// The outbound-URL policy is on: no URL the server calls is a
		// literal non-public address.
		for _, u := range []string{c.JWKSURI, c.BackchannelLogoutURI} {
			if err := checkClientURLHost(u); u != "" && err != nil {
				t.Fatalf("accepted a URL the outbound policy refuses: %v", err)
			}
		}
		if _, err := json.Marshal(s.registrationView(c, "rat")); err != nil {
			t.Fatal(err)
		}
	})
}
