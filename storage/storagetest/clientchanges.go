package storagetest

import (
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// clientChanges returns every client change feed entry after seq.
func clientChanges(t *testing.T, s storage.Store, after int64) []storage.ClientChange {
	t.Helper()
	return readFeed(t, "ListClientChanges", s.ListClientChanges, func(c storage.ClientChange) int64 { return c.Seq }, after)
}

func changedIDs(cs []storage.ClientChange) []string {
	return ids(cs, func(c storage.ClientChange) string { return c.ClientID })
}

// testClientChangeFeed checks that every update and deletion of a client
// appends exactly one feed entry, in order, committed with the change, and
// that creation, failed writes and rolled-back ones append nothing.
func testClientChangeFeed(t *testing.T, s storage.Store) {
	ctx := t.Context()
	if got := clientChanges(t, s, 0); len(got) != 0 {
		t.Fatalf("a new store's client feed = %v, want empty", changedIDs(got))
	}
	for _, id := range []string{"c1", "c2", "c3"} {
		must(t, "CreateClient "+id, s.CreateClient(ctx, newClient(id)))
	}
	if got := clientChanges(t, s, 0); len(got) != 0 {
		t.Fatalf("client feed after creation = %v, want empty", changedIDs(got))
	}
	before := time.Now().Add(-time.Minute) // database clocks may differ a little
	rotate := func(id string) {
		t.Helper()
		_, err := s.UpdateClient(ctx, id, func(c storage.Client) (storage.Client, error) {
			c.SecretHashes = []string{"rotated-" + id}
			return c, nil
		})
		must(t, "UpdateClient "+id, err)
	}
	rotate("c2")
	must(t, "DeleteClient c3", s.DeleteClient(ctx, "c3"))
	rotate("c1")
	// Failed writes change nothing and append nothing.
	if _, err := s.UpdateClient(ctx, "missing", func(c storage.Client) (storage.Client, error) { return c, nil }); err == nil {
		t.Fatal("UpdateClient of a missing client succeeded")
	}
	if err := s.DeleteClient(ctx, "c3"); err == nil {
		t.Fatal("DeleteClient of a deleted client succeeded")
	}
	got := clientChanges(t, s, 0)
	checkStrings(t, "client feed", changedIDs(got), []string{"c2", "c3", "c1"})
	for _, c := range got {
		if c.ChangedAt.Before(before) || c.ChangedAt.After(time.Now().Add(time.Minute)) {
			t.Errorf("feed entry %d ChangedAt = %v, want about now", c.Seq, c.ChangedAt)
		}
		if c.ChangedAt.Location() != time.UTC {
			t.Errorf("feed entry %d ChangedAt is in %v, want UTC", c.Seq, c.ChangedAt.Location())
		}
	}
	last := got[len(got)-1].Seq
	if rest := clientChanges(t, s, last); len(rest) != 0 {
		t.Fatalf("client feed after the last seq = %v, want empty", changedIDs(rest))
	}
	// An after in the middle skips what precedes it.
	checkStrings(t, "client feed after the first entry", changedIDs(clientChanges(t, s, got[0].Seq)), []string{"c3", "c1"})

	// A rolled-back update leaves no entry; a committed one in a
	// transaction appears once committed.
	txCtx, err := s.BeginTx(ctx)
	must(t, "BeginTx", err)
	_, err = s.UpdateClient(txCtx, "c1", func(c storage.Client) (storage.Client, error) { return c, nil })
	must(t, "UpdateClient in tx", err)
	must(t, "RollbackTx", s.RollbackTx(txCtx))
	if rest := clientChanges(t, s, last); len(rest) != 0 {
		t.Fatalf("client feed after a rolled-back update = %v, want empty", changedIDs(rest))
	}
	txCtx, err = s.BeginTx(ctx)
	must(t, "BeginTx", err)
	must(t, "DeleteClient in tx", s.DeleteClient(txCtx, "c2"))
	must(t, "CommitTx", s.CommitTx(txCtx))
	rest := clientChanges(t, s, last)
	checkStrings(t, "client feed after a committed deletion", changedIDs(rest), []string{"c2"})
	last = rest[0].Seq

	// Garbage collection keeps recent entries and drops those older than
	// the retention.
	res, err := s.GarbageCollect(ctx, time.Now(), time.Hour)
	must(t, "GarbageCollect now", err)
	if res.ClientChanges != 0 || len(clientChanges(t, s, 0)) != 4 {
		t.Fatalf("GarbageCollect(now) removed %d client feed entries, want none", res.ClientChanges)
	}
	res, err = s.GarbageCollect(ctx, time.Now().Add(storage.ClientChangeRetention+2*time.Minute), time.Hour)
	must(t, "GarbageCollect after the retention", err)
	if res.ClientChanges != 4 {
		t.Fatalf("GarbageCollect after the retention removed %d client feed entries, want 4", res.ClientChanges)
	}
	if got := clientChanges(t, s, 0); len(got) != 0 {
		t.Fatalf("client feed after garbage collection = %v, want empty", changedIDs(got))
	}
	// Sequence numbers keep increasing after collection.
	rotate("c1")
	if got := clientChanges(t, s, 0); len(got) != 1 || got[0].Seq <= last {
		t.Fatalf("client feed after collection and an update = %+v, want one entry after seq %d", got, last)
	}
}
