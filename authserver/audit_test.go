package authserver

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/authserver/keys"
)

// auditLines parses the JSON lines of an audit sink, checking the fixed
// part of the schema on each.
func auditLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		ts, _ := m["time"].(string)
		if tm, err := time.Parse(time.RFC3339Nano, ts); err != nil || tm.Location() != time.UTC {
			t.Errorf("time %q is not RFC 3339 UTC", ts)
		}
		if ev, _ := m["event"].(string); ev == "" {
			t.Errorf("no event in %s", sc.Text())
		}
		if _, ok := m["level"]; ok {
			t.Errorf("level in %s", sc.Text())
		}
		if _, ok := m["msg"]; ok {
			t.Errorf("msg in %s", sc.Text())
		}
		lines = append(lines, m)
	}
	return lines
}

func countEvents(lines []map[string]any) map[string]int {
	n := map[string]int{}
	for _, l := range lines {
		n[l["event"].(string)]++
	}
	return n
}

// auditFlow runs issuance and every kind of failure against a server whose
// audit sink is audit; it returns the secrets it used.
func auditFlow(t *testing.T, env *testEnv, issued int) []string {
	t.Helper()
	secrets := []string{alicePW, appSecret, svcSecret, "wrong-password-0123", "wrong-secret-0123456789-0123456789-xx"}
	var rt string
	for range issued {
		var at string
		at, rt = env.passwordToken("bob@example.com", bobPW)
		secrets = append(secrets, at, rt)
	}
	// Refresh, then reuse of the rotated token (refresh_reuse_detected).
	m := decode(t, env.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"demo"}}, "", ""))
	secrets = append(secrets, m["access_token"].(string), m["refresh_token"].(string))
	env.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"demo"}}, "", "").Body.Close()
	// Wrong passwords up to throttling, and a wrong client secret.
	for range 8 {
		env.post("/token", url.Values{"grant_type": {"password"}, "username": {"alice@example.com"}, "password": {"wrong-password-0123"}, "client_id": {"demo"}}, "", "").Body.Close()
	}
	env.post("/token", url.Values{"grant_type": {"client_credentials"}}, "svc", "wrong-secret-0123456789-0123456789-xx").Body.Close()
	return secrets
}

func TestAuditLogSink(t *testing.T) {
	failures := []string{"login_failed", "login_throttled", "refresh_reuse_detected", "client_auth_failed"}
	for _, tc := range []struct {
		name     string
		issuance float64
		check    func(t *testing.T, n map[string]int)
	}{
		{"IssuanceAll", 1, func(t *testing.T, n map[string]int) {
			// 20 password grants and one refresh.
			if n["token_issued"] != 21 || n["login_succeeded"] != 20 {
				t.Errorf("issuance events %v, want 21 token_issued and 20 login_succeeded", n)
			}
		}},
		{"IssuanceNone", 0, func(t *testing.T, n map[string]int) {
			if n["token_issued"]+n["login_succeeded"] != 0 {
				t.Errorf("issuance events written with none: %v", n)
			}
		}},
		{"IssuanceSampled", 0.5, func(t *testing.T, n map[string]int) {
			// 41 issuance events at rate 0.5: all or none has odds of 2^-40.
			if got := n["token_issued"] + n["login_succeeded"]; got == 0 || got == 41 {
				t.Errorf("sampled issuance events: %d of 41", got)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sink, oplog lockedBuffer
			env := newTestEnv(t, openMemory(t), func(c *Config) {
				c.Audit = NewAuditLog(&sink, tc.issuance)
				c.Logger = slog.New(slog.NewTextHandler(&oplog, &slog.HandlerOptions{Level: slog.LevelDebug}))
			})
			secrets := auditFlow(t, env, 20)
			lines := auditLines(t, sink.String())
			n := countEvents(lines)
			for _, ev := range failures {
				if n[ev] == 0 {
					t.Errorf("failure event %s not audited: %v", ev, n)
				}
			}
			tc.check(t, n)
			for _, l := range lines {
				if l["event"] == "login_failed" && (l["reason"] != "bad_credentials" || l["ip"] == nil) {
					t.Errorf("login_failed line %v", l)
				}
			}
			if strings.Contains(oplog.String(), "msg=audit") || strings.Contains(oplog.String(), "token_issued") {
				t.Errorf("audit events reached the operational log:\n%s", oplog.String())
			}
			for _, s := range secrets {
				if strings.Contains(sink.String(), s) {
					t.Errorf("a secret value (%.12s…) is in the audit log", s)
				}
			}
		})
	}
}

// Every 429 of a password or client check is audited once, those refused
// from memory (a key this instance already knows to be blocked) too, with
// the wait it was told.
func TestAuditEveryThrottledRefusal(t *testing.T) {
	var sink lockedBuffer
	env := newTestEnv(t, openMemory(t), func(c *Config) { c.Audit = NewAuditLog(&sink, 0) })
	refused := func(form url.Values, id, secret, wantCode string) int {
		n := 0
		for range 16 {
			resp := env.post("/token", form, id, secret)
			m := decode(t, resp)
			if resp.StatusCode != http.StatusTooManyRequests {
				continue
			}
			n++
			desc, _ := m["error_description"].(string)
			if m["error"] != wantCode || !strings.Contains(desc, "retry in ") || strings.Contains(desc, " 1 seconds") {
				t.Errorf("429 body %v", m)
			}
		}
		if n < 2 {
			t.Fatalf("%d of 16 bad attempts refused with 429, want several", n)
		}
		return n
	}
	logins := refused(url.Values{"grant_type": {"password"}, "username": {"alice@example.com"}, "password": {"wrong-password-0123"}, "client_id": {"demo"}}, "", "", "invalid_grant")
	clients := refused(url.Values{"grant_type": {"client_credentials"}}, "svc", "wrong-secret-0123456789-0123456789-xx", "invalid_client")
	lines := auditLines(t, sink.String())
	n := countEvents(lines)
	if n["login_throttled"] != logins || n["client_auth_throttled"] != clients {
		t.Errorf("audited %d login_throttled and %d client_auth_throttled, want %d and %d (%v)", n["login_throttled"], n["client_auth_throttled"], logins, clients, n)
	}
	for _, l := range lines {
		switch l["event"] {
		case "client_auth_throttled":
			if l["client_id"] != "svc" {
				t.Errorf("client_auth_throttled line %v", l)
			}
			fallthrough
		case "login_throttled":
			if ra, _ := l["retry_after"].(string); ra == "" || ra == "0s" || l["ip"] == nil {
				t.Errorf("%s line %v", l["event"], l)
			}
		}
	}
}

// Every audit event the server writes is in README.md's table of events,
// the schema operators parse.
func TestAuditEventsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	table := false
	for line := range strings.Lines(string(readme)) {
		switch {
		case strings.HasPrefix(line, "| event | when"):
			table = true
		case table && !strings.HasPrefix(line, "|"):
			table = false
		case table:
			first, _, _ := strings.Cut(strings.TrimPrefix(line, "|"), "|")
			for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(first, -1) {
				documented[m[1]] = true
			}
		}
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	call := regexp.MustCompile(`\.audit\([a-zA-Z.()]+, "([a-z_]+)"`)
	seen := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllStringSubmatch(string(b), -1) {
			seen++
			if !documented[m[1]] {
				t.Errorf("%s writes the audit event %q, which README.md's table of events lacks", f, m[1])
			}
		}
	}
	if seen < 20 || len(documented) < 20 {
		t.Fatalf("found %d audit calls and %d documented events: the patterns no longer match", seen, len(documented))
	}
}

func TestAuditLogOff(t *testing.T) {
	var oplog lockedBuffer
	env := newTestEnv(t, openMemory(t), func(c *Config) {
		c.Audit = NewAuditLog(nil, 1)
		c.Logger = slog.New(slog.NewTextHandler(&oplog, nil))
	})
	auditFlow(t, env, 1)
	if strings.Contains(oplog.String(), "audit") {
		t.Errorf("audit events with the sink off:\n%s", oplog.String())
	}
}

// Key rotation reaches the audit log through keys.Config.OnEvent.
func TestAuditKeyEvents(t *testing.T) {
	var sink lockedBuffer
	audit := NewAuditLog(&sink, 0)
	km, err := keys.New(t.Context(), openMemory(t), keys.Config{Algorithm: "ES256", Secret: testSecret, TokenLifetime: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OnEvent: audit.KeyEvent})
	if err != nil {
		t.Fatal(err)
	}
	if err := km.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	lines := auditLines(t, sink.String())
	var events []string
	for _, l := range lines {
		events = append(events, l["event"].(string))
		if l["kid"] == "" || l["alg"] != "ES256" {
			t.Errorf("key event %v", l)
		}
	}
	for _, want := range []string{"key_created", "key_activated", "key_retired"} {
		if !slices.Contains(events, want) {
			t.Errorf("events %v lack %s", events, want)
		}
	}
}

func TestParseAuditIssuance(t *testing.T) {
	for in, want := range map[string]float64{"all": 1, "none": 0, "0.01": 0.01, "1": 1, "0": 0} {
		if got, err := ParseAuditIssuance(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "some", "1.5", "-0.1", "NaN"} {
		if _, err := ParseAuditIssuance(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
