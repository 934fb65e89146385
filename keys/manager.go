package keys

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/storage"
)

// Store is the part of storage.Store the manager needs. UpdateKeys must be
// atomic across every instance sharing the store (see storage.Keys).
type Store interface {
	GetKeys(ctx context.Context) (storage.KeySet, error)
	UpdateKeys(ctx context.Context, fn func(storage.KeySet) (storage.KeySet, error)) (storage.KeySet, error)
}

var _ Store = storage.Store(nil)

// ErrNoActiveKey is returned by Current when the key set has no active key.
// A Manager returned by New always has one, so this indicates a key set
// emptied behind the manager's back; the next Step repairs it.
var ErrNoActiveKey = errors.New("keys: no active signing key")

// Signer is the active signing key. Put KeyID in the "kid" header of every
// token signed with Key, and take Signer once per token so that the header
// and the signature cannot straddle a rotation.
type Signer struct {
	// KeyID is the key's "kid": its RFC 7638 SHA-256 thumbprint, base64url.
	KeyID string
	// Algorithm is the JWS "alg": RS256, ES256 or EdDSA.
	Algorithm string
	// Key is a *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey. It
	// is shared: callers MUST NOT modify it.
	Key crypto.Signer
}

// KeyInfo describes one key of the set, for listing. It holds no key
// material.
type KeyInfo struct {
	ID         string
	Algorithm  string
	State      storage.KeyState
	CreatedAt  time.Time
	ActivateAt time.Time // when a next key activates, or when the key did
	RetiredAt  time.Time // zero unless retired
	DeleteAt   time.Time // zero unless retired
}

// Manager holds the server's signing keys. It reads and writes them through a
// Store shared by every instance, keeps an immutable snapshot in memory for
// the hot paths (Current, PublicKey, JWKS) and advances the key lifecycle in
// Run. All methods are safe for concurrent use.
type Manager struct {
	store  Store
	cfg    Config
	life   lifecycle
	sealer *sealer
	log    *slog.Logger

	snap atomic.Pointer[snapshot]

	// mu serialises Reload, Step and Rotate, so the snapshot only moves
	// forward in the order they observed storage.
	mu       sync.Mutex
	privates map[string]crypto.Signer // decrypted keys by kid; guarded by mu
	opened   int                      // number of decryptions; guarded by mu; for tests
}

// snapshot is an immutable view of one key set, with everything the hot
// paths need precomputed.
type snapshot struct {
	set       storage.KeySet
	hasActive bool
	signer    Signer
	// actives holds the active key of each group (see group), the
	// primary group's first.
	actives []Signer
	public  map[string]*jose.JSONWebKey
	jwks    []byte
	etag    string
	algs    []string
	infos   []KeyInfo
}

// New returns a Manager for the key set in store. It loads the set, decrypts
// the active and next private keys, and performs every lifecycle step that is
// due; in particular it creates and activates a key when the set has no
// active key. Instances starting together on an empty store end with exactly
// one active key, because creation is a compare-and-swap.
//
// New fails with an error wrapping ErrWrongSecret (whose text reads "keys:
// cannot decrypt signing key <kid>: wrong secret?") when cfg.Secret does not
// decrypt the stored keys.
func New(ctx context.Context, store Store, cfg Config) (*Manager, error) {
	if store == nil {
		return nil, errors.New("keys: nil Store")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s, err := newSealer(cfg.Secret)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		store: store,
		cfg:   cfg,
		life: lifecycle{
			rotation:   cfg.RotationPeriod,
			prePublish: cfg.prePublication(),
			retain:     cfg.retention(),
		},
		sealer:   s,
		log:      cfg.Logger,
		privates: make(map[string]crypto.Signer),
	}
	m.snap.Store(&snapshot{})
	if err := m.Step(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// Current returns the active signing key from memory. It does no I/O and
// does not allocate.
func (m *Manager) Current() (Signer, error) {
	s := m.snap.Load()
	if !s.hasActive {
		return Signer{}, ErrNoActiveKey
	}
	return s.signer, nil
}

// CurrentFor returns the active signing key of algorithm alg (see
// Config.ExtraAlgorithms) from memory, or ErrNoActiveKey when no active key
// has that algorithm.
func (m *Manager) CurrentFor(alg string) (Signer, error) {
	for _, s := range m.snap.Load().actives {
		if s.Algorithm == alg {
			return s, nil
		}
	}
	return Signer{}, ErrNoActiveKey
}

// PublicKey returns the published key (next, active or retired) with the
// given kid. Verifiers select keys this way, never as "the current key". The
// returned key is shared and MUST NOT be modified.
func (m *Manager) PublicKey(kid string) (*jose.JSONWebKey, bool) {
	k, ok := m.snap.Load().public[kid]
	return k, ok
}

// Algorithms returns the algorithms of the published keys, sorted and
// without duplicates, for the server metadata
// (id_token_signing_alg_values_supported and similar).
func (m *Manager) Algorithms() []string {
	return slices.Clone(m.snap.Load().algs)
}

// List describes every key of the set, oldest first (then by activation).
func (m *Manager) List() []KeyInfo {
	return slices.Clone(m.snap.Load().infos)
}

// Describe lists the keys in store, oldest first (then by activation), without decrypting or
// changing anything, so it needs no Secret (for "authserver keys list").
func Describe(ctx context.Context, store Store) ([]KeyInfo, error) {
	set, err := store.GetKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: load key set: %w", err)
	}
	return describe(set), nil
}

func describe(set storage.KeySet) []KeyInfo {
	infos := make([]KeyInfo, 0, len(set.Keys))
	for _, k := range set.Keys {
		infos = append(infos, KeyInfo{
			ID: k.ID, Algorithm: k.Algorithm, State: k.State, CreatedAt: k.CreatedAt,
			ActivateAt: k.ActivateAt, RetiredAt: k.RetiredAt, DeleteAt: k.DeleteAt,
		})
	}
	slices.SortStableFunc(infos, func(a, b KeyInfo) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		if c := a.ActivateAt.Compare(b.ActivateAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return infos
}

// MaxAge is the Cache-Control max-age of the JWKS response.
func (m *Manager) MaxAge() time.Duration { return m.cfg.JWKSMaxAge }

// PrePublication is how long a new key is published before it signs:
// JWKSMaxAge + ReloadInterval + SafetyMargin.
func (m *Manager) PrePublication() time.Duration { return m.life.prePublish }

// Retention is how long a retired key stays published:
// TokenLifetime + ReloadInterval + SafetyMargin.
func (m *Manager) Retention() time.Duration { return m.life.retain }

// Reload reads the key set from storage and, if it changed, rebuilds the
// snapshot. Private keys already decrypted are reused. On error the previous
// snapshot stays in use.
func (m *Manager) Reload(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reloadLocked(ctx)
}

func (m *Manager) reloadLocked(ctx context.Context) error {
	set, err := m.store.GetKeys(ctx)
	if err != nil {
		return fmt.Errorf("keys: load key set: %w", err)
	}
	return m.install(set)
}

// Step does what Run does on every tick: it reloads the key set and performs
// every lifecycle step that is due (see the package documentation). Tests
// with an injected clock call it after moving the clock.
func (m *Manager) Step(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.reloadLocked(ctx); err != nil {
		return err
	}
	now := m.cfg.Now().UTC()
	return m.apply(ctx, now, m.life.advance(now))
}

// Rotate forces the next lifecycle step now. Without a next key it creates
// one, published at once and activating one pre-publication window later
// (Run promotes it). With a next key that has been published for the
// pre-publication window it promotes it; with a younger one it moves its
// activation forward to the end of that window.
//
// With immediate set, the next key (created if needed) is promoted at once.
// Verifiers holding a cached JWKS without it may reject tokens signed with it
// until their cache expires; a warning is logged. Use it when a key may be
// compromised.
func (m *Manager) Rotate(ctx context.Context, immediate bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.reloadLocked(ctx); err != nil {
		return err
	}
	now := m.cfg.Now().UTC()
	return m.apply(ctx, now, m.life.rotate(now, immediate))
}

// Run performs Step every ReloadInterval until ctx is done, then returns nil.
// Errors are logged, and the previous snapshot stays in use meanwhile.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := m.Step(ctx); err != nil && ctx.Err() == nil {
				m.log.ErrorContext(ctx, "keys: key set reload or rotation failed; signing with the last loaded set", "err", err)
			}
		}
	}
}

// install makes set the current snapshot unless it equals the current one.
// The caller holds m.mu.
func (m *Manager) install(set storage.KeySet) error {
	if cur := m.snap.Load(); cur.set.Version != 0 && sameSet(cur.set, set) {
		return nil
	}
	s, err := m.build(set)
	if err != nil {
		return err
	}
	m.snap.Store(s)
	return nil
}

// build computes the snapshot of set, decrypting private keys not seen
// before. The caller holds m.mu.
func (m *Manager) build(set storage.KeySet) (*snapshot, error) {
	s := &snapshot{set: set, public: make(map[string]*jose.JSONWebKey, len(set.Keys))}
	var published []storage.SigningKey
	gs := m.groups()
	active := make([]*storage.SigningKey, len(gs)) // by group
	for i, k := range set.Keys {
		switch k.State {
		case storage.KeyNext, storage.KeyActive, storage.KeyRetired:
		default:
			continue // unknown state: neither published nor used
		}
		jwk, err := parsePublic(k)
		if err != nil {
			return nil, err
		}
		s.public[k.ID] = jwk
		published = append(published, k)
		if k.State != storage.KeyActive {
			continue
		}
		for g := range gs {
			if gs[g].member(k) {
				if active[g] == nil || k.ActivateAt.After(active[g].ActivateAt) {
					active[g] = &set.Keys[i]
				}
				break
			}
		}
	}

	// Decrypt the active key, and the next one so that a wrong secret
	// shows up when it is created rather than when it activates.
	keep := make(map[string]bool)
	for _, k := range published {
		if k.State == storage.KeyRetired {
			continue
		}
		keep[k.ID] = true
		if _, ok := m.privates[k.ID]; ok {
			continue
		}
		priv, err := m.sealer.decrypt(k, s.public[k.ID])
		if err != nil {
			return nil, err
		}
		m.opened++
		m.privates[k.ID] = priv
	}
	for kid := range m.privates {
		if !keep[kid] {
			delete(m.privates, kid)
		}
	}
	for g, a := range active {
		if a == nil {
			continue
		}
		sg := Signer{KeyID: a.ID, Algorithm: a.Algorithm, Key: m.privates[a.ID]}
		if g == 0 {
			s.hasActive, s.signer = true, sg
		}
		s.actives = append(s.actives, sg)
	}

	// JWKS order: active, next, then retired keys newest first.
	rank := map[storage.KeyState]int{storage.KeyActive: 0, storage.KeyNext: 1, storage.KeyRetired: 2}
	slices.SortStableFunc(published, func(a, b storage.SigningKey) int {
		if c := cmp.Compare(rank[a.State], rank[b.State]); c != 0 {
			return c
		}
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	var jwks jose.JSONWebKeySet
	for _, k := range published {
		jwks.Keys = append(jwks.Keys, *s.public[k.ID])
		if !slices.Contains(s.algs, k.Algorithm) {
			s.algs = append(s.algs, k.Algorithm)
		}
	}
	if jwks.Keys == nil {
		jwks.Keys = []jose.JSONWebKey{}
	}
	body, err := json.Marshal(jwks)
	if err != nil {
		return nil, fmt.Errorf("keys: marshal JWKS: %w", err)
	}
	sum := sha256.Sum256(body)
	s.jwks = body
	s.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
	slices.Sort(s.algs)

	s.infos = describe(set)
	return s, nil
}

// sameSet reports whether a and b hold the same keys in the same order.
func sameSet(a, b storage.KeySet) bool {
	return a.Version == b.Version && slices.EqualFunc(a.Keys, b.Keys, func(x, y storage.SigningKey) bool {
		return x.ID == y.ID && x.Algorithm == y.Algorithm && x.State == y.State &&
			bytes.Equal(x.Private, y.Private) && bytes.Equal(x.Public, y.Public) &&
			x.CreatedAt.Equal(y.CreatedAt) && x.ActivateAt.Equal(y.ActivateAt) &&
			x.RetiredAt.Equal(y.RetiredAt) && x.DeleteAt.Equal(y.DeleteAt)
	})
}
