package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// RunMultiInstance races two handles on one database, as two server instances
// sharing one database do. open2 must return two handles on the same new,
// empty database (a backend without such a notion may return one store twice)
// and register their cleanup with t.Cleanup.
func RunMultiInstance(t *testing.T, open2 func(t *testing.T) (a, b storage.Store)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b storage.Store)
	}{
		{"DeactivateTokenHasExactlyOneWinner", testRaceDeactivate},
		{"CreateTokenIfAbsentHasExactlyOneWinner", testRaceCreateTokenIfAbsent},
		{"RefreshRotationInTransactionsHasExactlyOneWinner", testRaceRotation},
		{"UpdateKeysLosesNoUpdate", testRaceUpdateKeys},
		{"UpdateAttemptsLosesNoIncrement", testRaceAttempts},
		{"RevocationRacingRotationLeavesNoLiveToken", func(t *testing.T, a, b storage.Store) {
			testRaceRevocation(t, a, b, revokeGrant)
		}},
		{"RevokeBySubjectRacingRotationLeavesNoLiveToken", func(t *testing.T, a, b storage.Store) {
			testRaceRevocation(t, a, b, func(ctx context.Context, s storage.Store, g grant) error {
				return retry(func() error {
					_, err := s.RevokeTokens(ctx, storage.TokenFilter{Subject: g.subject})
					return err
				})
			})
		}},
		{"RevokeByClientRacingRotationLeavesNoLiveToken", func(t *testing.T, a, b storage.Store) {
			testRaceRevocation(t, a, b, func(ctx context.Context, s storage.Store, g grant) error {
				return retry(func() error {
					_, err := s.RevokeTokens(ctx, storage.TokenFilter{ClientID: g.client})
					return err
				})
			})
		}},
		{"WritesOnOneHandleAreVisibleOnTheOther", testCrossVisibility},
		{"StatusBlocksNeverOverlap", testRaceStatusBlocks},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := open2(t)
			tc.fn(t, a, b)
		})
	}
}

// race runs fn(i, store) for i in [0, n) in parallel, alternating the two
// handles, and starts them all at once.
func race(n int, a, b storage.Store, fn func(i int, s storage.Store)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			<-start
			fn(i, s)
		})
	}
	close(start)
	wg.Wait()
}

func testRaceDeactivate(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	must(t, "CreateToken", a.CreateToken(ctx, newToken(storage.RefreshToken, "rt", "req", "c1", "u1")))
	var wins atomic.Int32
	race(20, a, b, func(i int, s storage.Store) {
		err := s.DeactivateToken(ctx, storage.RefreshToken, "rt")
		switch {
		case err == nil:
			wins.Add(1)
		case !errors.Is(err, storage.ErrNotFound):
			t.Errorf("DeactivateToken %d: %v, want nil or ErrNotFound", i, err)
		}
	})
	if n := wins.Load(); n != 1 {
		t.Errorf("%d DeactivateToken calls succeeded, want exactly 1", n)
	}
	for _, s := range []storage.Store{a, b} {
		if tok, _ := tokenExists(t, s, storage.RefreshToken, "rt"); tok.Active {
			t.Error("the token is still active")
		}
	}
}

// testRaceCreateTokenIfAbsent races one key on both handles, half of the
// calls inside transactions that also write a record of their own and stay
// open a moment after the insert (so that others meet the uncommitted row):
// exactly one call stores the key, and every transaction commits its other
// write, whether it won or not.
func testRaceCreateTokenIfAbsent(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	const n = 20
	var wins atomic.Int32
	race(n, a, b, func(i int, s storage.Store) {
		rec := newToken(storage.UsedJTI, "jti", "jti", "c1", "")
		rec.Payload = []byte(fmt.Sprint(i))
		if i%4 >= 2 {
			created, err := s.CreateTokenIfAbsent(ctx, rec)
			if err != nil {
				t.Errorf("CreateTokenIfAbsent %d: %v", i, err)
			} else if created {
				wins.Add(1)
			}
			return
		}
		err := retry(func() error {
			tx, err := s.BeginTx(ctx)
			if err != nil {
				return err
			}
			created, err := s.CreateTokenIfAbsent(tx, rec)
			if err == nil {
				time.Sleep(5 * time.Millisecond)
				err = s.CreateToken(tx, newToken(storage.AccessToken, fmt.Sprint("at-", i), fmt.Sprint("req-", i), "c1", "u1"))
			}
			if err != nil {
				_ = s.RollbackTx(tx)
				return err
			}
			if err := s.CommitTx(tx); err != nil {
				return err
			}
			if created {
				wins.Add(1)
			}
			return nil
		})
		if err != nil {
			t.Errorf("transaction %d: %v", i, err)
		}
	})
	if w := wins.Load(); w != 1 {
		t.Errorf("%d CreateTokenIfAbsent calls stored the key, want exactly 1", w)
	}
	for i := range n {
		if _, ok := tokenExists(t, b, storage.AccessToken, fmt.Sprint("at-", i)); ok != (i%4 < 2) {
			t.Errorf("transaction %d: its other write exists = %v, want %v", i, ok, i%4 < 2)
		}
	}
}

// grant names the tokens of one grant in the rotation tests.
type grant struct{ requestID, client, subject string }

func (g grant) token(kind storage.TokenKind, sig string) storage.Token {
	return newToken(kind, sig, g.requestID, g.client, g.subject)
}

// rotate does what a refresh does: in one transaction, deactivate the old
// refresh token and store a new access and refresh token for the same grant.
func rotate(ctx context.Context, s storage.Store, g grant, oldSig, newSuffix string) error {
	tx, err := s.BeginTx(ctx)
	if err != nil {
		return err
	}
	err = s.DeactivateToken(tx, storage.RefreshToken, oldSig)
	if err == nil {
		err = s.CreateToken(tx, g.token(storage.AccessToken, "at-"+newSuffix))
	}
	if err == nil {
		err = s.CreateToken(tx, g.token(storage.RefreshToken, "rt-"+newSuffix))
	}
	if err != nil {
		_ = s.RollbackTx(tx)
		return err
	}
	return s.CommitTx(tx)
}

// retry runs fn until it returns anything but ErrConflict, at most 10 times,
// as a caller should.
func retry(fn func() error) error {
	var err error
	for range 10 {
		if err = fn(); !errors.Is(err, storage.ErrConflict) {
			return err
		}
	}
	return err
}

// revokeGrant does what a revocation (or reuse detection) does: in one
// transaction, delete every token of the grant.
func revokeGrant(ctx context.Context, s storage.Store, g grant) error {
	return retry(func() error {
		tx, err := s.BeginTx(ctx)
		if err != nil {
			return err
		}
		for _, kind := range []storage.TokenKind{storage.AccessToken, storage.RefreshToken} {
			if _, err := s.DeleteTokens(tx, kind, g.requestID); err != nil {
				_ = s.RollbackTx(tx)
				return err
			}
		}
		return s.CommitTx(tx)
	})
}

func testRaceRotation(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	g := grant{"req", "c1", "u1"}
	must(t, "CreateToken", a.CreateToken(ctx, g.token(storage.RefreshToken, "rt-old")))
	var winners []int
	var mu sync.Mutex
	race(10, a, b, func(i int, s storage.Store) {
		err := rotate(ctx, s, g, "rt-old", fmt.Sprint(i))
		switch {
		case err == nil:
			mu.Lock()
			winners = append(winners, i)
			mu.Unlock()
		case !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrConflict):
			t.Errorf("rotation %d: %v, want nil, ErrNotFound or ErrConflict", i, err)
		}
	})
	if len(winners) != 1 {
		t.Fatalf("rotations %v succeeded, want exactly one", winners)
	}
	for i := range 10 {
		_, atOK := tokenExists(t, b, storage.AccessToken, fmt.Sprintf("at-%d", i))
		_, rtOK := tokenExists(t, b, storage.RefreshToken, fmt.Sprintf("rt-%d", i))
		if want := i == winners[0]; atOK != want || rtOK != want {
			t.Errorf("rotation %d: access token exists = %v, refresh token exists = %v, want %v", i, atOK, rtOK, want)
		}
	}
}

func testRaceUpdateKeys(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	const n = 20
	var (
		mu       sync.Mutex
		versions []int64
	)
	race(n, a, b, func(i int, s storage.Store) {
		id := fmt.Sprintf("k%02d", i)
		ks, err := s.UpdateKeys(ctx, func(ks storage.KeySet) (storage.KeySet, error) {
			// Every update adds one key, so a set that saw every earlier
			// update has as many keys as its version.
			if int64(len(ks.Keys)) != ks.Version {
				t.Errorf("updater %d saw version %d with %d keys: an update was lost", i, ks.Version, len(ks.Keys))
			}
			if !slices.ContainsFunc(ks.Keys, func(k storage.SigningKey) bool { return k.ID == id }) {
				ks.Keys = append(ks.Keys, storage.SigningKey{ID: id, State: storage.KeyNext, CreatedAt: at(0)})
			}
			return ks, nil
		})
		if err != nil {
			t.Errorf("UpdateKeys %d: %v", i, err)
			return
		}
		mu.Lock()
		versions = append(versions, ks.Version)
		mu.Unlock()
	})
	slices.Sort(versions)
	for i, v := range versions {
		if v != int64(i+1) {
			t.Fatalf("UpdateKeys returned versions %v, want 1..%d each once", versions, n)
		}
	}
	for _, s := range []storage.Store{a, b} {
		ks, err := s.GetKeys(ctx)
		must(t, "GetKeys", err)
		if ks.Version != n || len(ks.Keys) != n {
			t.Errorf("final key set: version %d with %d keys, want %d and %d", ks.Version, len(ks.Keys), n, n)
		}
	}
}

func testRaceAttempts(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	const n = 100
	seen := make([]atomic.Int32, n+1)
	race(n, a, b, func(i int, s storage.Store) {
		got, err := s.UpdateAttempts(ctx, "user:u1", func(a storage.Attempts) (storage.Attempts, error) {
			a.Failures++
			a.Last = at(time.Duration(i) * time.Second)
			return a, nil
		})
		if err != nil {
			t.Errorf("UpdateAttempts %d: %v", i, err)
			return
		}
		if got.Failures < 1 || got.Failures > n {
			t.Errorf("UpdateAttempts %d returned %d failures", i, got.Failures)
			return
		}
		seen[got.Failures].Add(1)
	})
	for v := 1; v <= n; v++ {
		if c := seen[v].Load(); c != 1 {
			t.Errorf("%d updates returned the count %d, want exactly 1", c, v)
		}
	}
	if got := peekAttempts(t, b, "user:u1"); got.Failures != n {
		t.Errorf("final count %d, want %d", got.Failures, n)
	}
}

// testRaceRevocation races a rotation of a grant against revoke, many times:
// afterwards no token of the grant may exist, whichever came first.
func testRaceRevocation(t *testing.T, a, b storage.Store, revoke func(context.Context, storage.Store, grant) error) {
	ctx := t.Context()
	const iterations = 50
	rotated := 0
	for i := range iterations {
		g := grant{fmt.Sprintf("req-%d", i), fmt.Sprintf("client-%d", i), fmt.Sprintf("user-%d", i)}
		oldAT, oldRT := fmt.Sprintf("at-old-%d", i), fmt.Sprintf("rt-old-%d", i)
		must(t, "CreateToken", a.CreateToken(ctx, g.token(storage.AccessToken, oldAT)))
		must(t, "CreateToken", a.CreateToken(ctx, g.token(storage.RefreshToken, oldRT)))
		rotator, revoker := a, b
		if i%2 == 1 {
			rotator, revoker = b, a
		}
		var rotErr, revErr error
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			rotErr = rotate(ctx, rotator, g, oldRT, fmt.Sprintf("new-%d", i))
		})
		wg.Go(func() {
			<-start
			// Vary the offset so that the revocation lands before, inside
			// and after the rotation over the iterations.
			time.Sleep(time.Duration(i%5) * 200 * time.Microsecond)
			revErr = revoke(ctx, revoker, g)
		})
		close(start)
		wg.Wait()

		if revErr != nil {
			t.Fatalf("iteration %d: revocation failed: %v", i, revErr)
		}
		switch {
		case rotErr == nil:
			rotated++
		case !errors.Is(rotErr, storage.ErrNotFound) && !errors.Is(rotErr, storage.ErrConflict):
			t.Fatalf("iteration %d: rotation failed with %v, want nil, ErrNotFound or ErrConflict", i, rotErr)
		}
		for _, tok := range []struct {
			kind storage.TokenKind
			sig  string
		}{
			{storage.AccessToken, oldAT}, {storage.RefreshToken, oldRT},
			{storage.AccessToken, fmt.Sprintf("at-new-%d", i)}, {storage.RefreshToken, fmt.Sprintf("rt-new-%d", i)},
		} {
			if got, ok := tokenExists(t, a, tok.kind, tok.sig); ok {
				t.Fatalf("iteration %d: %s %s (active=%v) survived the revocation (rotation error: %v)",
					i, tok.kind, tok.sig, got.Active, rotErr)
			}
		}
	}
	t.Logf("%d of %d rotations committed before the revocation", rotated, iterations)
}

func testCrossVisibility(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	must(t, "CreateUser", a.CreateUser(ctx, newUser("u1", "a@example.com")))
	must(t, "CreateToken", b.CreateToken(ctx, newToken(storage.AccessToken, "at", "req", "c1", "u1")))
	_, err := a.UpdateKeys(ctx, func(ks storage.KeySet) (storage.KeySet, error) { return ks, nil })
	must(t, "UpdateKeys", err)
	if _, err := b.GetUserByEmail(ctx, "A@example.com"); err != nil {
		t.Errorf("GetUserByEmail on the other handle: %v", err)
	}
	if _, ok := tokenExists(t, a, storage.AccessToken, "at"); !ok {
		t.Error("a token written on b is not visible on a")
	}
	if ks, err := b.GetKeys(ctx); err != nil || ks.Version != 1 {
		t.Errorf("GetKeys on b: version %d (%v), want 1", ks.Version, err)
	}
	must(t, "DeleteUser", b.DeleteUser(ctx, "u1"))
	if _, err := a.GetUser(ctx, "u1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetUser on a after delete on b: %v, want ErrNotFound", err)
	}
}
