package memory

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/oauthkit/authserver/storage"
)

var (
	errNoTx     = errors.New("memory: no transaction in context")
	errNestedTx = errors.New("memory: context already carries a transaction")
	errTxDone   = errors.New("memory: transaction already committed or rolled back")
)

type tokenKey struct {
	kind storage.TokenKind
	sig  string
}

// data is one version of the whole store. Stored values are never modified in
// place (every write replaces the map entry with a fresh copy), so a shallow
// copy of the maps is an independent snapshot.
type data struct {
	users    map[string]storage.User
	emails   map[string]string // lower-cased email → user ID
	clients  map[string]storage.Client
	issuers  map[string]storage.Issuer
	tokens   map[tokenKey]storage.Token
	keys     storage.KeySet
	attempts map[string]storage.Attempts
	// revocations is the revocation feed; revSeq is the last Seq given out.
	revocations []storage.Revocation
	revSeq      int64
	// clientChanges is the client change feed (clientfeed.go);
	// clientChangeSeq is the last Seq given out.
	clientChanges   []storage.ClientChange
	clientChangeSeq int64
}

func newData() *data {
	return &data{
		users:    map[string]storage.User{},
		emails:   map[string]string{},
		clients:  map[string]storage.Client{},
		issuers:  map[string]storage.Issuer{},
		tokens:   map[tokenKey]storage.Token{},
		attempts: map[string]storage.Attempts{},
	}
}

func (d *data) clone() *data {
	return &data{
		users:    maps.Clone(d.users),
		emails:   maps.Clone(d.emails),
		clients:  maps.Clone(d.clients),
		issuers:  maps.Clone(d.issuers),
		tokens:   maps.Clone(d.tokens),
		keys:     d.keys, // replaced wholesale by UpdateKeys, never modified in place
		attempts: maps.Clone(d.attempts),
		// Clipped, so that an append in the copy never writes into the
		// array the original still reads.
		revocations:     slices.Clip(d.revocations),
		revSeq:          d.revSeq,
		clientChanges:   slices.Clip(d.clientChanges),
		clientChangeSeq: d.clientChangeSeq,
	}
}

// revoked appends a feed entry when t is a live access token: one that is
// active and has not expired (by the wall clock, as the SQL triggers judge).
func (d *data) revoked(t storage.Token) {
	if t.Kind != storage.AccessToken || !t.Active || !t.ExpiresAt.After(time.Now()) {
		return
	}
	d.revSeq++
	d.revocations = append(d.revocations, storage.Revocation{Seq: d.revSeq, Signature: t.Signature, ExpiresAt: t.ExpiresAt,
		StatusList: t.StatusList, StatusIndex: t.StatusIndex})
}

// Store is an in-memory storage.Store. Create it with New; the zero value is
// not usable.
type Store struct {
	// writer holds one element while a writer (a transaction or a single
	// write outside one) runs, so writers are serialised.
	writer chan struct{}
	// mu guards committed against readers while the writer changes it.
	mu        sync.RWMutex
	committed *data
	// status holds the status lists (status.go); allocation is never part
	// of a transaction.
	status statusLists
}

var _ storage.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{writer: make(chan struct{}, 1), committed: newData()}
}

// tx is the state of one transaction: a private copy of the data.
type tx struct {
	mu   sync.Mutex
	d    *data
	done bool
	stop func() bool // stops the rollback-on-cancel hook
}

// txKey is the context key of a transaction; it includes the store so that a
// transaction is only seen by the Store that began it.
type txKey struct{ s *Store }

func (s *Store) txFrom(ctx context.Context) *tx {
	t, _ := ctx.Value(txKey{s}).(*tx)
	return t
}

func (s *Store) lockWriter(ctx context.Context) error {
	select {
	case s.writer <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("memory: waiting for the writer lock: %w", ctx.Err())
	}
}

func (s *Store) unlockWriter() { <-s.writer }

// BeginTx starts a transaction. It waits until no other writer runs, and
// holds off other writers until CommitTx or RollbackTx. The transaction is
// rolled back if ctx is cancelled first, as database/sql does.
func (s *Store) BeginTx(ctx context.Context) (context.Context, error) {
	if s.txFrom(ctx) != nil {
		return ctx, errNestedTx
	}
	if err := s.lockWriter(ctx); err != nil {
		return ctx, err
	}
	s.mu.RLock()
	t := &tx{d: s.committed.clone()}
	s.mu.RUnlock()
	t.stop = context.AfterFunc(ctx, func() { _ = s.finish(t, false) })
	return context.WithValue(ctx, txKey{s}, t), nil
}

// CommitTx publishes the transaction's changes.
func (s *Store) CommitTx(ctx context.Context) error { return s.end(ctx, true) }

// RollbackTx discards the transaction's changes.
func (s *Store) RollbackTx(ctx context.Context) error { return s.end(ctx, false) }

func (s *Store) end(ctx context.Context, commit bool) error {
	t := s.txFrom(ctx)
	if t == nil {
		return errNoTx
	}
	t.stop()
	return s.finish(t, commit)
}

func (s *Store) finish(t *tx, commit bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return errTxDone
	}
	t.done = true
	if commit {
		s.mu.Lock()
		s.committed = t.d
		s.mu.Unlock()
	}
	t.d = nil
	s.unlockWriter()
	return nil
}

// view runs fn on the data ctx sees: the transaction's copy, or the committed
// data under a read lock. fn must not modify d.
func (s *Store) view(ctx context.Context, fn func(d *data) error) error {
	if t := s.txFrom(ctx); t != nil {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.done {
			return errTxDone
		}
		return fn(t.d)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return fn(s.committed)
}

// writer is the access a write operation gets from exclusive: read and write
// take the locks needed for each step, so that an updater function can run
// between them with no lock held (and may itself read the store).
type writer struct {
	s *Store
	t *tx // nil outside a transaction
}

func (w writer) read(fn func(d *data) error) error {
	if w.t != nil {
		w.t.mu.Lock()
		defer w.t.mu.Unlock()
		if w.t.done {
			return errTxDone
		}
		return fn(w.t.d)
	}
	// The writer lock is held, so nobody changes committed meanwhile.
	return fn(w.s.committed)
}

// write runs fn with exclusive access to the data. fn must check everything
// before changing anything, so that an error leaves the data unchanged.
func (w writer) write(fn func(d *data) error) error {
	if w.t != nil {
		return w.read(fn)
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return fn(w.s.committed)
}

// exclusive runs fn as the only writer: inside the transaction ctx carries,
// or holding the writer lock.
func (s *Store) exclusive(ctx context.Context, fn func(w writer) error) error {
	if t := s.txFrom(ctx); t != nil {
		return fn(writer{s: s, t: t})
	}
	if err := s.lockWriter(ctx); err != nil {
		return err
	}
	defer s.unlockWriter()
	return fn(writer{s: s})
}

// write is exclusive for operations without an updater function.
func (s *Store) write(ctx context.Context, fn func(d *data) error) error {
	return s.exclusive(ctx, func(w writer) error { return w.write(fn) })
}

func notFound(what, id string) error {
	return fmt.Errorf("memory: %s %q: %w", what, id, storage.ErrNotFound)
}

func exists(what, id string) error {
	return fmt.Errorf("memory: %s %q: %w", what, id, storage.ErrAlreadyExists)
}

func emailKey(email string) string { return strings.ToLower(email) }

func cloneUser(u storage.User) storage.User {
	u.Roles = slices.Clone(u.Roles)
	u.CreatedAt = u.CreatedAt.UTC()
	u.UpdatedAt = u.UpdatedAt.UTC()
	return u
}

func cloneClient(c storage.Client) storage.Client {
	c.SecretHashes = slices.Clone(c.SecretHashes)
	c.GrantTypes = slices.Clone(c.GrantTypes)
	c.Scopes = slices.Clone(c.Scopes)
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.PostLogoutRedirectURIs = slices.Clone(c.PostLogoutRedirectURIs)
	c.Resources = slices.Clone(c.Resources)
	c.ExchangeAudiences = slices.Clone(c.ExchangeAudiences)
	c.JWKS, c.SecretCiphertext = slices.Clone(c.JWKS), slices.Clone(c.SecretCiphertext)
	c.SecretExpiresAt = c.SecretExpiresAt.UTC()
	c.CreatedAt = c.CreatedAt.UTC()
	c.UpdatedAt = c.UpdatedAt.UTC()
	return c
}

func cloneToken(t storage.Token) storage.Token {
	t.Payload = bytes.Clone(t.Payload)
	t.Successor = bytes.Clone(t.Successor)
	t.RotatedAt = t.RotatedAt.UTC()
	t.RequestedAt = t.RequestedAt.UTC()
	t.ExpiresAt = t.ExpiresAt.UTC()
	return t
}

func cloneKeySet(ks storage.KeySet) storage.KeySet {
	if len(ks.Keys) == 0 {
		ks.Keys = nil
		return ks
	}
	keys := make([]storage.SigningKey, len(ks.Keys))
	for i, k := range ks.Keys {
		k.Private = bytes.Clone(k.Private)
		k.Public = bytes.Clone(k.Public)
		k.CreatedAt = k.CreatedAt.UTC()
		k.ActivateAt = k.ActivateAt.UTC()
		k.RetiredAt = k.RetiredAt.UTC()
		k.DeleteAt = k.DeleteAt.UTC()
		keys[i] = k
	}
	ks.Keys = keys
	return ks
}

// CreateUser stores a new user.
func (s *Store) CreateUser(ctx context.Context, u storage.User) error {
	u = cloneUser(u)
	return s.write(ctx, func(d *data) error {
		if _, ok := d.users[u.ID]; ok {
			return exists("user", u.ID)
		}
		if _, ok := d.emails[emailKey(u.Email)]; ok {
			return exists("user email", u.Email)
		}
		d.users[u.ID] = u
		d.emails[emailKey(u.Email)] = u.ID
		return nil
	})
}

// GetUser returns the user with the given ID.
func (s *Store) GetUser(ctx context.Context, id string) (storage.User, error) {
	var u storage.User
	err := s.view(ctx, func(d *data) error {
		var ok bool
		if u, ok = d.users[id]; !ok {
			return notFound("user", id)
		}
		return nil
	})
	return cloneUser(u), err
}

// GetUserByEmail returns the user whose email matches case-insensitively.
func (s *Store) GetUserByEmail(ctx context.Context, email string) (storage.User, error) {
	var u storage.User
	err := s.view(ctx, func(d *data) error {
		id, ok := d.emails[emailKey(email)]
		if !ok {
			return notFound("user email", email)
		}
		u = d.users[id]
		return nil
	})
	return cloneUser(u), err
}

// ListUsers returns every user, ordered by ID.
func (s *Store) ListUsers(ctx context.Context) ([]storage.User, error) {
	var out []storage.User
	err := s.view(ctx, func(d *data) error {
		for _, u := range d.users {
			out = append(out, cloneUser(u))
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// ListUsersPage returns one page of users (see storage.Users). The memory
// store has no index: it sorts the matching users for every page.
func (s *Store) ListUsersPage(ctx context.Context, q storage.UserQuery) ([]storage.User, error) {
	if q.Limit <= 0 {
		return nil, errors.New("memory: list users: limit must be positive")
	}
	prefix := emailKey(q.EmailPrefix)
	key := func(u storage.User) string {
		if prefix != "" {
			return emailKey(u.Email)
		}
		return u.ID
	}
	var out []storage.User
	err := s.view(ctx, func(d *data) error {
		for _, u := range d.users {
			if strings.HasPrefix(emailKey(u.Email), prefix) && key(u) > q.After {
				out = append(out, u)
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return key(out[i]) < key(out[j]) })
	out = out[:min(len(out), q.Limit)]
	for i := range out {
		out[i] = cloneUser(out[i])
	}
	return out, err
}

// UpdateUser applies fn to the stored user atomically. fn runs once, with no
// lock held; it must not write to the store.
func (s *Store) UpdateUser(ctx context.Context, id string, fn func(storage.User) (storage.User, error)) (storage.User, error) {
	var next storage.User
	err := s.exclusive(ctx, func(w writer) error {
		var cur storage.User
		if err := w.read(func(d *data) error {
			var ok bool
			if cur, ok = d.users[id]; !ok {
				return notFound("user", id)
			}
			return nil
		}); err != nil {
			return err
		}
		var err error
		if next, err = fn(cloneUser(cur)); err != nil {
			return err
		}
		if next.ID != id {
			return fmt.Errorf("memory: update user %q: the ID cannot change (got %q)", id, next.ID)
		}
		next = cloneUser(next)
		return w.write(func(d *data) error {
			if owner, ok := d.emails[emailKey(next.Email)]; ok && owner != id {
				return exists("user email", next.Email)
			}
			delete(d.emails, emailKey(cur.Email))
			d.emails[emailKey(next.Email)] = id
			d.users[id] = next
			return nil
		})
	})
	if err != nil {
		return storage.User{}, err
	}
	return cloneUser(next), nil
}

// DeleteUser deletes the user, or returns ErrNotFound.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return s.write(ctx, func(d *data) error {
		u, ok := d.users[id]
		if !ok {
			return notFound("user", id)
		}
		delete(d.users, id)
		delete(d.emails, emailKey(u.Email))
		return nil
	})
}

// CreateClient stores a new client.
func (s *Store) CreateClient(ctx context.Context, c storage.Client) error {
	c = cloneClient(c)
	return s.write(ctx, func(d *data) error {
		if _, ok := d.clients[c.ID]; ok {
			return exists("client", c.ID)
		}
		d.clients[c.ID] = c
		return nil
	})
}

// GetClient returns the client with the given ID.
func (s *Store) GetClient(ctx context.Context, id string) (storage.Client, error) {
	var c storage.Client
	err := s.view(ctx, func(d *data) error {
		var ok bool
		if c, ok = d.clients[id]; !ok {
			return notFound("client", id)
		}
		return nil
	})
	return cloneClient(c), err
}

// ListClients returns every client, ordered by ID.
func (s *Store) ListClients(ctx context.Context) ([]storage.Client, error) {
	var out []storage.Client
	err := s.view(ctx, func(d *data) error {
		for _, c := range d.clients {
			out = append(out, cloneClient(c))
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// ListClientsPage returns at most limit clients with an ID after after.
func (s *Store) ListClientsPage(ctx context.Context, after string, limit int) ([]storage.Client, error) {
	if limit <= 0 {
		return nil, errors.New("memory: list clients: limit must be positive")
	}
	var out []storage.Client
	err := s.view(ctx, func(d *data) error {
		for _, c := range d.clients {
			if c.ID > after {
				out = append(out, c)
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	out = out[:min(len(out), limit)]
	for i := range out {
		out[i] = cloneClient(out[i])
	}
	return out, err
}

// UpdateClient applies fn to the stored client atomically. fn runs once, with
// no lock held; it must not write to the store.
func (s *Store) UpdateClient(ctx context.Context, id string, fn func(storage.Client) (storage.Client, error)) (storage.Client, error) {
	var next storage.Client
	err := s.exclusive(ctx, func(w writer) error {
		var cur storage.Client
		if err := w.read(func(d *data) error {
			var ok bool
			if cur, ok = d.clients[id]; !ok {
				return notFound("client", id)
			}
			return nil
		}); err != nil {
			return err
		}
		var err error
		if next, err = fn(cloneClient(cur)); err != nil {
			return err
		}
		if next.ID != id {
			return fmt.Errorf("memory: update client %q: the ID cannot change (got %q)", id, next.ID)
		}
		next = cloneClient(next)
		return w.write(func(d *data) error {
			d.clients[id] = next
			d.clientChanged(id)
			return nil
		})
	})
	if err != nil {
		return storage.Client{}, err
	}
	return cloneClient(next), nil
}

// DeleteClient deletes the client, or returns ErrNotFound. Its tokens are
// left alone; use RevokeTokens.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.write(ctx, func(d *data) error {
		if _, ok := d.clients[id]; !ok {
			return notFound("client", id)
		}
		delete(d.clients, id)
		d.clientChanged(id)
		return nil
	})
}

func cloneIssuer(i storage.Issuer) storage.Issuer {
	i.JWKS = slices.Clone(i.JWKS)
	i.Subjects = slices.Clone(i.Subjects)
	i.Scopes = slices.Clone(i.Scopes)
	return i
}

// CreateIssuer stores a trusted issuer.
func (s *Store) CreateIssuer(ctx context.Context, iss storage.Issuer) error {
	iss = cloneIssuer(iss)
	return s.write(ctx, func(d *data) error {
		if _, ok := d.issuers[iss.ID]; ok {
			return exists("issuer", iss.ID)
		}
		d.issuers[iss.ID] = iss
		return nil
	})
}

// GetIssuer returns the trusted issuer with the given ID.
func (s *Store) GetIssuer(ctx context.Context, id string) (storage.Issuer, error) {
	var iss storage.Issuer
	err := s.view(ctx, func(d *data) error {
		var ok bool
		if iss, ok = d.issuers[id]; !ok {
			return notFound("issuer", id)
		}
		return nil
	})
	return cloneIssuer(iss), err
}

// ListIssuers returns every trusted issuer, ordered by ID.
func (s *Store) ListIssuers(ctx context.Context) ([]storage.Issuer, error) {
	var out []storage.Issuer
	err := s.view(ctx, func(d *data) error {
		for _, i := range d.issuers {
			out = append(out, cloneIssuer(i))
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// DeleteIssuer deletes a trusted issuer.
func (s *Store) DeleteIssuer(ctx context.Context, id string) error {
	return s.write(ctx, func(d *data) error {
		if _, ok := d.issuers[id]; !ok {
			return notFound("issuer", id)
		}
		delete(d.issuers, id)
		return nil
	})
}

// CreateToken stores a new token record.
func (s *Store) CreateToken(ctx context.Context, t storage.Token) error {
	t = cloneToken(t)
	return s.write(ctx, func(d *data) error {
		k := tokenKey{t.Kind, t.Signature}
		if _, ok := d.tokens[k]; ok {
			return exists(string(t.Kind), t.Signature)
		}
		d.tokens[k] = t
		return nil
	})
}

// CreateTokenIfAbsent stores the record unless its key is taken, and
// reports whether it did.
func (s *Store) CreateTokenIfAbsent(ctx context.Context, t storage.Token) (bool, error) {
	t = cloneToken(t)
	var created bool
	err := s.write(ctx, func(d *data) error {
		k := tokenKey{t.Kind, t.Signature}
		if _, ok := d.tokens[k]; !ok {
			d.tokens[k] = t
			created = true
		}
		return nil
	})
	return created, err
}

// GetToken returns the record, active or not.
func (s *Store) GetToken(ctx context.Context, kind storage.TokenKind, signature string) (storage.Token, error) {
	var t storage.Token
	err := s.view(ctx, func(d *data) error {
		var ok bool
		if t, ok = d.tokens[tokenKey{kind, signature}]; !ok {
			return notFound(string(kind), signature)
		}
		return nil
	})
	return cloneToken(t), err
}

// DeleteToken deletes the record, or returns ErrNotFound.
func (s *Store) DeleteToken(ctx context.Context, kind storage.TokenKind, signature string) error {
	return s.write(ctx, func(d *data) error {
		k := tokenKey{kind, signature}
		t, ok := d.tokens[k]
		if !ok {
			return notFound(string(kind), signature)
		}
		delete(d.tokens, k)
		d.revoked(t)
		return nil
	})
}

// DeactivateToken sets Active to false if the record is active, and returns
// ErrNotFound otherwise.
func (s *Store) DeactivateToken(ctx context.Context, kind storage.TokenKind, signature string) error {
	return s.RotateToken(ctx, kind, signature, time.Time{}, nil)
}

// RotateToken is DeactivateToken that also records the rotation time and
// successor.
func (s *Store) RotateToken(ctx context.Context, kind storage.TokenKind, signature string, at time.Time, successor []byte) error {
	return s.write(ctx, func(d *data) error {
		k := tokenKey{kind, signature}
		t, ok := d.tokens[k]
		if !ok || !t.Active {
			return notFound("active "+string(kind), signature)
		}
		d.revoked(t)
		t.Active = false
		t.RotatedAt = at.UTC()
		t.Successor = bytes.Clone(successor)
		d.tokens[k] = t
		return nil
	})
}

// DeactivateTokens deactivates every active record of kind in the grant and
// returns how many it changed.
func (s *Store) DeactivateTokens(ctx context.Context, kind storage.TokenKind, requestID string) (int64, error) {
	var n int64
	err := s.write(ctx, func(d *data) error {
		for k, t := range d.tokens {
			if k.kind == kind && t.RequestID == requestID && t.Active {
				d.revoked(t)
				t.Active = false
				d.tokens[k] = t
				n++
			}
		}
		return nil
	})
	return n, err
}

// DeleteTokens deletes every record of kind in the grant and returns how many.
func (s *Store) DeleteTokens(ctx context.Context, kind storage.TokenKind, requestID string) (int64, error) {
	return s.deleteTokensWhere(ctx, func(k tokenKey, t storage.Token) bool {
		return k.kind == kind && t.RequestID == requestID
	})
}

// RevokeTokens deletes every record matching f; f must set at least one field.
func (s *Store) RevokeTokens(ctx context.Context, f storage.TokenFilter) (int64, error) {
	if f == (storage.TokenFilter{}) {
		return 0, errors.New("memory: revoke tokens: empty filter")
	}
	return s.deleteTokensWhere(ctx, func(k tokenKey, t storage.Token) bool {
		return k.kind != storage.UsedJTI && (f.Subject == "" || t.Subject == f.Subject) && (f.ClientID == "" || t.ClientID == f.ClientID) &&
			(f.RequestID == "" || t.RequestID == f.RequestID)
	})
}

// ListTokens returns the records of kind with the subject, by RequestedAt.
func (s *Store) ListTokens(ctx context.Context, kind storage.TokenKind, subject string) ([]storage.Token, error) {
	var out []storage.Token
	err := s.view(ctx, func(d *data) error {
		for k, t := range d.tokens {
			if k.kind == kind && t.Subject == subject {
				out = append(out, cloneToken(t))
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if !out[i].RequestedAt.Equal(out[j].RequestedAt) {
			return out[i].RequestedAt.Before(out[j].RequestedAt)
		}
		return out[i].Signature < out[j].Signature
	})
	return out, err
}

func (s *Store) deleteTokensWhere(ctx context.Context, match func(tokenKey, storage.Token) bool) (int64, error) {
	var n int64
	err := s.write(ctx, func(d *data) error {
		for k, t := range d.tokens {
			if match(k, t) {
				delete(d.tokens, k)
				d.revoked(t)
				n++
			}
		}
		return nil
	})
	return n, err
}

// ListRevocations returns at most limit feed entries with Seq > after.
func (s *Store) ListRevocations(ctx context.Context, after int64, limit int) ([]storage.Revocation, error) {
	var out []storage.Revocation
	err := s.view(ctx, func(d *data) error {
		out = pageAfter(d.revocations, after, limit, func(r storage.Revocation) int64 { return r.Seq })
		return nil
	})
	return out, err
}

// pageAfter returns a copy of at most limit entries of feed (sorted by
// sequence number) with a number above after.
func pageAfter[E any](feed []E, after int64, limit int, seq func(E) int64) []E {
	i, _ := slices.BinarySearchFunc(feed, after+1, func(e E, n int64) int { return cmp.Compare(seq(e), n) })
	return slices.Clone(feed[i:min(len(feed), i+max(limit, 0))])
}

// GetKeys returns the key set.
func (s *Store) GetKeys(ctx context.Context) (storage.KeySet, error) {
	var ks storage.KeySet
	err := s.view(ctx, func(d *data) error {
		ks = d.keys
		return nil
	})
	return cloneKeySet(ks), err
}

// UpdateKeys applies fn to the key set atomically and increments its version.
// An error from fn is returned unchanged.
func (s *Store) UpdateKeys(ctx context.Context, fn func(storage.KeySet) (storage.KeySet, error)) (storage.KeySet, error) {
	var next storage.KeySet
	err := s.exclusive(ctx, func(w writer) error {
		var cur storage.KeySet
		_ = w.read(func(d *data) error {
			cur = d.keys
			return nil
		})
		var err error
		if next, err = fn(cloneKeySet(cur)); err != nil {
			return err
		}
		next = cloneKeySet(next)
		next.Version = cur.Version + 1
		return w.write(func(d *data) error {
			d.keys = next
			return nil
		})
	})
	if err != nil {
		return storage.KeySet{}, err
	}
	return cloneKeySet(next), nil
}

// UpdateAttempts applies fn to the counter for key atomically.
func (s *Store) UpdateAttempts(ctx context.Context, key string, fn func(storage.Attempts) (storage.Attempts, error)) (storage.Attempts, error) {
	var next storage.Attempts
	err := s.exclusive(ctx, func(w writer) error {
		cur := storage.Attempts{Key: key}
		_ = w.read(func(d *data) error {
			if a, ok := d.attempts[key]; ok {
				cur = a
			}
			return nil
		})
		var err error
		if next, err = fn(cur); err != nil {
			return err
		}
		next.Key = key
		next.Last = next.Last.UTC()
		return w.write(func(d *data) error {
			d.attempts[key] = next
			return nil
		})
	})
	if err != nil {
		return storage.Attempts{}, err
	}
	return next, nil
}

// DeleteAttempts removes the counter for key; a missing counter is not an
// error.
func (s *Store) DeleteAttempts(ctx context.Context, key string) error {
	return s.write(ctx, func(d *data) error {
		delete(d.attempts, key)
		return nil
	})
}

// GarbageCollect deletes tokens that expired before now and counters last
// touched before now minus attemptsTTL.
func (s *Store) GarbageCollect(ctx context.Context, now time.Time, attemptsTTL time.Duration) (storage.GCResult, error) {
	var res storage.GCResult
	cutoff := now.Add(-attemptsTTL)
	err := s.write(ctx, func(d *data) error {
		for k, t := range d.tokens {
			if t.ExpiresAt.Before(now) {
				delete(d.tokens, k)
				res.Tokens++
			}
		}
		kept := d.revocations[:0:0]
		for _, r := range d.revocations {
			if r.ExpiresAt.Before(now) {
				res.Revocations++
			} else {
				kept = append(kept, r)
			}
		}
		d.revocations = kept
		res.ClientChanges = d.gcClientChanges(now)
		for k, a := range d.attempts {
			if a.Last.Before(cutoff) {
				delete(d.attempts, k)
				res.Attempts++
			}
		}
		return nil
	})
	if err == nil {
		res.StatusLists = s.status.gc(now)
	}
	return res, err
}

// Ping always succeeds.
func (s *Store) Ping(context.Context) error { return nil }

// Close does nothing; the store stays usable.
func (s *Store) Close() error { return nil }
