package keys

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/oauthkit/authserver/storage"
)

func TestConfigDefaultsAndWindows(t *testing.T) {
	m := mustNew(t, newFakeStore(), Config{Secret: testSecret, TokenLifetime: time.Hour, Algorithm: ES256, Logger: discardLogger()})
	if got, want := m.MaxAge(), time.Hour; got != want {
		t.Errorf("MaxAge = %v, want %v", got, want)
	}
	if got, want := m.PrePublication(), time.Hour+5*time.Minute+10*time.Second; got != want {
		t.Errorf("PrePublication = %v, want %v", got, want)
	}
	if got, want := m.Retention(), time.Hour+5*time.Minute+10*time.Second; got != want {
		t.Errorf("Retention = %v, want %v", got, want)
	}
	if m.cfg.RotationPeriod != 30*24*time.Hour || m.cfg.ReloadInterval != 10*time.Second {
		t.Errorf("defaults: rotation %v, reload %v", m.cfg.RotationPeriod, m.cfg.ReloadInterval)
	}
}

func TestConfigRejectsInvalid(t *testing.T) {
	valid := Config{Secret: testSecret, TokenLifetime: time.Hour}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"NoSecret", func(c *Config) { c.Secret = nil }, "Secret must be at least 32 bytes"},
		{"ShortSecret", func(c *Config) { c.Secret = testSecret[:31] }, "Secret must be at least 32 bytes"},
		{"NoTokenLifetime", func(c *Config) { c.TokenLifetime = 0 }, "TokenLifetime is required"},
		{"UnknownAlgorithm", func(c *Config) { c.Algorithm = "HS256" }, `unsupported algorithm "HS256"`},
		{"NegativeMaxAge", func(c *Config) { c.JWKSMaxAge = -time.Second }, "JWKSMaxAge must not be negative"},
		{"SubSecondMaxAge", func(c *Config) { c.JWKSMaxAge = time.Millisecond }, "at least one second"},
		{"RotationShorterThanPrePublication", func(c *Config) { c.RotationPeriod = time.Hour }, "must be longer than the pre-publication window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid
			tc.edit(&cfg)
			_, err := New(t.Context(), newFakeStore(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want error containing %q", err, tc.want)
			}
		})
	}
}

// TestLifecycleSchedule walks one key through next → active → retired →
// deleted and checks each step happens exactly when due.
func TestLifecycleSchedule(t *testing.T) {
	clk := newClock()
	cfg := testConfig(clk, ES256)
	store := newFakeStore()
	m := mustNew(t, store, cfg)
	ctx := t.Context()
	R, P, Ret := cfg.RotationPeriod, m.PrePublication(), m.Retention()
	if P != time.Hour+15*time.Minute || Ret != 2*time.Hour+15*time.Minute {
		t.Fatalf("windows P=%v Ret=%v", P, Ret)
	}

	first, _ := m.Current()
	stepAt := func(at time.Time) {
		t.Helper()
		clk.Set(at)
		if err := m.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	states := func() map[storage.KeyState]int { return countStates(store.stored(t)) }

	stepAt(epoch.Add(R - P - time.Second))
	if n := states()[storage.KeyNext]; n != 0 {
		t.Fatalf("next key created %v early", time.Second)
	}
	v := store.stored(t).Version
	stepAt(epoch.Add(R - P - time.Second)) // nothing due: no write
	if store.stored(t).Version != v {
		t.Fatal("Step wrote although nothing was due")
	}

	stepAt(epoch.Add(R - P))
	var next KeyInfo
	for _, k := range m.List() {
		if k.State == storage.KeyNext {
			next = k
		}
	}
	if next.ID == "" || !next.ActivateAt.Equal(epoch.Add(R)) || !next.CreatedAt.Equal(epoch.Add(R-P)) {
		t.Fatalf("next key %+v, want created %v activating %v", next, epoch.Add(R-P), epoch.Add(R))
	}
	if _, ok := m.PublicKey(next.ID); !ok {
		t.Fatal("next key is not published")
	}
	if !bytes.Contains(must(m.JWKS()), []byte(next.ID)) {
		t.Fatal("next key is not in the JWKS")
	}

	stepAt(epoch.Add(R - time.Nanosecond))
	if cur, _ := m.Current(); cur.KeyID != first.KeyID {
		t.Fatal("promoted before ActivateAt")
	}
	stepAt(epoch.Add(R))
	if cur, _ := m.Current(); cur.KeyID != next.ID {
		t.Fatalf("Current = %s, want promoted %s", cur.KeyID, next.ID)
	}
	var retired storage.SigningKey
	for _, k := range store.stored(t).Keys {
		if k.ID == first.KeyID {
			retired = k
		}
	}
	if retired.State != storage.KeyRetired || !retired.RetiredAt.Equal(epoch.Add(R)) ||
		!retired.DeleteAt.Equal(epoch.Add(R+Ret)) || len(retired.Private) != 0 {
		t.Fatalf("old key after promotion: state %s retired %v delete %v private %d bytes",
			retired.State, retired.RetiredAt, retired.DeleteAt, len(retired.Private))
	}
	if _, ok := m.PublicKey(first.KeyID); !ok {
		t.Fatal("retired key is not published")
	}

	stepAt(epoch.Add(R + Ret - time.Nanosecond))
	if _, ok := m.PublicKey(first.KeyID); !ok {
		t.Fatal("retired key deleted early")
	}
	stepAt(epoch.Add(R + Ret))
	if _, ok := m.PublicKey(first.KeyID); ok {
		t.Fatal("retired key still published after DeleteAt")
	}
	if got := states(); got[storage.KeyActive] != 1 || len(store.stored(t).Keys) != 1 {
		t.Fatalf("states %v", got)
	}
	store.assertHealthy(t)
}

func must[T any](v T, _ ...any) T { return v }

func TestRotatePrePublishesUnlessImmediate(t *testing.T) {
	clk := newClock()
	cfg := testConfig(clk, ES256)
	var logs bytes.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	store := newFakeStore()
	m := mustNew(t, store, cfg)
	ctx := t.Context()
	first, _ := m.Current()

	if err := m.Rotate(ctx, false); err != nil {
		t.Fatal(err)
	}
	if cur, _ := m.Current(); cur.KeyID != first.KeyID {
		t.Fatal("Rotate(false) changed the signing key at once")
	}
	v := store.stored(t).Version
	if err := m.Rotate(ctx, false); err != nil { // next key too young: no-op
		t.Fatal(err)
	}
	if got := store.stored(t); got.Version != v || countStates(got)[storage.KeyNext] != 1 {
		t.Fatalf("second Rotate(false) wrote: version %d → %d, states %v", v, got.Version, countStates(got))
	}

	clk.Add(m.PrePublication())
	if err := m.Rotate(ctx, false); err != nil { // published long enough: promote
		t.Fatal(err)
	}
	second, _ := m.Current()
	if second.KeyID == first.KeyID {
		t.Fatal("Rotate(false) did not promote a next key published for the window")
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("unexpected warning:\n%s", logs.String())
	}

	if err := m.Rotate(ctx, true); err != nil {
		t.Fatal(err)
	}
	third, _ := m.Current()
	if third.KeyID == second.KeyID {
		t.Fatal("Rotate(true) did not switch keys")
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "cached JWKS") {
		t.Errorf("Rotate(true) logged no warning about caches:\n%s", logs.String())
	}
	if got := countStates(store.stored(t)); got[storage.KeyRetired] != 2 || got[storage.KeyActive] != 1 || got[storage.KeyNext] != 0 {
		t.Fatalf("states %v", got)
	}
	// Logs carry kids and dates, never key material.
	for _, k := range store.stored(t).Keys {
		if len(k.Private) > 0 && strings.Contains(logs.String(), base64.StdEncoding.EncodeToString(k.Private)[:16]) {
			t.Error("log contains private key ciphertext")
		}
	}
	store.assertHealthy(t)
}

func TestRotateBringsScheduledActivationForward(t *testing.T) {
	clk := newClock()
	cfg := testConfig(clk, ES256)
	store := newFakeStore()
	m := mustNew(t, store, cfg)
	clk.Set(epoch.Add(cfg.RotationPeriod - 2*m.PrePublication()))
	if err := m.Step(t.Context()); err != nil {
		t.Fatal(err)
	}
	clk.Set(epoch.Add(cfg.RotationPeriod - m.PrePublication())) // Step creates the next key, activating at RotationPeriod
	if err := m.Step(t.Context()); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	if err := m.Rotate(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	// Created exactly P before the end of the period, so the earliest
	// activation is that end: nothing to bring forward.
	for _, k := range m.List() {
		if k.State == storage.KeyNext && !k.ActivateAt.Equal(epoch.Add(cfg.RotationPeriod)) {
			t.Fatalf("ActivateAt %v", k.ActivateAt)
		}
	}
}

func TestNewConcurrentlyOnEmptyStoreCreatesOneKey(t *testing.T) {
	for range 10 {
		clk := newClock()
		store := newFakeStore()
		managers := make([]*Manager, 8)
		var g errgroup.Group
		for i := range managers {
			g.Go(func() (err error) {
				managers[i], err = New(t.Context(), store.handle(), testConfig(clk, EdDSA))
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		set := store.stored(t)
		if len(set.Keys) != 1 || set.Keys[0].State != storage.KeyActive {
			t.Fatalf("set after concurrent New: %v", countStates(set))
		}
		for i, m := range managers {
			if cur, _ := m.Current(); cur.KeyID != set.Keys[0].ID {
				t.Fatalf("manager %d signs with %s, stored active key is %s", i, cur.KeyID, set.Keys[0].ID)
			}
		}
		store.assertHealthy(t)
	}
}

func TestConcurrentRotationKeepsOneActiveKey(t *testing.T) {
	clk := newClock()
	store := newFakeStore()
	cfg := testConfig(clk, EdDSA)
	a := mustNew(t, store, cfg)
	b := mustNew(t, store.handle(), cfg)

	var g errgroup.Group
	for w, m := range []*Manager{a, b, a, b} {
		g.Go(func() error {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 100 {
				var err error
				switch r.IntN(4) {
				case 0:
					err = m.Rotate(t.Context(), false)
				case 1:
					err = m.Rotate(t.Context(), true)
				case 2:
					clk.Add(time.Duration(r.IntN(120)) * time.Minute)
					err = m.Step(t.Context())
				default:
					err = m.Step(t.Context())
				}
				if err != nil {
					return err
				}
				if _, err := m.Current(); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	store.assertHealthy(t)
	for _, m := range []*Manager{a, b} {
		if err := m.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	ca, _ := a.Current()
	cb, _ := b.Current()
	if ca.KeyID != cb.KeyID {
		t.Fatalf("instances sign with %s and %s after reload", ca.KeyID, cb.KeyID)
	}
}

// TestConcurrentStepsPromoteOnce checks the re-check inside the updater: two
// instances that both find a promotion due perform it once, not twice.
func TestConcurrentStepsPromoteOnce(t *testing.T) {
	for range 20 {
		clk := newClock()
		store := newFakeStore()
		cfg := testConfig(clk, EdDSA)
		a := mustNew(t, store, cfg)
		b := mustNew(t, store.handle(), cfg)
		clk.Set(epoch.Add(cfg.RotationPeriod - a.PrePublication()))
		if err := a.Step(t.Context()); err != nil {
			t.Fatal(err)
		}
		clk.Set(epoch.Add(cfg.RotationPeriod))
		var wg sync.WaitGroup
		for _, m := range []*Manager{a, b} {
			wg.Go(func() {
				if err := m.Step(t.Context()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got := countStates(store.stored(t)); got[storage.KeyRetired] != 1 || got[storage.KeyActive] != 1 || len(store.stored(t).Keys) != 2 {
			t.Fatalf("after concurrent promotion: %v", got)
		}
		ca, _ := a.Current()
		cb, _ := b.Current()
		if ca.KeyID != cb.KeyID {
			t.Fatal("instances disagree on the active key")
		}
		store.assertHealthy(t)
	}
}

func TestRestartKeepsKeys(t *testing.T) {
	for _, alg := range []string{RS256, ES256, EdDSA} {
		t.Run(alg, func(t *testing.T) {
			clk := newClock()
			store := newFakeStore()
			m1 := mustNew(t, store, testConfig(clk, alg))
			if err := m1.Rotate(t.Context(), false); err != nil {
				t.Fatal(err)
			}
			cur1, _ := m1.Current()
			body1, etag1 := m1.JWKS()

			m2 := mustNew(t, store.handle(), testConfig(clk, alg))
			cur2, _ := m2.Current()
			body2, etag2 := m2.JWKS()
			if cur2.KeyID != cur1.KeyID || cur2.Algorithm != alg {
				t.Fatalf("after restart: %s %s, before: %s %s", cur2.KeyID, cur2.Algorithm, cur1.KeyID, cur1.Algorithm)
			}
			if !bytes.Equal(body1, body2) || etag1 != etag2 {
				t.Fatal("JWKS changed across restart")
			}
			if !slices.Equal(m1.List(), m2.List()) {
				t.Fatalf("List differs:\n%v\n%v", m1.List(), m2.List())
			}
			// The restarted manager holds the same private key.
			tok := signToken(t, cur2, map[string]any{"sub": "x"})
			if err := verifyCompact(tok, m1); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWrongSecretFailsClearly(t *testing.T) {
	clk := newClock()
	store := newFakeStore()
	m := mustNew(t, store, testConfig(clk, ES256))
	cur, _ := m.Current()

	cfg := testConfig(clk, ES256)
	cfg.Secret = bytes.Repeat([]byte("x"), 32)
	_, err := New(t.Context(), store.handle(), cfg)
	if !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("New with another secret: %v, want ErrWrongSecret", err)
	}
	want := fmt.Sprintf("keys: cannot decrypt signing key %s: wrong secret?", cur.KeyID)
	if err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	if len(store.stored(t).Keys) != 1 {
		t.Fatal("a failed New changed the key set")
	}
}

func TestStoredPrivateKeysAreEncrypted(t *testing.T) {
	store := newFakeStore()
	mustNew(t, store, testConfig(newClock(), RS256))
	k := store.stored(t).Keys[0]
	if _, err := x509.ParsePKCS8PrivateKey(k.Private); err == nil {
		t.Fatal("Private is plain PKCS#8")
	}
	var pub map[string]any
	if err := json.Unmarshal(k.Public, &pub); err != nil {
		t.Fatal(err)
	}
	assertPublicMembersOnly(t, pub)
}

func TestReloadDecryptsOnlyNewKeys(t *testing.T) {
	clk := newClock()
	store := newFakeStore()
	cfg := testConfig(clk, EdDSA)
	a := mustNew(t, store, cfg)
	b := mustNew(t, store.handle(), cfg)
	if a.opened != 1 {
		t.Fatalf("New decrypted %d keys, want 1", a.opened)
	}
	snap := a.snap.Load()
	for range 3 {
		if err := a.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if a.opened != 1 || a.snap.Load() != snap {
		t.Fatalf("Reload of an unchanged set decrypted again (%d) or rebuilt the snapshot", a.opened)
	}
	if err := b.Rotate(t.Context(), false); err != nil { // another instance adds a next key
		t.Fatal(err)
	}
	if err := a.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if a.opened != 2 {
		t.Fatalf("after another instance's rotation: %d decryptions, want 2", a.opened)
	}
	clk.Add(a.PrePublication())
	if err := b.Rotate(t.Context(), false); err != nil { // promotes it
		t.Fatal(err)
	}
	if err := a.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	cb, _ := b.Current()
	if ca, _ := a.Current(); a.opened != 2 || ca.KeyID != cb.KeyID {
		t.Fatalf("after promotion elsewhere: %d decryptions, current %s want %s", a.opened, ca.KeyID, cb.KeyID)
	}
	if len(a.privates) != 1 {
		t.Fatalf("%d private keys cached, want only the active one", len(a.privates))
	}
}

func TestReloadErrorKeepsSnapshot(t *testing.T) {
	store := newFakeStore()
	m := mustNew(t, store, testConfig(newClock(), EdDSA))
	before, _ := m.Current()
	store.getErr = errors.New("database down")
	if err := m.Reload(t.Context()); err == nil || !errors.Is(err, store.getErr) {
		t.Fatalf("Reload: %v", err)
	}
	if after, err := m.Current(); err != nil || after.KeyID != before.KeyID {
		t.Fatalf("Current after failed reload: %v %v", after.KeyID, err)
	}
}

func TestCurrentDoesNotAllocate(t *testing.T) {
	m := mustNew(t, newFakeStore(), testConfig(newClock(), EdDSA))
	var s Signer
	allocs := testing.AllocsPerRun(1000, func() {
		s, _ = m.Current()
		_, _ = m.PublicKey(s.KeyID)
	})
	if allocs != 0 {
		t.Fatalf("Current+PublicKey allocate %v times", allocs)
	}
}

func TestAlgorithmsOfPublishedKeys(t *testing.T) {
	clk := newClock()
	store := newFakeStore()
	m := mustNew(t, store, testConfig(clk, ES256))
	if got := m.Algorithms(); !slices.Equal(got, []string{ES256}) {
		t.Fatalf("Algorithms = %v", got)
	}
	m2 := mustNew(t, store.handle(), testConfig(clk, EdDSA)) // new keys EdDSA from now on
	if err := m2.Rotate(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := m.Algorithms(); !slices.Equal(got, []string{ES256, EdDSA}) {
		t.Fatalf("Algorithms = %v", got)
	}
	for _, k := range m.List() {
		if want := map[storage.KeyState]string{storage.KeyActive: ES256, storage.KeyNext: EdDSA}[k.State]; k.Algorithm != want {
			t.Errorf("%s key has %s, want %s", k.State, k.Algorithm, want)
		}
	}
}

func TestRunReloadsAndStopsWithContext(t *testing.T) {
	clk := newClock()
	store := newFakeStore()
	cfg := testConfig(clk, EdDSA)
	cfg.ReloadInterval = time.Millisecond
	a := mustNew(t, store, cfg)
	b := mustNew(t, store.handle(), cfg)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	if err := b.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	want, _ := b.Current()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if cur, _ := a.Current(); cur.KeyID == want.KeyID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not pick up another instance's rotation")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestDescribeNeedsNoSecret(t *testing.T) {
	clk := newClock()
	store := newFakeStore()
	m := mustNew(t, store, testConfig(clk, EdDSA))
	if err := m.Rotate(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	got, err := Describe(t.Context(), store.handle())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, m.List()) || len(got) != 2 || got[0].State != storage.KeyActive || got[1].State != storage.KeyNext {
		t.Fatalf("Describe = %+v", got)
	}
}

// TestEmptiedSetIsRepaired covers a key set emptied behind the manager's
// back: Current keeps signing from memory, and both Step and Rotate restore
// exactly one active key.
func TestEmptiedSetIsRepaired(t *testing.T) {
	for _, op := range []string{"Step", "Rotate", "RotateImmediate"} {
		t.Run(op, func(t *testing.T) {
			store := newFakeStore()
			m := mustNew(t, store, testConfig(newClock(), EdDSA))
			if _, err := store.UpdateKeys(t.Context(), func(s storage.KeySet) (storage.KeySet, error) {
				return storage.KeySet{Version: s.Version}, nil
			}); err != nil {
				t.Fatal(err)
			}
			var err error
			switch op {
			case "Step":
				err = m.Step(t.Context())
			case "Rotate":
				err = m.Rotate(t.Context(), false)
			default:
				err = m.Rotate(t.Context(), true)
			}
			if err != nil {
				t.Fatal(err)
			}
			set := store.stored(t)
			if n := countStates(set); n[storage.KeyActive] != 1 {
				t.Fatalf("states %v", n)
			}
			if cur, _ := m.Current(); cur.KeyID != set.Keys[0].ID {
				t.Fatal("Current is not the new active key")
			}
		})
	}
}

// TestWindowsHoldAgainstShorterConfiguredInstance covers an instance (say a
// CLI run) configured with shorter windows than the servers: the servers
// neither promote a key it published before their own pre-publication
// window, nor delete a key it retired before their own retention window.
func TestWindowsHoldAgainstShorterConfiguredInstance(t *testing.T) {
	clk := newClock()
	store := newFakeStore()
	cfg := testConfig(clk, EdDSA)
	server := mustNew(t, store, cfg)
	short := cfg
	short.JWKSMaxAge, short.TokenLifetime = time.Minute, time.Minute
	cli := mustNew(t, store.handle(), short)
	first, _ := server.Current()

	if err := cli.Rotate(t.Context(), false); err != nil { // ActivateAt = now + the CLI's short window
		t.Fatal(err)
	}
	clk.Add(cli.PrePublication())
	if err := server.Step(t.Context()); err != nil {
		t.Fatal(err)
	}
	if cur, _ := server.Current(); cur.KeyID != first.KeyID {
		t.Fatal("server promoted a key published for less than its own pre-publication window")
	}
	clk.Set(epoch.Add(server.PrePublication()))
	if err := server.Step(t.Context()); err != nil {
		t.Fatal(err)
	}
	if cur, _ := server.Current(); cur.KeyID == first.KeyID {
		t.Fatal("server did not promote after its own window")
	}

	if err := cli.Rotate(t.Context(), true); err != nil { // retires with DeleteAt = now + the CLI's short retention
		t.Fatal(err)
	}
	clk.Add(cli.Retention())
	if err := server.Step(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := countStates(store.stored(t))[storage.KeyRetired]; n != 2 {
		t.Fatalf("%d retired keys, want 2: server deleted a key before its own retention window", n)
	}
	clk.Add(server.Retention())
	if err := server.Step(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := countStates(store.stored(t))[storage.KeyRetired]; n != 0 {
		t.Fatalf("%d retired keys left after the retention window", n)
	}
}
