package authserver

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/oauthkit/authserver/storage"
)

// A code presented after it was exchanged is a security event: the second
// use is audited as code_reuse_detected (RFC 6749 §4.1.2), not only when it
// races the first exchange.
func TestAuditCodeReuse(t *testing.T) {
	var sink lockedBuffer
	env := newCodeEnv(t, func(c *Config) { c.Audit = NewAuditLog(&sink, 0) })
	b := newBrowser(t, env)
	code, verifier := env.codeFor(t, b, "web", webRedirect)
	if status, m := env.exchange(code, verifier, "web", webRedirect); status != 200 {
		t.Fatalf("exchange: %d %v", status, m)
	}
	if n := countEvents(auditLines(t, sink.String()))["code_reuse_detected"]; n != 0 {
		t.Fatalf("%d code_reuse_detected events after one exchange", n)
	}
	if status, m := env.exchange(code, verifier, "web", webRedirect); status != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("reuse: %d %v", status, m)
	}
	var got []map[string]any
	for _, l := range auditLines(t, sink.String()) {
		if l["event"] == "code_reuse_detected" {
			got = append(got, l)
		}
	}
	if len(got) != 1 || got[0]["client_id"] != "web" || got[0]["reason"] != "already_used" {
		t.Fatalf("code_reuse_detected events %v, want one for client web with reason already_used", got)
	}
}

// hookStore runs afterRead, once, right after the first read of a code's
// record returns: the second use has then seen the code unused, and keeps
// that record for the rest of its request (requestState.code).
// It also counts the reads of code records.
type hookStore struct {
	storage.Store
	reads     atomic.Int32
	afterRead atomic.Pointer[func()]
}

func (h *hookStore) GetToken(ctx context.Context, kind storage.TokenKind, sig string) (storage.Token, error) {
	t, err := h.Store.GetToken(ctx, kind, sig)
	if kind == storage.AuthorizeCode {
		h.reads.Add(1)
		if f := h.afterRead.Swap(nil); f != nil {
			(*f)()
		}
	}
	return t, err
}

// A second use of a code that read the code while it was still unused, and
// whose first use then committed before the second one's PKCE check and
// commit, still revokes the tokens of the first use (RFC 6749 §4.1.2): the
// code's compare-and-swap decides, not the record read.
func TestCodeReuseRacingTheExchangeRevokes(t *testing.T) {
	var sink lockedBuffer
	hs := &hookStore{Store: openMemory(t)}
	env := newTestEnv(t, hs, func(c *Config) { c.Audit = NewAuditLog(&sink, 0) })
	seedCodeClients(t, env)
	b := newBrowser(t, env)
	code, verifier := env.codeFor(t, b, "web", webRedirect)

	var first map[string]any
	secondUse := func() { // inside the second use: the first one runs to completion
		status, m := env.exchange(code, verifier, "web", webRedirect)
		if status != 200 {
			t.Errorf("first exchange: %d %v", status, m)
		}
		first = m
	}
	hs.afterRead.Store(&secondUse)
	status, m := env.exchange(code, verifier, "web", webRedirect)
	if status != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("second use: %d %v", status, m)
	}
	if first == nil {
		t.Fatal("the first exchange did not run inside the second")
	}
	for _, kind := range []string{"access_token", "refresh_token"} {
		if got := env.introspect(first[kind].(string)); got["active"] != false {
			t.Errorf("the first use's %s is still active after the racing second use: %v", kind, got)
		}
	}
	if n := countEvents(auditLines(t, sink.String()))["code_reuse_detected"]; n != 1 {
		t.Errorf("%d code_reuse_detected events, want 1", n)
	}
}

// An exchange reads the code's record once, although fosite asks for it
// three times (its code handler twice, the PKCE handler once).
func TestCodeExchangeReadsTheCodeOnce(t *testing.T) {
	hs := &hookStore{Store: openMemory(t)}
	env := newTestEnv(t, hs, func(*Config) {})
	seedCodeClients(t, env)
	b := newBrowser(t, env)
	code, verifier := env.codeFor(t, b, "web", webRedirect)
	before := hs.reads.Load()
	if status, m := env.exchange(code, verifier, "web", webRedirect); status != 200 {
		t.Fatalf("exchange: %d %v", status, m)
	}
	if n := hs.reads.Load() - before; n != 1 {
		t.Fatalf("the exchange read the code's record %d times, want 1", n)
	}
}
