package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/authserver/internal/testbin"
	"github.com/oauthkit/authserver/storage"
	sqlstore "github.com/oauthkit/authserver/storage/sql"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
)

// TestMain keeps the developer's AUTHSERVER_* settings out of the in-process
// tests (AUTHSERVER_TEST_* are test switches and stay).
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix) && !strings.HasPrefix(name, envPrefix+"TEST_") {
			os.Unsetenv(name)
		}
	}
	os.Exit(m.Run())
}

// cliRun runs authserver in-process and returns its stdout and error.
func cliRun(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(t.Context(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), err
}

// mustRunner returns cliRun that fails t on an error, with extra appended
// to every command's arguments.
func mustRunner(t *testing.T, extra ...string) func(stdin string, args ...string) string {
	return func(stdin string, args ...string) string {
		t.Helper()
		out, err := cliRun(t, stdin, append(args, extra...)...)
		if err != nil {
			t.Fatalf("authserver %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
}

// adminToken gets an access token with the admin scope from the server at
// base with client_credentials of client id.
func adminToken(t *testing.T, base, id, secret string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}
	req, _ := http.NewRequest(http.MethodPost, base+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	if tok.AccessToken == "" {
		t.Fatalf("admin token: status %d", resp.StatusCode)
	}
	return tok.AccessToken
}

// admin runs admin commands on one database with --output json and records
// which commands ran.
type admin struct {
	t   *testing.T
	db  string
	ran map[string]bool
}

// json runs args with --db and --output json, fails the test on error, and
// decodes stdout into v.
func (a *admin) json(v any, stdin string, args ...string) {
	a.t.Helper()
	a.record(args)
	out, err := cliRun(a.t, stdin, append(args, "--db", a.db, "--output", "json")...)
	if err != nil {
		a.t.Fatalf("authserver %s: %v", strings.Join(args, " "), err)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		a.t.Fatalf("authserver %s: output is not the expected JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fail runs args, expects an error that is one line and contains want, and
// returns it.
func (a *admin) fail(want, stdin string, args ...string) {
	a.t.Helper()
	_, err := cliRun(a.t, stdin, append(args, "--db", a.db)...)
	switch {
	case err == nil:
		a.t.Errorf("authserver %s: no error", strings.Join(args, " "))
	case strings.Contains(err.Error(), "\n"):
		a.t.Errorf("authserver %s: the error is not one line: %q", strings.Join(args, " "), err)
	case !strings.Contains(err.Error(), want):
		a.t.Errorf("authserver %s: error %q does not contain %q", strings.Join(args, " "), err, want)
	}
}

func (a *admin) record(args []string) {
	var words []string
	for _, w := range args {
		if strings.HasPrefix(w, "-") {
			break
		}
		words = append(words, w)
	}
	for i := range words {
		a.ran[strings.Join(words[:i+1], " ")] = true
	}
}

type jsonUser struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Roles     []string  `json:"roles"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

type jsonClient struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Public     bool     `json:"public"`
	GrantTypes []string `json:"grant_types"`
	Scopes     []string `json:"scopes"`
	Introspect bool     `json:"introspect"`
	// Code-flow registration.
	RedirectURIs []string `json:"redirect_uris"`
	Resources    []string `json:"resources"`
	SkipConsent  bool     `json:"skip_consent"`
	RequirePAR   bool     `json:"require_par"`
	RequireDPoP  bool     `json:"dpop_bound_access_tokens"`
	// OpenID Connect logout.
	PostLogoutRedirectURIs []string  `json:"post_logout_redirect_uris"`
	BackchannelLogoutURI   string    `json:"backchannel_logout_uri"`
	Secrets                int       `json:"secrets"`
	CreatedAt              time.Time `json:"created_at"`
	Secret                 string    `json:"client_secret"`
	// Token exchange and secret expiry.
	ExchangeAudiences []string `json:"exchange_audiences"`
	SecretExpiresAt   int64    `json:"client_secret_expires_at"`
	// Client authentication.
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method"`
}

type jsonKey struct {
	ID         string     `json:"kid"`
	Algorithm  string     `json:"alg"`
	State      string     `json:"state"`
	CreatedAt  time.Time  `json:"created_at"`
	ActivateAt *time.Time `json:"activate_at"`
	RetiredAt  *time.Time `json:"retired_at"`
	DeleteAt   *time.Time `json:"delete_at"`
}

type jsonDeleted struct {
	Deleted       string `json:"deleted"`
	TokensRevoked int    `json:"tokens_revoked"`
}

// Every admin command once, end to end on a temporary SQLite database,
// in-process; JSON output is decoded strictly. The test fails when a command
// is added without being exercised here.
func TestAdminCommands(t *testing.T) {
	dir := t.TempDir()
	a := &admin{t: t, db: filepath.Join(dir, "data", "authserver.db"), ran: map[string]bool{}}
	const secret = "0123456789abcdef0123456789abcdef-admin-test"
	const alicePW, aliceNewPW = "violet-harbor-lantern-42", "amber-quarry-whistle-77"

	var v struct{ Version string }
	a.json(&v, "", "version")
	if v.Version != version {
		t.Errorf("version: %q", v.Version)
	}
	var st struct{ Status string }
	a.json(&st, "", "migrate")
	if st.Status != "ok" {
		t.Errorf("migrate: %q", st.Status)
	}

	// Users.
	var alice jsonUser
	a.json(&alice, alicePW+"\n", "users", "add", "--email", "alice@example.com", "--name", "Alice", "--role", "user", "--password-stdin")
	if alice.ID == "" || alice.Email != "alice@example.com" || !slices.Equal(alice.Roles, []string{"user"}) {
		t.Fatalf("users add: %+v", alice)
	}
	a.fail("at least 12 characters", "short\n", "users", "add", "--email", "bob@example.com", "--password-stdin")
	a.fail("most common passwords", "password1234\n", "users", "add", "--email", "bob@example.com", "--password-stdin")
	a.fail("already exists", alicePW+"\n", "users", "add", "--email", "alice@example.com", "--password-stdin")
	a.fail("give --password-stdin or --password-hash-stdin", "", "users", "add", "--email", "bob@example.com")
	// Importing a user with the bcrypt hash of another system (such as the
	// FastAPI demo's passlib hashes).
	const bobPW = "imported-bcrypt-secret-9"
	bh, err := bcrypt.GenerateFromPassword([]byte(bobPW), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var bob jsonUser
	a.json(&bob, string(bh)+"\n", "users", "add", "--email", "bob@example.com", "--role", "user", "--password-hash-stdin")
	a.fail("not an argon2id (PHC) or bcrypt hash", "$1$abc$def\n", "users", "add", "--email", "carol@example.com", "--password-hash-stdin")
	a.fail("bcrypt cost 20 is above 14", "$2b$20$"+strings.Repeat("a", 53)+"\n", "users", "add", "--email", "carol@example.com", "--password-hash-stdin")
	var users []jsonUser
	a.json(&users, "", "users", "list")
	if len(users) != 2 {
		t.Fatalf("users list: %+v", users)
	}
	var u jsonUser
	a.json(&u, "", "users", "show", "alice@example.com")
	if u.ID != alice.ID {
		t.Fatalf("users show by email: %+v", u)
	}
	a.fail(`no user "nobody@example.com"`, "", "users", "show", "nobody@example.com")
	a.fail("takes one argument, ID|EMAIL", "", "users", "show")
	a.json(&u, aliceNewPW+"\n", "users", "set-password", alice.ID, "--force-change")
	if !mustChange(t, a.db, alice.ID) {
		t.Fatal("set-password --force-change did not set must_change_password")
	}
	// A change form still open for the reset password (its pending record)
	// ends with the next set-password, forced or not.
	const pendingChange = storage.TokenKind("password_change")
	withStore(t, a.db, func(st *sqlstore.Store) {
		now := time.Now().UTC()
		if err := st.CreateToken(t.Context(), storage.Token{Kind: pendingChange, Signature: "pending", RequestID: "pending", Subject: alice.ID,
			Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Minute), Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	})
	a.json(&u, aliceNewPW+"\n", "users", "set-password", alice.ID)
	if mustChange(t, a.db, alice.ID) {
		t.Fatal("set-password without --force-change left must_change_password set")
	}
	withStore(t, a.db, func(st *sqlstore.Store) {
		if ts, err := st.ListTokens(t.Context(), pendingChange, alice.ID); err != nil || len(ts) != 0 {
			t.Fatalf("pending password changes after set-password: %d %v", len(ts), err)
		}
	})
	a.fail("at least 12 characters", "short\n", "users", "set-password", alice.ID)
	a.json(&u, "", "users", "set-roles", "alice@example.com", "--role", "admin", "--role", "auditor")
	if !slices.Equal(u.Roles, []string{"admin", "auditor"}) {
		t.Fatalf("users set-roles: %v", u.Roles)
	}
	withStore(t, a.db, func(st *sqlstore.Store) {
		if err := st.CreateToken(t.Context(), storage.Token{Kind: storage.RefreshToken, Signature: "alice-rt", RequestID: "g1",
			ClientID: "demo", Subject: alice.ID, Active: true, RequestedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	})
	a.json(&u, "", "users", "disable", "alice@example.com")
	if !u.Disabled {
		t.Fatal("users disable: still enabled")
	}
	withStore(t, a.db, func(st *sqlstore.Store) {
		if _, err := st.GetToken(t.Context(), storage.RefreshToken, "alice-rt"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("users disable left the user's refresh token: %v", err)
		}
	})
	a.json(&u, "", "users", "enable", "alice@example.com")
	if u.Disabled {
		t.Fatal("users enable: still disabled")
	}
	var consents []map[string]any
	a.json(&consents, "", "users", "consents", "alice@example.com")
	if len(consents) != 0 {
		t.Fatalf("users consents of a new user: %v", consents)
	}
	var revoked map[string]any
	a.json(&revoked, "", "users", "revoke-consent", "alice@example.com", "--client", "nope")
	if revoked["consents_revoked"] != float64(0) {
		t.Fatalf("users revoke-consent: %v", revoked)
	}

	// Clients.
	var app jsonClient
	a.json(&app, "", "clients", "add", "--id", "app", "--name", "App", "--grant", "client_credentials", "--scope", "read", "--introspect")
	if app.Secret == "" || app.Secrets != 1 || app.Public || !app.Introspect {
		t.Fatalf("clients add (generated secret): %+v", app)
	}
	var web jsonClient
	a.json(&web, "", "clients", "add", "--id", "web", "--public", "--grant", "password", "--grant", "refresh_token")
	if web.Secret != "" || !web.Public || web.Secrets != 0 {
		t.Fatalf("clients add --public: %+v", web)
	}
	a.fail("a public client may only use", "", "clients", "add", "--id", "bad", "--public", "--grant", "client_credentials")
	a.fail("is a user's ID", "", "clients", "add", "--id", alice.ID, "--grant", "client_credentials")

	// Token exchange policy and secret expiry.
	var gw jsonClient
	var deleted0 map[string]any
	a.json(&gw, "", "clients", "add", "--id", "gw", "--grant", "urn:ietf:params:oauth:grant-type:token-exchange",
		"--exchange-audience", "https://orders.example/", "--exchange-audience", "billing", "--secret-ttl", "24h")
	if !slices.Equal(gw.ExchangeAudiences, []string{"https://orders.example/", "billing"}) ||
		gw.SecretExpiresAt < time.Now().Add(23*time.Hour).Unix() || gw.SecretExpiresAt > time.Now().Add(25*time.Hour).Unix() {
		t.Fatalf("clients add (exchange): %+v", gw)
	}
	a.json(&deleted0, "", "clients", "delete", "gw")
	a.fail("--exchange-audience is only for", "", "clients", "add", "--id", "bad", "--grant", "client_credentials", "--exchange-audience", "billing")
	a.fail("a public client may only use", "", "clients", "add", "--id", "bad", "--public", "--grant", "urn:ietf:params:oauth:grant-type:token-exchange")

	// The authorization code flow's registration, and clients update.
	var spa jsonClient
	a.json(&spa, "", "clients", "add", "--id", "spa", "--public", "--grant", "authorization_code", "--grant", "refresh_token",
		"--redirect-uri", "https://spa.example/cb", "--redirect-uri", "http://127.0.0.1/cb", "--redirect-uri", "com.example.app:/cb",
		"--resource", "https://api.example/", "--skip-consent", "--require-par")
	if !slices.Equal(spa.RedirectURIs, []string{"https://spa.example/cb", "http://127.0.0.1/cb", "com.example.app:/cb"}) ||
		!slices.Equal(spa.Resources, []string{"https://api.example/"}) || !spa.SkipConsent || !spa.RequirePAR {
		t.Fatalf("clients add (code flow): %+v", spa)
	}
	for _, bad := range []struct{ uri, msg string }{
		{"https://spa.example/cb#frag", "fragment"},
		{"http://spa.example/cb", "loopback"},
		{"/relative", "absolute"},
		{"https://user@spa.example/cb", "user information"},
	} {
		a.fail(bad.msg, "", "clients", "add", "--id", "bad", "--public", "--grant", "authorization_code", "--redirect-uri", bad.uri)
	}
	a.fail("needs at least one --redirect-uri", "", "clients", "add", "--id", "bad", "--public", "--grant", "authorization_code")
	a.json(&spa, "", "clients", "update", "spa", "--redirect-uri", "https://spa.example/cb2", "--skip-consent=false", "--name", "SPA")
	if !slices.Equal(spa.RedirectURIs, []string{"https://spa.example/cb2"}) || spa.SkipConsent || !spa.RequirePAR || spa.Name != "SPA" ||
		!slices.Equal(spa.GrantTypes, []string{"authorization_code", "refresh_token"}) {
		t.Fatalf("clients update changed more or less than its flags: %+v", spa)
	}
	a.fail("loopback", "", "clients", "update", "spa", "--redirect-uri", "http://evil.example/cb")
	// OpenID Connect logout registration.
	a.json(&spa, "", "clients", "update", "spa", "--post-logout-redirect-uri", "https://spa.example/bye",
		"--backchannel-logout-uri", "https://spa.example/backchannel")
	if !slices.Equal(spa.PostLogoutRedirectURIs, []string{"https://spa.example/bye"}) || spa.BackchannelLogoutURI != "https://spa.example/backchannel" ||
		!slices.Equal(spa.RedirectURIs, []string{"https://spa.example/cb2"}) {
		t.Fatalf("clients update with logout URIs: %+v", spa)
	}
	a.fail("fragment", "", "clients", "update", "spa", "--post-logout-redirect-uri", "https://spa.example/bye#x")
	a.fail("must be https", "", "clients", "update", "spa", "--backchannel-logout-uri", "http://spa.example/backchannel")
	a.fail("all redirect URIs on one host", "", "clients", "add", "--id", "pw", "--public", "--grant", "authorization_code",
		"--redirect-uri", "https://a.example/cb", "--redirect-uri", "https://b.example/cb", "--subject-type", "pairwise")
	a.fail("public or pairwise", "", "clients", "update", "spa", "--subject-type", "secret")
	a.fail(`no client "nope"`, "", "clients", "update", "nope", "--name", "x")
	a.json(&spa, "", "clients", "show", "spa")
	if !slices.Equal(spa.RedirectURIs, []string{"https://spa.example/cb2"}) {
		t.Fatalf("a refused update must change nothing: %+v", spa)
	}
	var deleted map[string]any
	a.json(&deleted, "", "clients", "delete", "spa")
	a.fail(`client "app" already exists`, "", "clients", "add", "--id", "app", "--grant", "client_credentials")
	var clients []jsonClient
	a.json(&clients, "", "clients", "list")
	if len(clients) != 2 {
		t.Fatalf("clients list: %+v", clients)
	}
	var c jsonClient
	a.json(&c, "", "clients", "show", "app")
	if c.ID != "app" || c.Secret != "" || !slices.Equal(c.Scopes, []string{"read"}) {
		t.Fatalf("clients show (must not show a secret): %+v", c)
	}
	a.fail(`no client "nope"`, "", "clients", "show", "nope")
	var rotated jsonClient
	a.json(&rotated, "", "clients", "rotate-secret", "app", "--keep-old")
	if rotated.Secrets != 2 || rotated.Secret == "" || rotated.Secret == app.Secret {
		t.Fatalf("clients rotate-secret --keep-old: two secrets, a new one shown once: %+v", rotated)
	}
	a.fail("a public client has no secret", "", "clients", "rotate-secret", "web")

	// Keys: none before the first start; rotate creates the first and then a
	// second one.
	var ks []jsonKey
	a.json(&ks, "", "keys", "list")
	if len(ks) != 0 {
		t.Fatalf("keys list on a new database: %+v", ks)
	}
	a.fail("no server secret", "", "keys", "rotate")
	a.json(&ks, "", "keys", "rotate", "--secret", secret, "--key-algorithm", "ES256")
	// Each algorithm (ES256 for access tokens, RS256 always, for ID tokens)
	// has an active key and a next one.
	if len(ks) != 4 {
		t.Fatalf("keys rotate: want an active key and a next one per algorithm, got %+v", ks)
	}
	a.json(&ks, "", "keys", "list")
	states := map[string][]string{}
	for _, k := range ks {
		states[k.Algorithm] = append(states[k.Algorithm], k.State)
		if k.ID == "" || k.CreatedAt.IsZero() {
			t.Errorf("keys list: %+v", k)
		}
	}
	for _, alg := range []string{"ES256", "RS256"} {
		slices.Sort(states[alg])
		if !slices.Equal(states[alg], []string{"active", "next"}) {
			t.Fatalf("keys list states: %v", states)
		}
	}

	// Tokens: run the server in-process on the same database, get a token for
	// alice and one for the app, then revoke them from the command line.
	base, stop := serveInProcess(t, a.db, "--secret", secret, "--key-algorithm", "ES256")
	form := url.Values{"grant_type": {"password"}, "username": {"alice@example.com"}, "password": {aliceNewPW}, "client_id": {"web"}}
	if code := postStatus(t, base+"/token", form, "", ""); code != http.StatusOK {
		t.Fatalf("password grant with the new password: %d", code)
	}
	form = url.Values{"grant_type": {"password"}, "username": {"bob@example.com"}, "password": {bobPW}, "client_id": {"web"}}
	if code := postStatus(t, base+"/token", form, "", ""); code != http.StatusOK {
		t.Fatalf("password grant with an imported bcrypt hash: %d", code)
	}
	cc := url.Values{"grant_type": {"client_credentials"}}
	if code := postStatus(t, base+"/token", cc, "app", app.Secret); code != http.StatusOK {
		t.Fatalf("client_credentials with the previous secret (kept): %d", code)
	}
	stop()
	var rev struct {
		TokensRevoked int `json:"tokens_revoked"`
	}
	a.json(&rev, "", "tokens", "revoke", "--user", "alice@example.com")
	if rev.TokensRevoked < 1 {
		t.Errorf("tokens revoke --user: %d revoked", rev.TokensRevoked)
	}
	a.json(&rev, "", "tokens", "revoke", "--client", "app")
	if rev.TokensRevoked < 1 {
		t.Errorf("tokens revoke --client: %d revoked", rev.TokensRevoked)
	}
	a.fail("give --user and/or --client", "", "tokens", "revoke")

	// The effective configuration (it reads no database).
	var cfg map[string]any
	a.json(&cfg, "", "config", "show", "--secret", secret)
	if cfg["db"] != a.db || cfg["secret"] != redacted {
		t.Errorf("config show: db %v, secret %v", cfg["db"], cfg["secret"])
	}

	// Deletion.
	var del jsonDeleted
	a.json(&del, "", "users", "delete", "alice@example.com")
	if del.Deleted != alice.ID {
		t.Errorf("users delete: %+v", del)
	}
	a.json(&del, "", "clients", "delete", "app")
	if del.Deleted != "app" {
		t.Errorf("clients delete: %+v", del)
	}
	a.json(&users, "", "users", "list")
	a.json(&clients, "", "clients", "list")
	if len(users) != 1 || len(clients) != 1 {
		t.Errorf("after delete: %d users, %d clients", len(users), len(clients))
	}

	// Trusted issuers of the JWT bearer grant (RFC 7523).
	type jsonIssuer struct {
		Issuer     string          `json:"issuer"`
		JWKSURI    string          `json:"jwks_uri"`
		JWKS       json.RawMessage `json:"jwks"`
		Subjects   []string        `json:"subjects"`
		AnySubject bool            `json:"any_subject"`
		Scopes     []string        `json:"scopes"`
		CreatedAt  time.Time       `json:"created_at"`
	}
	var iss jsonIssuer
	a.json(&iss, "", "issuers", "add", "--issuer", "https://idp.example", "--jwks-uri", "https://idp.example/jwks.json",
		"--subject", "alice@example.com", "--scope", "read")
	if iss.Issuer != "https://idp.example" || !slices.Equal(iss.Subjects, []string{"alice@example.com"}) || iss.AnySubject {
		t.Errorf("issuers add: %+v", iss)
	}
	a.fail("already exists", "", "issuers", "add", "--issuer", "https://idp.example", "--jwks-uri", "https://idp.example/jwks.json", "--any-subject", "--scope", "read")
	a.fail("give --subject (repeatable) or --any-subject", "", "issuers", "add", "--issuer", "https://x.example", "--jwks-uri", "https://x.example/jwks", "--scope", "read")
	a.fail("must be https", "", "issuers", "add", "--issuer", "https://x.example", "--jwks-uri", "http://x.example/jwks", "--any-subject", "--scope", "read")
	a.fail("give --jwks-uri or --jwks-file", "", "issuers", "add", "--issuer", "https://x.example", "--any-subject", "--scope", "read")
	var issuers []jsonIssuer
	a.json(&issuers, "", "issuers", "list")
	if len(issuers) != 1 || issuers[0].Issuer != "https://idp.example" {
		t.Errorf("issuers list: %+v", issuers)
	}
	var removed map[string]any
	a.json(&removed, "", "issuers", "remove", "https://idp.example")
	a.fail(`no issuer "https://idp.example"`, "", "issuers", "remove", "https://idp.example")
	// JWT client authentication flags.
	a.fail("--auth-method private_key_jwt needs --jwks-uri or --jwks-file", "", "clients", "add", "--id", "pk", "--auth-method", "private_key_jwt", "--grant", "client_credentials")
	a.fail("unknown --auth-method", "", "clients", "add", "--id", "pk", "--auth-method", "tls_client_auth", "--grant", "client_credentials")
	empty := filepath.Join(a.t.TempDir(), "empty.json")
	if err := os.WriteFile(empty, []byte("null\n"), 0o600); err != nil {
		a.t.Fatal(err)
	}
	a.fail("--jwks-file: the file holds no JWK Set", "", "clients", "add", "--id", "pk", "--auth-method", "private_key_jwt", "--jwks-file", empty, "--grant", "client_credentials")
	a.fail("a private_key_jwt client has no secret", "", "clients", "add", "--id", "pk", "--auth-method", "private_key_jwt",
		"--jwks-uri", "https://pk.example/jwks", "--generate-secret", "--grant", "client_credentials")
	// An initial access token for dynamic registration is printed once and
	// only its hash is stored.
	var iat struct {
		Token     string `json:"initial_access_token"`
		ExpiresAt string `json:"expires_at"`
		MaxUses   int    `json:"max_uses"`
	}
	a.json(&iat, "", "clients", "initial-token", "--ttl", "2h", "--max-uses", "3")
	if exp, err := time.Parse(time.RFC3339, iat.ExpiresAt); len(iat.Token) < 40 || iat.MaxUses != 3 || err != nil || time.Until(exp) < 119*time.Minute {
		t.Errorf("clients initial-token: %+v", iat)
	}
	for _, f := range []string{a.db, a.db + "-wal"} {
		if raw, _ := os.ReadFile(f); bytes.Contains(raw, []byte(iat.Token)) {
			t.Errorf("the initial access token is stored in clear in %s", f)
		}
	}
	a.fail("--ttl must be positive", "", "clients", "initial-token", "--ttl", "0s")

	// cobra's shell completion is enabled.
	a.record([]string{"completion", "bash"})
	if out, err := cliRun(t, "", "completion", "bash"); err != nil || !strings.Contains(out, "bash completion") {
		t.Errorf("completion bash: %v", err)
	}

	// Generic errors are one line too.
	a.fail(`unknown command "bogus"`, "", "users", "bogus")
	a.fail("did you mean serve", "", "serv")
	a.fail("unknown flag: --bogus (see 'authserver users list --help')", "", "users", "list", "--bogus")
	a.fail(`--output must be text or json, not "yaml"`, "", "users", "list", "--output", "yaml")

	for _, path := range leafCommands(newRoot(nil, nil, nil)) {
		if !a.ran[path] {
			t.Errorf("command %q is not exercised by this test", path)
		}
	}
}

// leafCommands returns the paths ("users add") of the runnable commands
// without subcommands, leaving out cobra's help and every completion shell
// but bash.
func leafCommands(root *cobra.Command) []string {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var out []string
	var walk func(c *cobra.Command, prefix string)
	walk = func(c *cobra.Command, prefix string) {
		for _, sub := range c.Commands() {
			path := strings.TrimSpace(prefix + " " + sub.Name())
			switch {
			case path == "help" || (strings.HasPrefix(path, "completion ") && path != "completion bash"):
			case sub.HasSubCommands():
				walk(sub, path)
			case path == "serve":
				// Run by TestShutdown* and TestDemoFlowAndRestart.
			default:
				out = append(out, path)
			}
		}
	}
	walk(root, "")
	return out
}

var inProcessListeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// serveInProcess runs `serve` in this process on a free port and returns its
// URL and a function that stops it (and checks it stopped cleanly).
func serveInProcess(t *testing.T, db string, args ...string) (base string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	logs := &testbin.Buffer{}
	all := append([]string{"serve", "--db", db, "--addr", "127.0.0.1:0", "--argon2-memory", "64", "--argon2-time", "1"}, args...)
	if !slices.Contains(args, "--admin-addr") {
		// Tests run servers side by side: none takes the default 127.0.0.1:8081.
		all = append(all, "--admin-addr", "off")
	}
	done := make(chan error, 1)
	go func() { done <- run(ctx, all, strings.NewReader(""), &bytes.Buffer{}, logs) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := inProcessListeningRE.FindStringSubmatch(logs.String()); m != nil {
			base = "http://" + m[1]
			break
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("serve exited: %v\n%s", err, logs.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not start:\n%s", logs.String())
		}
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v\n%s", err, logs.String())
		}
	}
	t.Cleanup(stop)
	return base, stop
}

// postStatus posts a form (with basic credentials when user is set) and
// returns the status code.
func postStatus(t *testing.T, u string, form url.Values, user, pass string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// withStore opens the database for fn.
func withStore(t *testing.T, db string, fn func(*sqlstore.Store)) {
	t.Helper()
	st, err := sqlstore.OpenSQLite(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fn(st)
}

// mustChange reads the user's MustChangePassword from the database.
func mustChange(t *testing.T, db, id string) bool {
	t.Helper()
	st, err := sqlstore.OpenSQLite(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.GetUser(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return u.MustChangePassword
}

// A client_secret_jwt secret is an HMAC key as long as HS512 needs (64
// bytes), when added and when rotated.
func TestClientSecretJWTSecretLength(t *testing.T) {
	a := &admin{t: t, db: filepath.Join(t.TempDir(), "auth.db"), ran: map[string]bool{}}
	var added, rotated jsonClient
	a.json(&added, "", "clients", "add", "--id", "hmac", "--grant", "client_credentials", "--auth-method", "client_secret_jwt")
	a.json(&rotated, "", "clients", "rotate-secret", "hmac")
	// One sealed key at a time: --keep-old is refused, as the admin API
	// refuses keep_old, not dropped.
	a.fail("--keep-old is not available", "", "clients", "rotate-secret", "hmac", "--keep-old")
	for what, sec := range map[string]string{"added": added.Secret, "rotated": rotated.Secret} {
		if b, err := base64.RawURLEncoding.DecodeString(sec); err != nil || len(b) < 64 {
			t.Fatalf("%s client_secret_jwt secret %q: %d bytes (%v), want 64", what, sec, len(b), err)
		}
	}
}
