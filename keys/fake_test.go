package keys

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// fakeDB is the shared state behind fake store handles: the key set kept as
// JSON, as a database row would keep it, and its version.
type fakeDB struct {
	mu         sync.Mutex
	row        []byte
	version    int64
	violations []string // invariant violations seen at commit
}

// fakeStore is one handle on a fakeDB. UpdateKeys is optimistic: it runs fn
// outside the lock and retries when another writer committed meanwhile, so
// fn really does run more than once under contention.
type fakeStore struct {
	db     *fakeDB
	getErr error
}

func newFakeStore() *fakeStore { return &fakeStore{db: &fakeDB{}} }

// handle returns a second handle on the same database, as a second instance
// would have.
func (s *fakeStore) handle() *fakeStore { return &fakeStore{db: s.db} }

func (db *fakeDB) read() (storage.KeySet, error) {
	var set storage.KeySet
	if db.row == nil {
		return set, nil
	}
	err := json.Unmarshal(db.row, &set)
	return set, err
}

func (s *fakeStore) GetKeys(ctx context.Context) (storage.KeySet, error) {
	if s.getErr != nil {
		return storage.KeySet{}, s.getErr
	}
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	return s.db.read()
}

func (s *fakeStore) UpdateKeys(ctx context.Context, fn func(storage.KeySet) (storage.KeySet, error)) (storage.KeySet, error) {
	for {
		if err := ctx.Err(); err != nil {
			return storage.KeySet{}, err
		}
		s.db.mu.Lock()
		old, err := s.db.read()
		s.db.mu.Unlock()
		if err != nil {
			return storage.KeySet{}, err
		}
		runtime.Gosched()
		set, err := fn(old)
		if err != nil {
			return storage.KeySet{}, err
		}
		s.db.mu.Lock()
		if s.db.version != old.Version {
			s.db.mu.Unlock()
			continue // lost the race: run fn again on the new state
		}
		set.Version = old.Version + 1
		if err := checkInvariants(set); err != nil {
			s.db.violations = append(s.db.violations, err.Error())
		}
		prev, _ := s.db.read()
		if err := checkTransition(prev, set); err != nil {
			s.db.violations = append(s.db.violations, err.Error())
		}
		row, err := json.Marshal(set)
		if err != nil {
			s.db.mu.Unlock()
			return storage.KeySet{}, err
		}
		s.db.row, s.db.version = row, set.Version
		s.db.mu.Unlock()
		return set, nil
	}
}

// checkInvariants checks what must hold for every committed key set.
func checkInvariants(set storage.KeySet) error {
	var active, next int
	for _, k := range set.Keys {
		switch k.State {
		case storage.KeyActive:
			active++
		case storage.KeyNext:
			next++
		case storage.KeyRetired:
			if len(k.Private) != 0 || k.DeleteAt.IsZero() || k.RetiredAt.IsZero() {
				return fmt.Errorf("version %d: retired key %s keeps its private key or lacks dates", set.Version, k.ID)
			}
		default:
			return fmt.Errorf("version %d: key %s has state %q", set.Version, k.ID, k.State)
		}
	}
	if active != 1 || next > 1 {
		return fmt.Errorf("version %d: %d active and %d next keys", set.Version, active, next)
	}
	return nil
}

// checkTransition checks that every key moves forward through
// next → active → retired → deleted between two committed versions; a lost
// update (a set computed from stale data) shows up as a key going back or
// vanishing early.
func checkTransition(prev, cur storage.KeySet) error {
	rank := map[storage.KeyState]int{storage.KeyNext: 0, storage.KeyActive: 1, storage.KeyRetired: 2}
	was := make(map[string]storage.KeyState)
	for _, k := range prev.Keys {
		was[k.ID] = k.State
	}
	for _, k := range cur.Keys {
		if st, ok := was[k.ID]; ok && rank[k.State] < rank[st] {
			return fmt.Errorf("version %d: key %s went back from %s to %s", cur.Version, k.ID, st, k.State)
		}
		delete(was, k.ID)
	}
	for id, st := range was {
		if st != storage.KeyRetired {
			return fmt.Errorf("version %d: key %s removed while %s", cur.Version, id, st)
		}
	}
	return nil
}

func (s *fakeStore) stored(t *testing.T) storage.KeySet {
	t.Helper()
	set, err := s.GetKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func (s *fakeStore) assertHealthy(t *testing.T) {
	t.Helper()
	s.db.mu.Lock()
	v := s.db.violations
	s.db.mu.Unlock()
	for _, e := range v {
		t.Errorf("invariant violated: %s", e)
	}
	if err := checkInvariants(s.stored(t)); err != nil {
		t.Error(err)
	}
}

// clock is a settable clock safe for concurrent use.
type clock struct{ ns atomic.Int64 }

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newClock() *clock {
	c := &clock{}
	c.ns.Store(epoch.UnixNano())
	return c
}

func (c *clock) Now() time.Time                  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Add(d time.Duration)             { c.ns.Add(int64(d)) }
func (c *clock) Set(t time.Time)                 { c.ns.Store(t.UnixNano()) }
func (c *clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testConfig returns a configuration with short, round windows:
// pre-publication 1h + 10m + 5m = 1h15m, retention 2h + 10m + 5m = 2h15m.
func testConfig(clk *clock, alg string) Config {
	return Config{
		Algorithm:      alg,
		Secret:         testSecret,
		RotationPeriod: 7 * 24 * time.Hour,
		JWKSMaxAge:     time.Hour,
		TokenLifetime:  2 * time.Hour,
		ReloadInterval: 10 * time.Minute,
		Now:            clk.Now,
		Logger:         discardLogger(),
	}
}

func mustNew(t *testing.T, store Store, cfg Config) *Manager {
	t.Helper()
	m, err := New(t.Context(), store, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

func countStates(set storage.KeySet) map[storage.KeyState]int {
	n := make(map[storage.KeyState]int)
	for _, k := range set.Keys {
		n[k.State]++
	}
	return n
}
