package e2e

import (
	"encoding/json"
	"net/url"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/internal/assertiontest"
	"github.com/oauthkit/authserver/internal/testbin"
)

// JWT client authentication and the JWT bearer grant on three instances
// sharing one PostgreSQL database (issue 16): clients and issuers are
// registered with the CLI, and an assertion's jti is single-use across
// instances.

// race sends the same request n times to each instance, released together,
// and returns the statuses.
func race(t *testing.T, inst []*testbin.Server, n int, form url.Values, user, pass string) map[int]int {
	t.Helper()
	var mu sync.Mutex
	codes := map[int]int{}
	together(n*len(inst), func(i int) {
		status, _ := testbin.PostForm(t, inst[i%len(inst)].URL+"/token", form, user, pass)
		mu.Lock()
		codes[status]++
		mu.Unlock()
	})
	return codes
}

func TestJWTAuthOverThreeInstancesPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dsn := postgresDSN(t)
	secret := "jwt-auth-secret-0123456789-0123456789-abc"
	testbin.Run(t, "", "migrate", "--db", dsn)
	key, set := assertiontest.ECKey(t, "k1")
	jwksFile := assertiontest.JWKSFile(t, set)
	testbin.Run(t, "", "clients", "add", "--db", dsn, "--id", "pkjwt", "--auth-method", "private_key_jwt", "--jwks-file", jwksFile,
		"--grant", "client_credentials", "--scope", "read")
	var cs struct {
		Secret string `json:"client_secret"`
		Method string `json:"token_endpoint_auth_method"`
	}
	out := testbin.Run(t, "", "clients", "add", "--db", dsn, "--secret", secret, "--output", "json", "--id", "csjwt",
		"--auth-method", "client_secret_jwt", "--grant", "client_credentials", "--scope", "read")
	if err := json.Unmarshal([]byte(out), &cs); err != nil || len(cs.Secret) < 64 || cs.Method != "client_secret_jwt" {
		t.Fatalf("clients add client_secret_jwt: %v %q", err, out)
	}
	testbin.Run(t, "", "clients", "add", "--db", dsn, "--id", "bearer", "--auth-method", "private_key_jwt", "--jwks-file", jwksFile,
		"--grant", "urn:ietf:params:oauth:grant-type:jwt-bearer", "--scope", "read")
	testbin.Run(t, alicePW+"\n", "users", "add", "--db", dsn, "--email", "alice@example.com", "--name", "Alice", "--password-stdin")
	testbin.Run(t, "", "issuers", "add", "--db", dsn, "--issuer", "https://idp.example", "--jwks-file", jwksFile,
		"--subject", "alice@example.com", "--scope", "read")
	var issuers []map[string]any
	if err := json.Unmarshal([]byte(testbin.Run(t, "", "issuers", "list", "--db", dsn, "--output", "json")), &issuers); err != nil ||
		len(issuers) != 1 || issuers[0]["issuer"] != "https://idp.example" {
		t.Fatalf("issuers list: %v %v", issuers, err)
	}

	inst := make([]*testbin.Server, 3)
	var wg sync.WaitGroup
	for i := range inst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst[i] = testbin.Start(t, nil, "--db", dsn, "--secret", secret, "--key-algorithm", "ES256")
		}()
	}
	wg.Wait()
	aud := testbin.Issuer + "/token"

	// client_secret_jwt with the secret the CLI printed (sealed by the CLI,
	// opened by the server).
	status, m := testbin.PostForm(t, inst[1].URL+"/token", url.Values{"grant_type": {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertiontest.Sign(t, jose.HS512, []byte(cs.Secret), "", assertiontest.Claims("csjwt", "csjwt", aud, 2*time.Minute))}}, "", "")
	if status != 200 {
		t.Fatalf("client_secret_jwt: %d %v", status, m)
	}

	// One private_key_jwt assertion, 10 times at each instance at once:
	// exactly one succeeds.
	form := url.Values{"grant_type": {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertiontest.Sign(t, jose.ES256, key, "k1", assertiontest.Claims("pkjwt", "pkjwt", aud, 2*time.Minute))}}
	if codes := race(t, inst, 10, form, "", ""); codes[200] != 1 || codes[401] != 29 {
		t.Fatalf("same client assertion 30 times over 3 instances: statuses %v, want one 200 and 29 401", codes)
	}

	// One JWT bearer grant assertion, likewise.
	bearer := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"},
		"assertion":             {assertiontest.Sign(t, jose.ES256, key, "k1", assertiontest.Claims("https://idp.example", "alice@example.com", aud, 2*time.Minute))},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}}
	var mu sync.Mutex
	codes := map[int]int{}
	forms := make([]url.Values, 9)
	for i := range forms {
		forms[i] = url.Values{}
		for k, v := range bearer {
			forms[i][k] = v
		}
		// Each request authenticates the client with its own assertion.
		forms[i].Set("client_assertion", assertiontest.Sign(t, jose.ES256, key, "k1", assertiontest.Claims("bearer", "bearer", aud, 2*time.Minute)))
	}
	together(len(forms), func(i int) {
		status, _ := testbin.PostForm(t, inst[i%3].URL+"/token", forms[i], "", "")
		mu.Lock()
		codes[status]++
		mu.Unlock()
	})
	if codes[200] != 1 || codes[400] != 8 {
		t.Fatalf("same jwt-bearer assertion 9 times over 3 instances: statuses %v, want one 200 and 8 400", codes)
	}
}
