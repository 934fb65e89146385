package storagetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// feed returns every revocation feed entry after seq.
func feed(t *testing.T, s storage.Store, after int64) []storage.Revocation {
	t.Helper()
	return readFeed(t, "ListRevocations", s.ListRevocations, func(r storage.Revocation) int64 { return r.Seq }, after)
}

// readFeed returns every entry of a sequence-numbered feed after seq,
// reading in pages of two so that paging is exercised too, and checks that
// the numbers only grow.
func readFeed[E any](t *testing.T, name string, list func(ctx context.Context, after int64, limit int) ([]E, error), seq func(E) int64, after int64) []E {
	t.Helper()
	var out []E
	for {
		page, err := list(t.Context(), after, 2)
		must(t, name, err)
		if len(page) > 2 {
			t.Fatalf("%s(limit 2) returned %d entries", name, len(page))
		}
		for _, e := range page {
			if seq(e) <= after {
				t.Fatalf("%s returned seq %d after %d", name, seq(e), after)
			}
			after = seq(e)
		}
		out = append(out, page...)
		if len(page) < 2 {
			return out
		}
	}
}

func feedSignatures(rs []storage.Revocation) []string {
	return ids(rs, func(r storage.Revocation) string { return r.Signature })
}

// testRevocationFeed checks that every way of ending a live access token
// before its expiry appends exactly one feed entry, and nothing else does.
func testRevocationFeed(t *testing.T, s storage.Store) {
	ctx := t.Context()
	if got := feed(t, s, 0); len(got) != 0 {
		t.Fatalf("a new store's feed = %v, want empty", feedSignatures(got))
	}
	create := func(tok storage.Token) {
		t.Helper()
		must(t, "CreateToken", s.CreateToken(ctx, tok))
	}
	for _, tok := range []storage.Token{
		newToken(storage.AccessToken, "at-del", "g1", "c1", "u1"),
		newToken(storage.AccessToken, "at-deact", "g2", "c1", "u1"),
		newToken(storage.AccessToken, "at-grant-a", "g3", "c1", "u1"),
		newToken(storage.AccessToken, "at-grant-b", "g3", "c1", "u1"),
		newToken(storage.AccessToken, "at-grantdel", "g4", "c1", "u1"),
		newToken(storage.AccessToken, "at-subject", "g5", "c1", "u2"),
		newToken(storage.AccessToken, "at-client", "g6", "c2", "u3"),
		// Not access tokens: never in the feed.
		newToken(storage.RefreshToken, "rt-del", "g1", "c1", "u1"),
		newToken(storage.RefreshToken, "rt-grant", "g3", "c1", "u1"),
		newToken(storage.AuthorizeCode, "code", "g7", "c1", "u1"),
	} {
		create(tok)
	}
	must(t, "DeleteToken", s.DeleteToken(ctx, storage.AccessToken, "at-del"))
	must(t, "DeleteToken refresh", s.DeleteToken(ctx, storage.RefreshToken, "rt-del"))
	must(t, "DeactivateToken", s.DeactivateToken(ctx, storage.AccessToken, "at-deact"))
	must(t, "DeactivateToken code", s.DeactivateToken(ctx, storage.AuthorizeCode, "code"))
	if _, err := s.DeactivateTokens(ctx, storage.AccessToken, "g3"); err != nil {
		t.Fatalf("DeactivateTokens: %v", err)
	}
	if _, err := s.DeactivateTokens(ctx, storage.RefreshToken, "g3"); err != nil {
		t.Fatalf("DeactivateTokens refresh: %v", err)
	}
	// Already inactive: deleting them revokes nothing new.
	if _, err := s.DeleteTokens(ctx, storage.AccessToken, "g3"); err != nil {
		t.Fatalf("DeleteTokens g3: %v", err)
	}
	if _, err := s.DeleteTokens(ctx, storage.AccessToken, "g4"); err != nil {
		t.Fatalf("DeleteTokens: %v", err)
	}
	if _, err := s.RevokeTokens(ctx, storage.TokenFilter{Subject: "u2"}); err != nil {
		t.Fatalf("RevokeTokens subject: %v", err)
	}
	if _, err := s.RevokeTokens(ctx, storage.TokenFilter{ClientID: "c2"}); err != nil {
		t.Fatalf("RevokeTokens client: %v", err)
	}
	got := feed(t, s, 0)
	sigs := feedSignatures(got)
	slices.Sort(sigs)
	checkStrings(t, "feed", sigs,
		[]string{"at-client", "at-deact", "at-del", "at-grant-a", "at-grant-b", "at-grantdel", "at-subject"})
	for _, r := range got {
		checkTime(t, "feed ExpiresAt of "+r.Signature, r.ExpiresAt, at(time.Hour))
	}
	last := got[len(got)-1].Seq
	if rest := feed(t, s, last); len(rest) != 0 {
		t.Fatalf("feed after the last seq = %v, want empty", feedSignatures(rest))
	}

	// A rolled-back deletion leaves no entry.
	create(newToken(storage.AccessToken, "at-rollback", "g8", "c1", "u1"))
	txCtx, err := s.BeginTx(ctx)
	must(t, "BeginTx", err)
	must(t, "DeleteToken in tx", s.DeleteToken(txCtx, storage.AccessToken, "at-rollback"))
	must(t, "RollbackTx", s.RollbackTx(txCtx))
	if rest := feed(t, s, last); len(rest) != 0 {
		t.Fatalf("feed after a rolled-back deletion = %v, want empty", feedSignatures(rest))
	}

	// A token deleted after it expired was not revoked: no entry.
	expired := newToken(storage.AccessToken, "at-expired", "g9", "c1", "u1")
	expired.RequestedAt, expired.ExpiresAt = time.Now().Add(-2*time.Minute), time.Now().Add(-time.Minute)
	create(expired)
	res, err := s.GarbageCollect(ctx, time.Now(), time.Hour)
	must(t, "GarbageCollect", err)
	if res.Tokens != 1 || res.Revocations != 0 {
		t.Fatalf("GarbageCollect(now) = %+v, want 1 token and no feed entry", res)
	}
	if rest := feed(t, s, last); len(rest) != 0 {
		t.Fatalf("feed after collecting an expired token = %v, want empty", feedSignatures(rest))
	}

	// Once the revoked tokens have expired, garbage collection drops their
	// entries.
	must(t, "DeleteToken", s.DeleteToken(ctx, storage.AccessToken, "at-rollback"))
	res, err = s.GarbageCollect(ctx, at(2*time.Hour), time.Hour)
	must(t, "GarbageCollect", err)
	if want := int64(len(got) + 1); res.Revocations != want {
		t.Fatalf("GarbageCollect after expiry removed %d feed entries, want %d", res.Revocations, want)
	}
	if rest := feed(t, s, 0); len(rest) != 0 {
		t.Fatalf("feed after expiry = %v, want empty", feedSignatures(rest))
	}
}
