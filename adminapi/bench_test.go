package adminapi_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// BenchmarkAdminReads measures authenticated admin reads over real HTTP on
// SQLite with 1,000 users: every request verifies the admin token (JWT and
// its record). Baseline: GET /healthz of the public listener, the cheapest
// request the server answers, in the same run.
func BenchmarkAdminReads(b *testing.B) {
	e := newEnv(b)
	now := time.Now().UTC()
	for i := range 1000 {
		u := storage.User{ID: fmt.Sprintf("u%04d", i), Email: fmt.Sprintf("user%d@example.com", i), PasswordHash: e.alice.PasswordHash, CreatedAt: now, UpdatedAt: now}
		if err := e.store.CreateUser(b.Context(), u); err != nil {
			b.Fatal(err)
		}
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	hc := &http.Client{Transport: tr}
	get := func(b *testing.B, url string, auth bool) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				if auth {
					req.Header.Set("Authorization", "Bearer "+e.token)
				}
				resp, err := hc.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	}
	b.Run("Baseline/healthz", func(b *testing.B) { get(b, e.pub.URL+"/healthz", false) })
	b.Run("GetUser", func(b *testing.B) { get(b, e.admin.URL+"/admin/v1/users/u0500", true) })
	b.Run("GetClient", func(b *testing.B) { get(b, e.admin.URL+"/admin/v1/clients/ops", true) })
	b.Run("ListUsers50", func(b *testing.B) { get(b, e.admin.URL+"/admin/v1/users?limit=50", true) })
	b.Run("ListUsers50ByEmailPrefix", func(b *testing.B) { get(b, e.admin.URL+"/admin/v1/users?limit=50&email_prefix=user5", true) })
	b.Run("ListClients50", func(b *testing.B) { get(b, e.admin.URL+"/admin/v1/clients?limit=50", true) })
	b.Run("ListKeys", func(b *testing.B) { get(b, e.admin.URL+"/admin/v1/keys", true) })
}

// BenchmarkConsoleUsers100k renders the console's users page with 100,000
// users on SQLite: the first page and a page far in (each one range of the
// primary key, ListUsersPage) and a search by email (one indexed lookup).
func BenchmarkConsoleUsers100k(b *testing.B) {
	ce := newConsoleEnv(b)
	ctx := b.Context()
	now := time.Now().UTC()
	tx, err := ce.store.BeginTx(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 100_000 {
		u := storage.User{ID: fmt.Sprintf("u%06d", i), Email: fmt.Sprintf("user%d@example.com", i), PasswordHash: ce.alice.PasswordHash, CreatedAt: now, UpdatedAt: now}
		if err := ce.store.CreateUser(tx, u); err != nil {
			b.Fatal(err)
		}
	}
	if err := ce.store.CommitTx(tx); err != nil {
		b.Fatal(err)
	}
	alice := browser(b)
	if resp, _ := ce.signIn(b, alice, "alice@example.com", alicePW); resp.StatusCode != http.StatusOK {
		b.Fatalf("sign-in: %d", resp.StatusCode)
	}
	page := func(b *testing.B, path string) {
		for b.Loop() {
			resp, body := fetch(b, alice, http.MethodGet, ce.ui.URL+path, nil)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, "@example.com") {
				b.Fatalf("%s: %d", path, resp.StatusCode)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/page")
	}
	b.Run("FirstPage", func(b *testing.B) { page(b, "/admin/ui/users") })
	b.Run("PageAfter99950", func(b *testing.B) {
		page(b, "/admin/ui/users?cursor="+base64.RawURLEncoding.EncodeToString([]byte("u099950")))
	})
	b.Run("SearchByEmail", func(b *testing.B) { page(b, "/admin/ui/users?email=user99999@example.com") })
}
