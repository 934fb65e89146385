package resource_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/gorilla/mux"

	"github.com/oauthkit/authserver/resource"
)

// exampleIssuer stands in for the authorization server: RFC 8414 metadata, a
// JWKS, and a way to mint RFC 9068 access tokens.
type exampleIssuer struct {
	*httptest.Server
	key ed25519.PrivateKey
}

func startIssuer() *exampleIssuer {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	is := &exampleIssuer{key: key}
	m := http.NewServeMux()
	m.HandleFunc("/.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": is.URL, "jwks_uri": is.URL + "/.well-known/jwks.json"})
	})
	m.HandleFunc("/.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "EdDSA", Use: "sig"}}})
	})
	is.Server = httptest.NewServer(m)
	return is
}

// token mints an access token for user-42 with the given roles and scope.
func (is *exampleIssuer) token(scope string, roles ...string) string {
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: is.key, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	now := time.Now()
	payload, _ := json.Marshal(map[string]any{
		"iss": is.URL, "sub": "user-42", "aud": []string{is.URL + "/api"}, "client_id": "web-app",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "jti": "j1",
		"scope": scope, "roles": roles, "name": "Ada",
	})
	jws, _ := signer.Sign(payload)
	s, _ := jws.CompactSerialize()
	return s
}

// get sends a GET with an optional bearer token and prints the answer.
func get(h http.Handler, path, token string) {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	fmt.Println(w.Code, strings.TrimSpace(w.Body.String()))
	if c := w.Header().Get("WWW-Authenticate"); c != "" {
		fmt.Println("  WWW-Authenticate:", c)
	}
}

// A service protects its handlers with Middleware and reads the caller from
// the request context.
func ExampleAuthenticator_Middleware() {
	issuer := startIssuer()
	defer issuer.Close()

	auth, err := resource.New(context.Background(), resource.Config{
		Issuer:   issuer.URL,          // the iss of the tokens, exactly
		Audience: issuer.URL + "/api", // this API's identifier, in aud
		Realm:    "example",
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("GET /api/hello", auth.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resource.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s", c.Name)
	})))

	get(mux, "/api/hello", issuer.token("read"))
	get(mux, "/api/hello", "")
	get(mux, "/api/hello", "not-a-jwt")
	// Output:
	// 200 hello Ada
	// 401 {"error":"invalid_token","error_description":"a bearer token is required"}
	//   WWW-Authenticate: Bearer realm="example"
	// 401 {"error":"invalid_token","error_description":"the access token is invalid"}
	//   WWW-Authenticate: Bearer realm="example", error="invalid_token", error_description="the access token is invalid"
}

// With gorilla/mux, the method value Middleware is a mux.MiddlewareFunc; the
// Require methods return one too.
func ExampleAuthenticator_Middleware_gorillaMux() {
	issuer := startIssuer()
	defer issuer.Close()
	auth, err := resource.New(context.Background(), resource.Config{Issuer: issuer.URL, Audience: issuer.URL + "/api"})
	if err != nil {
		log.Fatal(err)
	}

	r := mux.NewRouter()
	r.Use(auth.Middleware)
	r.HandleFunc("/api/items", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "items") })
	admin := r.PathPrefix("/api/admin").Subrouter()
	admin.Use(auth.RequireAnyRole("admin"))
	admin.HandleFunc("/users", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "users") })

	get(r, "/api/items", issuer.token("read", "user"))
	get(r, "/api/admin/users", issuer.token("read", "user"))
	get(r, "/api/admin/users", issuer.token("read", "admin"))
	// Output:
	// 200 items
	// 403 {"error":"insufficient_scope","error_description":"the caller lacks a required role"}
	//   WWW-Authenticate: Bearer error="insufficient_scope", error_description="the caller lacks a required role"
	// 200 users
}

// Scope checks answer 403 insufficient_scope and name the needed scopes in
// the challenge (RFC 6750 §3.1). Used alone, a Require middleware
// authenticates the request itself.
func ExampleAuthenticator_RequireAllScopes() {
	issuer := startIssuer()
	defer issuer.Close()
	auth, err := resource.New(context.Background(), resource.Config{Issuer: issuer.URL, Audience: issuer.URL + "/api"})
	if err != nil {
		log.Fatal(err)
	}
	write := auth.RequireAllScopes("items:write")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "written")
	}))
	get(write, "/api/items", issuer.token("items:read"))
	get(write, "/api/items", issuer.token("items:read items:write"))
	// Output:
	// 403 {"error":"insufficient_scope","error_description":"the access token lacks a required scope"}
	//   WWW-Authenticate: Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="items:write"
	// 200 written
}

// A service that must refuse revoked tokens at once, or that receives
// opaque tokens, introspects them (RFC 7662) with its own client
// credentials. ModeLocalThenIntrospect verifies the JWT first, so forged
// tokens never reach the issuer.
func ExampleNew_introspection() {
	cfg := resource.Config{
		Issuer:   "https://auth.example.com",
		Audience: "https://auth.example.com/api",
		Mode:     resource.ModeLocalThenIntrospect,
		Introspection: resource.IntrospectionConfig{
			ClientID:     "items-api",
			ClientSecret: "read from a secret file, never from code",
			CacheTTL:     10 * time.Second, // a revocation takes effect within 10 s
		},
		Logger: slog.Default(),
	}
	auth, err := resource.New(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	_ = auth
}

// Handlers behind the middleware are tested without tokens by putting
// claims in the request context.
func ExampleNewContext() {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := resource.FromContext(r.Context())
		if !ok {
			http.Error(w, "no claims", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%s may write: %v", c.Subject, c.HasScope("items:write"))
	})

	r := httptest.NewRequest(http.MethodGet, "/api/items", nil)
	r = r.WithContext(resource.NewContext(r.Context(), &resource.Claims{Subject: "user-42", Scopes: []string{"items:write"}}))
	w := httptest.NewRecorder()
	handler.ServeHTTP(w, r)
	fmt.Println(w.Body.String())
	// Output: user-42 may write: true
}

// An API publishes its RFC 9728 metadata so clients can find the
// authorization server, and points to it from every challenge.
func ExampleMetadataHandler() {
	const api = "https://api.example.com/items"
	metaURL, err := resource.MetadataURL(api)
	if err != nil {
		log.Fatal(err)
	}
	md := resource.ProtectedResourceMetadata{
		Resource:               api,
		AuthorizationServers:   []string{"https://auth.example.com"},
		ScopesSupported:        []string{"items:read", "items:write"},
		BearerMethodsSupported: []string{"header"},
	}
	mux := http.NewServeMux()
	mux.Handle(resource.WellKnownPath+"/items", resource.MetadataHandler(md))
	// Config.ResourceMetadataURL = metaURL adds resource_metadata to challenges.

	fmt.Println(metaURL)
	get(mux, resource.WellKnownPath+"/items", "")
	// Output:
	// https://api.example.com/.well-known/oauth-protected-resource/items
	// 200 {"resource":"https://api.example.com/items","authorization_servers":["https://auth.example.com"],"scopes_supported":["items:read","items:write"],"bearer_methods_supported":["header"]}
}
