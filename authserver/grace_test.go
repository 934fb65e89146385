package authserver

import (
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

func TestRefreshGraceWindow(t *testing.T) {
	for name, open := range map[string]func(testing.TB) storage.Store{"Memory": openMemory, "SQLite": openSQLite} {
		t.Run(name, func(t *testing.T) {
			now := time.Now()
			var mu sync.Mutex
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
			env := newTestEnv(t, open(t), func(c *Config) { c.RefreshGrace = 10 * time.Second; c.Now = clock })
			refresh := func(rt string) (int, map[string]any) {
				resp := env.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"demo"}}, "", "")
				return resp.StatusCode, decode(t, resp)
			}
			_, rt1 := env.passwordToken("alice@example.com", alicePW)
			status, p1 := refresh(rt1)
			if status != 200 {
				t.Fatalf("%d %v", status, p1)
			}
			// A retry inside the window gets the same pair, and the grant lives.
			status, again := refresh(rt1)
			if status != 200 || again["access_token"] != p1["access_token"] || again["refresh_token"] != p1["refresh_token"] {
				t.Fatalf("retry: %d %v", status, again)
			}
			if env.introspect(p1["refresh_token"].(string))["active"] != true {
				t.Fatal("the pair died on a retry")
			}
			// Concurrent retries: all the same pair.
			var wg sync.WaitGroup
			for i := 0; i < 10; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if status, m := refresh(rt1); status != 200 || m["refresh_token"] != p1["refresh_token"] {
						t.Errorf("concurrent retry: %d %v", status, m)
					}
				}()
			}
			wg.Wait()
			// After the window, a replay is reuse: the grant is revoked.
			advance(11 * time.Second)
			if status, m := refresh(rt1); status != 400 || m["error"] != "invalid_grant" {
				t.Fatalf("replay after the window: %d %v", status, m)
			}
			if env.introspect(p1["refresh_token"].(string))["active"] != false {
				t.Fatal("reuse after the window must revoke the grant")
			}
		})
	}
}

func TestRefreshGraceReplayAfterSuccessorUsedIsReuse(t *testing.T) {
	env := newTestEnv(t, openSQLite(t), func(c *Config) { c.RefreshGrace = time.Minute })
	refresh := func(rt string) (int, map[string]any) {
		resp := env.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"demo"}}, "", "")
		return resp.StatusCode, decode(t, resp)
	}
	_, rt1 := env.passwordToken("alice@example.com", alicePW)
	_, p1 := refresh(rt1)
	_, p2 := refresh(p1["refresh_token"].(string))
	if status, m := refresh(rt1); status != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("stale replay: %d %v", status, m)
	}
	if env.introspect(p2["refresh_token"].(string))["active"] != false {
		t.Fatal("a replay of an older token after its successor was used must revoke the grant")
	}
}
