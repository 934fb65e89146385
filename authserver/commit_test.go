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
			errs[i] = c.submit(context.Background(), []storage.Token{tok(sig)}, nil)
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
