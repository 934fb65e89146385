package authserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

func TestGroupCommitIsolatesFailures(t *testing.T) {
	st := openSQLite(t)
	c := &committer{store: st}
	tok := func(sig string) storage.Token {
		return storage.Token{Kind: storage.AccessToken, Signature: sig, RequestID: "r-" + sig, ClientID: "c",
			Active: true, RequestedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour), Payload: []byte("{}")}
	}
	if err := st.CreateToken(t.Context(), tok("dup")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sig := fmt.Sprint("t", i)
			if i%50 == 0 {
				sig = "dup" // fails: already exists
			}
			errs[i] = c.submit(context.Background(), nil, func(ctx context.Context) error { return st.CreateToken(ctx, tok(sig)) })
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i%50 == 0 {
			if !errors.Is(err, storage.ErrAlreadyExists) {
				t.Errorf("request %d: %v, want ErrAlreadyExists", i, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("request %d failed with a batch-mate's error: %v", i, err)
			continue
		}
		if _, err := st.GetToken(t.Context(), storage.AccessToken, fmt.Sprint("t", i)); err != nil {
			t.Errorf("request %d: committed but not stored: %v", i, err)
		}
	}
}

// A lost compare-and-swap fails its request alone; the batch commits.
func TestGroupCommitGuardLosesAlone(t *testing.T) {
	st := openSQLite(t)
	c := &committer{store: st}
	now := time.Now()
	if err := st.CreateToken(t.Context(), storage.Token{Kind: storage.RefreshToken, Signature: "rt", RequestID: "g", ClientID: "c",
		Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Payload: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]error, 20)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sig := fmt.Sprint("new", i)
			results[i] = c.submit(context.Background(),
				func(ctx context.Context) error { return st.DeactivateToken(ctx, storage.RefreshToken, "rt") },
				func(ctx context.Context) error {
					return st.CreateToken(ctx, storage.Token{Kind: storage.RefreshToken, Signature: sig, RequestID: "g", ClientID: "c",
						Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Payload: []byte("{}")})
				})
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range results {
		_, gerr := st.GetToken(t.Context(), storage.RefreshToken, fmt.Sprint("new", i))
		switch {
		case err == nil:
			won++
			if gerr != nil {
				t.Errorf("winner %d's token not stored", i)
			}
		case errors.Is(err, storage.ErrNotFound):
			if gerr == nil {
				t.Errorf("loser %d's token was stored", i)
			}
		default:
			t.Errorf("request %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d winners, want 1", won)
	}
}
