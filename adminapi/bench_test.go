package adminapi_test

import (
	"fmt"
	"io"
	"net/http"
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
	b.Run("ListKeys", func(b *testing.B) { get(b, e.admin.URL+"/admin/v1/keys", true) })
}
