package sql

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// The writer never checkpoints inside a commit; the background checkpointer
// copies the log into the database file, and Close empties the log.
func TestSQLiteBackgroundCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.db")
	s, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	var auto int
	if err := s.w.QueryRowContext(t.Context(), "PRAGMA wal_autocheckpoint").Scan(&auto); err != nil || auto != 0 {
		t.Fatalf("writer wal_autocheckpoint = %d (%v), want 0", auto, err)
	}
	// Stop the checkpointer so the log can be seen growing, then restart it.
	s.ckpt.stop <- struct{}{}
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	base := size(path)
	now := time.Now()
	payload := []byte(strings.Repeat("p", 2000))
	for i := range 1500 { // each its own commit: about 1500 log frames
		err := s.CreateToken(t.Context(), storage.Token{Kind: storage.AccessToken, Signature: "sig" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String(),
			RequestID: "r", ClientID: "c", Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := size(path); got > base+1<<20 {
		t.Fatalf("database file grew from %d to %d bytes with the checkpointer stopped: something checkpointed inside a commit", base, got)
	}
	if size(path+"-wal") < 1<<20 {
		t.Fatalf("log is %d bytes, want the 1500 commits in it", size(path+"-wal"))
	}
	<-s.ckpt.done // the stop above ended the first loop; start another
	s.ckpt.done = make(chan struct{})
	go s.ckpt.run()
	deadline := time.Now().Add(10 * time.Second)
	for size(path) < base+2<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("background checkpointer did not copy the log into the database file (%d bytes)", size(path))
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.ckpt.mu.Lock()
	last := s.ckpt.last
	s.ckpt.mu.Unlock()
	if last.busy != 0 || last.copied != last.frames {
		t.Errorf("last checkpoint %+v, want every frame copied", last)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := size(path + "-wal"); n != 0 {
		t.Errorf("log is %d bytes after Close, want it emptied", n)
	}
}
