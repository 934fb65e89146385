package authserver

import (
	"bytes"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a goroutine-safe log sink.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A full flow with debug logging: no password, client secret or token ever
// reaches the log, whatever succeeds or fails.
func TestNoSecretsInLogs(t *testing.T) {
	var logs lockedBuffer
	env := newTestEnv(t, openSQLite(t), func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.RefreshGrace = 0
	})
	secrets := []string{alicePW, bobPW, appSecret, svcSecret, rsSecret, "wrong-password-0123", "wrong-secret-0123456789-0123456789-xx"}
	at, rt := env.passwordToken("alice@example.com", alicePW)
	secrets = append(secrets, at, rt)
	resp := env.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"demo"}}, "", "")
	m := decode(t, resp)
	secrets = append(secrets, m["access_token"].(string), m["refresh_token"].(string))
	// Reuse of the rotated token (revokes the grant).
	env.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"demo"}}, "", "").Body.Close()
	cc := decode(t, env.post("/token", url.Values{"grant_type": {"password"}, "username": {"bob@example.com"}, "password": {bobPW}}, "app", appSecret))
	secrets = append(secrets, cc["access_token"].(string), cc["refresh_token"].(string))
	env.introspect(cc["access_token"].(string))
	env.introspect(cc["refresh_token"].(string))
	env.post("/revoke", url.Values{"token": {cc["refresh_token"].(string)}}, "app", appSecret).Body.Close()
	for i := 0; i < 8; i++ { // failures, up to throttling
		env.post("/token", url.Values{"grant_type": {"password"}, "username": {"alice@example.com"}, "password": {"wrong-password-0123"}, "client_id": {"demo"}}, "", "").Body.Close()
		env.post("/token", url.Values{"grant_type": {"client_credentials"}}, "svc", "wrong-secret-0123456789-0123456789-xx").Body.Close()
		env.post("/introspect", url.Values{"token": {at}}, "rs", "wrong-secret-0123456789-0123456789-xx").Body.Close()
	}
	out := logs.String()
	if !strings.Contains(out, "event=login_failed") || !strings.Contains(out, "event=token_issued") {
		t.Fatalf("the audit log is missing events:\n%s", out)
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("a secret value (%.12s…) appears in the log", s)
		}
		// Also the parts of a token (a JWT's signature, a refresh token's HMAC).
		for _, part := range strings.Split(s, ".") {
			if len(part) >= 20 && strings.Contains(out, part) {
				t.Errorf("part of a token (%.12s…) appears in the log", part)
			}
		}
	}
}
