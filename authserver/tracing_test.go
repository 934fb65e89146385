package authserver

import (
	"log/slog"
	"net/url"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/oauthkit/authserver/internal/tracing"
	"github.com/oauthkit/authserver/storage/storagetrace"
)

// TestTracingSpans: with a tracer provider, a token request continues the
// caller's trace (traceparent) in a server span, with storage calls and the
// signature as its descendants; log lines and audit lines carry the trace ID.
func TestTracingSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	var logs, audit lockedBuffer
	env := newTestEnv(t, storagetrace.Wrap(openMemory(t), tp), func(c *Config) {
		c.TracerProvider = tp
		c.Logger = slog.New(tracing.LogHandler(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
		c.Audit = NewAuditLog(&audit, 1)
	})
	exp.Reset() // spans of the seeding and key setup
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	resp := env.post("/token", url.Values{"grant_type": {"client_credentials"}}, "svc", svcSecret,
		"traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	if resp.StatusCode != 200 {
		t.Fatalf("token: %d %v", resp.StatusCode, decode(t, resp))
	}
	resp.Body.Close()
	// A failed request logs (at debug) with its trace ID.
	resp = env.post("/token", url.Values{"grant_type": {"client_credentials"}}, "svc", "wrong-secret-0123456789-0123456789-xx",
		"traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp.Body.Close()

	spans := exp.GetSpans()
	byName := map[string]tracetest.SpanStub{}
	ids := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		if s.SpanContext.TraceID().String() != traceID {
			t.Errorf("span %s in trace %s, want %s", s.Name, s.SpanContext.TraceID(), traceID)
		}
		if _, seen := byName[s.Name]; !seen {
			byName[s.Name] = s
		}
		ids[s.SpanContext.SpanID().String()] = s
	}
	root, ok := byName["token"]
	if !ok || root.Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("no token server span continuing the caller's span: %v", names(spans))
	}
	// descends reports whether s has the token span as an ancestor.
	descends := func(s tracetest.SpanStub) bool {
		for range 10 {
			if s.Parent.SpanID() == root.SpanContext.SpanID() {
				return true
			}
			p, ok := ids[s.Parent.SpanID().String()]
			if !ok {
				return false
			}
			s = p
		}
		return false
	}
	for _, name := range []string{"sign", "storage.GetClient", "storage.CreateToken"} {
		s, ok := byName[name]
		if !ok {
			t.Errorf("no %s span among %v", name, names(spans))
			continue
		}
		if !descends(s) {
			t.Errorf("%s is not inside the token span", name)
		}
	}
	if !strings.Contains(logs.String(), "trace_id="+traceID) {
		t.Errorf("no log line carries the trace ID:\n%s", logs.String())
	}
	if !strings.Contains(audit.String(), `"trace_id":"`+traceID+`"`) {
		t.Errorf("no audit line carries the trace ID:\n%s", audit.String())
	}
	for _, s := range spans { // no secret in span attributes
		for _, a := range s.Attributes {
			if strings.Contains(a.Value.String(), "secret") {
				t.Errorf("span %s attribute %s = %q", s.Name, a.Key, a.Value.String())
			}
		}
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

// Without a tracer provider nothing is traced and nothing is added to logs.
func TestTracingOff(t *testing.T) {
	var logs lockedBuffer
	env := newTestEnv(t, openMemory(t), func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	env.post("/token", url.Values{"grant_type": {"client_credentials"}}, "svc", "wrong-secret-0123456789-0123456789-xx",
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").Body.Close()
	if strings.Contains(logs.String(), "trace_id") {
		t.Errorf("trace IDs in the log with tracing off:\n%s", logs.String())
	}
}
