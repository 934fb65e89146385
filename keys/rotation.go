package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// errAlreadyRotated is returned by an updater when, on the fresh key set, the
// step it was asked to take is no longer due: another instance took it
// first. It aborts the write and counts as success.
var errAlreadyRotated = errors.New("keys: already rotated")

// errNeedKey is returned by an updater that must add a key but was given
// none; the caller generates one (outside the updater) and retries.
var errNeedKey = errors.New("keys: new key needed")

// lifecycle holds the three durations every lifecycle decision depends on.
type lifecycle struct {
	rotation   time.Duration // how long a key stays active
	prePublish time.Duration // minimum time a key is published before it signs
	retain     time.Duration // how long a retired key stays published
}

// event records one lifecycle step taken by an updater, for logging.
type event struct {
	what string // created, activated, retired, rescheduled, deleted, dropped
	key  storage.SigningKey
	warn bool
}

// updater is a pure function from the stored set to the new one. fresh is a
// key generated outside the updater, or nil. It returns errNeedKey when it
// needs a key and fresh is nil, and errAlreadyRotated when nothing changed.
type updater func(set storage.KeySet, fresh *storage.SigningKey) (storage.KeySet, []event, error)

// normalize copies the keys of set and returns them with the index of the
// active and the next key (-1 when absent). A set with several active keys
// (which this package never writes) is repaired: the most recently activated
// stays active and the others are retired. Of several next keys the oldest,
// the longest published, is kept and the others, which never signed, are
// dropped.
func (l lifecycle) normalize(set storage.KeySet, now time.Time) (keys []storage.SigningKey, active, next int, ev []event) {
	keys = slices.Clone(set.Keys)
	active, next = -1, -1
	for i, k := range keys {
		switch k.State {
		case storage.KeyActive:
			if active < 0 || k.ActivateAt.After(keys[active].ActivateAt) {
				active = i
			}
		case storage.KeyNext:
			if next < 0 || k.CreatedAt.Before(keys[next].CreatedAt) {
				next = i
			}
		}
	}
	drop := make(map[int]bool)
	for i, k := range keys {
		switch {
		case k.State == storage.KeyActive && i != active:
			l.retire(&keys[i], now)
			ev = append(ev, event{what: "retired", key: keys[i], warn: true})
		case k.State == storage.KeyNext && i != next:
			drop[i] = true
			ev = append(ev, event{what: "dropped", key: k, warn: true})
		}
	}
	if len(drop) == 0 {
		return keys, active, next, ev
	}
	kept := keys[:0]
	active, next = -1, -1
	for i, k := range keys {
		if drop[i] {
			continue
		}
		switch k.State {
		case storage.KeyActive:
			active = len(kept)
		case storage.KeyNext:
			next = len(kept)
		}
		kept = append(kept, k)
	}
	return kept, active, next, ev
}

// retire turns k into a verification-only key and forgets its private part.
func (l lifecycle) retire(k *storage.SigningKey, now time.Time) {
	k.State = storage.KeyRetired
	k.Private = nil
	k.RetiredAt = now
	k.DeleteAt = now.Add(l.retain)
}

// promote activates keys[next] and retires keys[active] (if any).
func (l lifecycle) promote(keys []storage.SigningKey, active, next int, now time.Time, warn bool) []event {
	var ev []event
	if active >= 0 {
		l.retire(&keys[active], now)
		ev = append(ev, event{what: "retired", key: keys[active]})
	}
	keys[next].State = storage.KeyActive
	keys[next].ActivateAt = now
	return append(ev, event{what: "activated", key: keys[next], warn: warn})
}

// addNext appends fresh as the next key, activating at activateAt.
func addNext(keys []storage.SigningKey, fresh storage.SigningKey, now, activateAt time.Time) ([]storage.SigningKey, event) {
	fresh.State = storage.KeyNext
	fresh.CreatedAt = now
	fresh.ActivateAt = activateAt
	return append(keys, fresh), event{what: "created", key: fresh}
}

// advance applies every lifecycle step due at now. It is the updater of Step
// and so of Run.
//
//   - A retired key is deleted once its DeleteAt has passed and, in case
//     the instance that retired it had a shorter TokenLifetime, once this
//     instance's retention window has passed since RetiredAt.
//   - With no active key, the next key is promoted, or else fresh becomes
//     the active key at once (bootstrap: nothing has been signed yet).
//   - The next key is promoted once its ActivateAt has come and it has been
//     published for this instance's pre-publication window (ActivateAt may
//     have been computed by an instance with a shorter one).
//   - Without a next key, one is created when the active key is within the
//     pre-publication window of the end of its period. It activates at that
//     end, or one window from now if that is later.
func (l lifecycle) advance(now time.Time) updater {
	return func(set storage.KeySet, fresh *storage.SigningKey) (storage.KeySet, []event, error) {
		keys, _, _, ev := l.normalize(set, now)

		kept := keys[:0]
		for _, k := range keys {
			if k.State == storage.KeyRetired && !now.Before(k.DeleteAt) && !now.Before(k.RetiredAt.Add(l.retain)) {
				ev = append(ev, event{what: "deleted", key: k})
				continue
			}
			kept = append(kept, k)
		}
		keys = kept
		active, next := indexes(keys)

		switch {
		case active < 0 && next >= 0:
			early := now.Before(keys[next].CreatedAt.Add(l.prePublish))
			ev = append(ev, l.promote(keys, active, next, now, early)...)
			active, next = next, -1
		case active < 0:
			if fresh == nil {
				return set, nil, errNeedKey
			}
			k := *fresh
			k.State = storage.KeyActive
			k.CreatedAt, k.ActivateAt = now, now
			keys = append(keys, k)
			ev = append(ev, event{what: "activated", key: k})
			active, fresh = len(keys)-1, nil
		case next >= 0 && !now.Before(keys[next].ActivateAt) && !now.Before(keys[next].CreatedAt.Add(l.prePublish)):
			ev = append(ev, l.promote(keys, active, next, now, false)...)
			active, next = next, -1
		}

		if next < 0 {
			end := keys[active].ActivateAt.Add(l.rotation)
			if !now.Before(end.Add(-l.prePublish)) {
				if fresh == nil {
					return set, nil, errNeedKey
				}
				var e event
				keys, e = addNext(keys, *fresh, now, later(end, now.Add(l.prePublish)))
				ev = append(ev, e)
			}
		}

		if len(ev) == 0 {
			return set, nil, errAlreadyRotated
		}
		return storage.KeySet{Keys: keys, Version: set.Version}, ev, nil
	}
}

// rotate forces the next lifecycle step (see Manager.Rotate).
func (l lifecycle) rotate(now time.Time, immediate bool) updater {
	return func(set storage.KeySet, fresh *storage.SigningKey) (storage.KeySet, []event, error) {
		keys, active, next, ev := l.normalize(set, now)
		if active < 0 {
			// No key signs (the set was emptied): bootstrap as Step does.
			return l.advance(now)(set, fresh)
		}
		if next < 0 {
			if fresh == nil {
				return set, nil, errNeedKey
			}
			var e event
			keys, e = addNext(keys, *fresh, now, now.Add(l.prePublish))
			ev = append(ev, e)
			next = len(keys) - 1
			if !immediate {
				return storage.KeySet{Keys: keys, Version: set.Version}, ev, nil
			}
		}
		earliest := keys[next].CreatedAt.Add(l.prePublish)
		switch {
		case immediate || !now.Before(earliest):
			ev = append(ev, l.promote(keys, active, next, now, now.Before(earliest))...)
		case keys[next].ActivateAt.After(earliest):
			keys[next].ActivateAt = earliest
			ev = append(ev, event{what: "rescheduled", key: keys[next]})
		}
		if len(ev) == 0 {
			return set, nil, errAlreadyRotated
		}
		return storage.KeySet{Keys: keys, Version: set.Version}, ev, nil
	}
}

// indexes returns the index of the active and of the next key, -1 if absent.
func indexes(keys []storage.SigningKey) (active, next int) {
	active, next = -1, -1
	for i, k := range keys {
		switch k.State {
		case storage.KeyActive:
			active = i
		case storage.KeyNext:
			next = i
		}
	}
	return active, next
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// group is a set of keys with a lifecycle of its own: one active key, at
// most one next key. Without Config.ExtraAlgorithms there is one group
// holding every key; with them, one per extra algorithm and one (the
// primary, first) for Config.Algorithm and any other algorithm.
type group struct {
	alg    string
	member func(storage.SigningKey) bool
}

func (m *Manager) groups() []group {
	extra := m.cfg.ExtraAlgorithms
	gs := []group{{alg: m.cfg.Algorithm, member: func(k storage.SigningKey) bool { return !slices.Contains(extra, k.Algorithm) }}}
	for _, a := range extra {
		gs = append(gs, group{alg: a, member: func(k storage.SigningKey) bool { return k.Algorithm == a }})
	}
	return gs
}

// groupUpdater is an updater over every group: fresh holds a generated
// key per algorithm; need lists the algorithms that still need one.
type groupUpdater func(set storage.KeySet, fresh map[string]*storage.SigningKey) (out storage.KeySet, ev []event, need []string, err error)

// perGroup applies fn to each group's keys on their own. It returns
// errNeedKey when a group needs a key it was not given, and
// errAlreadyRotated when no group changed.
func (m *Manager) perGroup(fn updater) groupUpdater {
	gs := m.groups()
	return func(set storage.KeySet, fresh map[string]*storage.SigningKey) (storage.KeySet, []event, []string, error) {
		var all []storage.SigningKey
		var events []event
		var need []string
		changed := false
		for _, g := range gs {
			sub := storage.KeySet{Version: set.Version}
			for _, k := range set.Keys {
				if g.member(k) {
					sub.Keys = append(sub.Keys, k)
				}
			}
			out, ev, err := fn(sub, fresh[g.alg])
			switch {
			case errors.Is(err, errAlreadyRotated):
				all = append(all, sub.Keys...)
			case errors.Is(err, errNeedKey):
				need = append(need, g.alg)
				all = append(all, sub.Keys...)
			case err != nil:
				return set, nil, nil, err
			default:
				changed = true
				all = append(all, out.Keys...)
				events = append(events, ev...)
			}
		}
		if len(need) > 0 {
			return set, nil, need, errNeedKey
		}
		if !changed {
			return set, nil, nil, errAlreadyRotated
		}
		return storage.KeySet{Keys: all, Version: set.Version}, events, nil, nil
	}
}

// apply runs fn against storage, on each group of keys (see group), with
// the dex pattern: a dry run on the in-memory set decides which keys must
// be generated, the keys are generated before UpdateKeys (never inside
// it), and fn re-checks on the stored set whether its step is still due.
// errAlreadyRotated means another instance got there first and counts as
// success. The caller holds m.mu.
func (m *Manager) apply(ctx context.Context, now time.Time, fn updater) error {
	run := m.perGroup(fn)
	cur := m.snap.Load()
	fresh := map[string]*storage.SigningKey{}
	_, _, need, err := run(cur.set, nil)
	switch {
	case errors.Is(err, errAlreadyRotated):
		return nil // nothing due on what we know; Reload ran just before
	case errors.Is(err, errNeedKey):
		if err := m.generateFor(now, need, fresh); err != nil {
			return err
		}
	case err != nil:
		return err
	}

	for attempt := 0; ; attempt++ {
		var events []event
		set, err := m.store.UpdateKeys(ctx, func(old storage.KeySet) (storage.KeySet, error) {
			out, ev, nd, err := run(old, fresh)
			events, need = ev, nd
			return out, err
		})
		switch {
		case errors.Is(err, errNeedKey) && attempt < 3:
			if err := m.generateFor(now, need, fresh); err != nil {
				return err
			}
			continue
		case errors.Is(err, errAlreadyRotated):
			return m.reloadLocked(ctx)
		case err != nil:
			return fmt.Errorf("keys: update key set: %w", err)
		}
		m.logEvents(ctx, events)
		return m.install(set)
	}
}

// generateFor generates a key for each algorithm in algs into fresh.
func (m *Manager) generateFor(now time.Time, algs []string, fresh map[string]*storage.SigningKey) error {
	for _, a := range algs {
		k, err := m.sealer.newKey(a, now)
		if err != nil {
			return err
		}
		fresh[a] = &k
	}
	return nil
}

func (m *Manager) logEvents(ctx context.Context, events []event) {
	for _, e := range events {
		level, msg := slog.LevelInfo, "keys: signing key "+e.what
		if e.warn {
			level = slog.LevelWarn
		}
		if e.what == "activated" && e.warn {
			msg += " before the pre-publication window ended; verifiers with a cached JWKS may reject its tokens until they refetch"
		}
		// Identifiers and dates only: never the key record, which holds
		// the sealed private key.
		attrs := []any{"kid", e.key.ID, "alg", e.key.Algorithm}
		switch e.key.State {
		case storage.KeyNext, storage.KeyActive:
			attrs = append(attrs, "activate_at", e.key.ActivateAt)
		case storage.KeyRetired:
			attrs = append(attrs, "delete_at", e.key.DeleteAt)
		}
		m.log.Log(ctx, level, msg, attrs...)
		if m.cfg.OnEvent != nil {
			m.cfg.OnEvent(ctx, e.what, e.key.ID, e.key.Algorithm)
		}
	}
}
