package authserver

import (
	"testing"

	"github.com/oauthkit/authserver/storage"
	sqlstore "github.com/oauthkit/authserver/storage/sql"
)

// openSQLite opens a real SQLite file in a temporary directory.
func openSQLite(t testing.TB) storage.Store {
	t.Helper()
	st, err := sqlstore.OpenSQLite(t.Context(), t.TempDir()+"/auth.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestEndToEndSQLite(t *testing.T) { testEndToEnd(t, openSQLite) }
