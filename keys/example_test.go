package keys_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/keys"
	"github.com/oauthkit/authserver/storage"
)

// memStore is a minimal keys.Store. Real deployments pass a storage.Store
// (storage/memory or storage/sql), which satisfies keys.Store.
type memStore struct {
	mu  sync.Mutex
	set storage.KeySet
}

func (s *memStore) GetKeys(context.Context) (storage.KeySet, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set, nil
}

func (s *memStore) UpdateKeys(_ context.Context, fn func(storage.KeySet) (storage.KeySet, error)) (storage.KeySet, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set, err := fn(s.set)
	if err != nil {
		return storage.KeySet{}, err
	}
	set.Version = s.set.Version + 1
	s.set = set
	return set, nil
}

func ExampleManager() {
	ctx := context.Background()
	// In production: secret, _, err := keys.LoadOrCreateSecret("/var/lib/authserver/keys.secret")
	secret := []byte("an example secret of 32+ bytes!!")

	m, err := keys.New(ctx, &memStore{}, keys.Config{
		Algorithm:     keys.ES256,
		Secret:        secret,
		TokenLifetime: time.Hour,                     // the longest access-token lifetime
		Logger:        slog.New(slog.DiscardHandler), // your application's logger
	})
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go m.Run(runCtx) // reloads and rotates on schedule

	// Sign: take the current key once per token, and put its kid in the header.
	cur, err := m.Current()
	if err != nil {
		log.Fatal(err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(cur.Algorithm), Key: cur.Key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", cur.KeyID),
	)
	if err != nil {
		log.Fatal(err)
	}
	jws, err := signer.Sign([]byte(`{"sub":"alice"}`))
	if err != nil {
		log.Fatal(err)
	}
	token, _ := jws.CompactSerialize()

	// Verify: select the key by the token's kid, never "the current key".
	parsed, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		log.Fatal(err)
	}
	key, ok := m.PublicKey(parsed.Signatures[0].Header.KeyID)
	if !ok {
		log.Fatal("unknown kid")
	}
	payload, err := parsed.Verify(key)
	fmt.Println(string(payload), err)

	// Publish: serve the JWKS (mount it at /jwks).
	rec := httptest.NewRecorder()
	m.JWKSHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/jwks", nil))
	fmt.Println(rec.Code, rec.Header().Get("Cache-Control"))
	fmt.Println(m.Algorithms())
	// Output:
	// {"sub":"alice"} <nil>
	// 200 public, max-age=3600
	// [ES256]
}
