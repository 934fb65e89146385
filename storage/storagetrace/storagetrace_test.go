package storagetrace_test

import (
	"path/filepath"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/oauthkit/authserver/storage"
	sqlstore "github.com/oauthkit/authserver/storage/sql"
	"github.com/oauthkit/authserver/storage/storagetest"
	"github.com/oauthkit/authserver/storage/storagetrace"
)

// The decorated store passes the whole conformance suite, transactions
// included, on a real SQLite file, and every call becomes a span.
func TestConformance(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	open := func(t *testing.T) storage.Store {
		s, err := sqlstore.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "auth.db"))
		if err != nil {
			t.Fatal(err)
		}
		w := storagetrace.Wrap(s, tp)
		t.Cleanup(func() { _ = w.Close() })
		return w
	}
	storagetest.Run(t, open)
	storagetest.RunTransactions(t, open)
	names := map[string]bool{}
	for _, s := range exp.GetSpans() {
		names[s.Name] = true
	}
	for _, want := range []string{"storage.CreateToken", "storage.GetToken", "storage.RotateToken", "storage.BeginTx", "storage.CommitTx", "storage.UpdateKeys"} {
		if !names[want] {
			t.Errorf("no %s span", want)
		}
	}
}
