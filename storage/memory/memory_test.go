package memory_test

import (
	"testing"

	"github.com/oauthkit/authserver/storage"
	"github.com/oauthkit/authserver/storage/memory"
	"github.com/oauthkit/authserver/storage/storagetest"
)

func open(t *testing.T) storage.Store {
	s := memory.New()
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStore(t *testing.T) { storagetest.Run(t, open) }

func TestTransactions(t *testing.T) { storagetest.RunTransactions(t, open) }

// TestMultiInstance passes one store as both handles: a memory store cannot
// be shared between processes, but its locking must still hold.
func TestMultiInstance(t *testing.T) {
	storagetest.RunMultiInstance(t, func(t *testing.T) (a, b storage.Store) {
		s := open(t)
		return s, s
	})
}
