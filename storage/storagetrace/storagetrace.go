// Package storagetrace decorates a storage.Store with OpenTelemetry spans:
// one span per call, named "storage.<Method>", a child of the caller's span.
// It records the method and whether it failed, never the arguments (token
// signatures, emails and payloads stay out of traces).
//
// cmd/authserver wraps the store with it when tracing is on; with tracing off
// the store is used undecorated.
package storagetrace

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/oauthkit/authserver/internal/tracing"
	"github.com/oauthkit/authserver/storage"
)

// Wrap returns st with a span around every call, from tp's tracer.
func Wrap(st storage.Store, tp trace.TracerProvider) storage.Store {
	return &store{s: st, t: tp.Tracer(tracing.ScopeName)}
}

type store struct {
	s storage.Store
	t trace.Tracer
}

var _ storage.Store = (*store)(nil)

func (w *store) start(ctx context.Context, method string) (context.Context, trace.Span) {
	return w.t.Start(ctx, "storage."+method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.operation.name", method)))
}

// ListRevocations implements storage.Revocations.
func (w *store) ListRevocations(ctx context.Context, after int64, limit int) ([]storage.Revocation, error) {
	ctx, sp := w.start(ctx, "ListRevocations")
	rs, err := w.s.ListRevocations(ctx, after, limit)
	tracing.End(sp, err)
	return rs, err
}

// ListClientChanges implements storage.ClientChanges.
func (w *store) ListClientChanges(ctx context.Context, after int64, limit int) ([]storage.ClientChange, error) {
	ctx, sp := w.start(ctx, "ListClientChanges")
	cs, err := w.s.ListClientChanges(ctx, after, limit)
	tracing.End(sp, err)
	return cs, err
}

// CreateUser implements storage.Users.
func (w *store) CreateUser(ctx context.Context, u storage.User) error {
	ctx, sp := w.start(ctx, "CreateUser")
	err := w.s.CreateUser(ctx, u)
	tracing.End(sp, err)
	return err
}

// GetUser implements storage.Users.
func (w *store) GetUser(ctx context.Context, id string) (storage.User, error) {
	ctx, sp := w.start(ctx, "GetUser")
	u, err := w.s.GetUser(ctx, id)
	tracing.End(sp, err)
	return u, err
}

// GetUserByEmail implements storage.Users.
func (w *store) GetUserByEmail(ctx context.Context, email string) (storage.User, error) {
	ctx, sp := w.start(ctx, "GetUserByEmail")
	u, err := w.s.GetUserByEmail(ctx, email)
	tracing.End(sp, err)
	return u, err
}

// ListUsers implements storage.Users.
func (w *store) ListUsers(ctx context.Context) ([]storage.User, error) {
	ctx, sp := w.start(ctx, "ListUsers")
	us, err := w.s.ListUsers(ctx)
	tracing.End(sp, err)
	return us, err
}

// ListUsersPage implements storage.Users.
func (w *store) ListUsersPage(ctx context.Context, q storage.UserQuery) ([]storage.User, error) {
	ctx, sp := w.start(ctx, "ListUsersPage")
	us, err := w.s.ListUsersPage(ctx, q)
	tracing.End(sp, err)
	return us, err
}

// ListClientsPage implements storage.Clients.
func (w *store) ListClientsPage(ctx context.Context, after string, limit int) ([]storage.Client, error) {
	ctx, sp := w.start(ctx, "ListClientsPage")
	cs, err := w.s.ListClientsPage(ctx, after, limit)
	tracing.End(sp, err)
	return cs, err
}

// ListTokens implements storage.Tokens.
func (w *store) ListTokens(ctx context.Context, kind storage.TokenKind, subject string) ([]storage.Token, error) {
	ctx, sp := w.start(ctx, "ListTokens")
	ts, err := w.s.ListTokens(ctx, kind, subject)
	tracing.End(sp, err)
	return ts, err
}

// UpdateUser implements storage.Users.
func (w *store) UpdateUser(ctx context.Context, id string, fn func(storage.User) (storage.User, error)) (storage.User, error) {
	ctx, sp := w.start(ctx, "UpdateUser")
	u, err := w.s.UpdateUser(ctx, id, fn)
	tracing.End(sp, err)
	return u, err
}

// DeleteUser implements storage.Users.
func (w *store) DeleteUser(ctx context.Context, id string) error {
	ctx, sp := w.start(ctx, "DeleteUser")
	err := w.s.DeleteUser(ctx, id)
	tracing.End(sp, err)
	return err
}

// CreateClient implements storage.Clients.
func (w *store) CreateClient(ctx context.Context, c storage.Client) error {
	ctx, sp := w.start(ctx, "CreateClient")
	err := w.s.CreateClient(ctx, c)
	tracing.End(sp, err)
	return err
}

// GetClient implements storage.Clients.
func (w *store) GetClient(ctx context.Context, id string) (storage.Client, error) {
	ctx, sp := w.start(ctx, "GetClient")
	c, err := w.s.GetClient(ctx, id)
	tracing.End(sp, err)
	return c, err
}

// ListClients implements storage.Clients.
func (w *store) ListClients(ctx context.Context) ([]storage.Client, error) {
	ctx, sp := w.start(ctx, "ListClients")
	cs, err := w.s.ListClients(ctx)
	tracing.End(sp, err)
	return cs, err
}

// UpdateClient implements storage.Clients.
func (w *store) UpdateClient(ctx context.Context, id string, fn func(storage.Client) (storage.Client, error)) (storage.Client, error) {
	ctx, sp := w.start(ctx, "UpdateClient")
	c, err := w.s.UpdateClient(ctx, id, fn)
	tracing.End(sp, err)
	return c, err
}

// DeleteClient implements storage.Clients.
func (w *store) DeleteClient(ctx context.Context, id string) error {
	ctx, sp := w.start(ctx, "DeleteClient")
	err := w.s.DeleteClient(ctx, id)
	tracing.End(sp, err)
	return err
}

// CreateIssuer implements storage.Issuers.
func (w *store) CreateIssuer(ctx context.Context, iss storage.Issuer) error {
	ctx, sp := w.start(ctx, "CreateIssuer")
	err := w.s.CreateIssuer(ctx, iss)
	tracing.End(sp, err)
	return err
}

// GetIssuer implements storage.Issuers.
func (w *store) GetIssuer(ctx context.Context, id string) (storage.Issuer, error) {
	ctx, sp := w.start(ctx, "GetIssuer")
	iss, err := w.s.GetIssuer(ctx, id)
	tracing.End(sp, err)
	return iss, err
}

// ListIssuers implements storage.Issuers.
func (w *store) ListIssuers(ctx context.Context) ([]storage.Issuer, error) {
	ctx, sp := w.start(ctx, "ListIssuers")
	out, err := w.s.ListIssuers(ctx)
	tracing.End(sp, err)
	return out, err
}

// DeleteIssuer implements storage.Issuers.
func (w *store) DeleteIssuer(ctx context.Context, id string) error {
	ctx, sp := w.start(ctx, "DeleteIssuer")
	err := w.s.DeleteIssuer(ctx, id)
	tracing.End(sp, err)
	return err
}

// CreateToken implements storage.Tokens.
func (w *store) CreateToken(ctx context.Context, t storage.Token) error {
	ctx, sp := w.start(ctx, "CreateToken")
	err := w.s.CreateToken(ctx, t)
	tracing.End(sp, err)
	return err
}

// CreateTokenIfAbsent implements storage.Tokens.
func (w *store) CreateTokenIfAbsent(ctx context.Context, t storage.Token) (bool, error) {
	ctx, sp := w.start(ctx, "CreateTokenIfAbsent")
	created, err := w.s.CreateTokenIfAbsent(ctx, t)
	tracing.End(sp, err)
	return created, err
}

// GetToken implements storage.Tokens.
func (w *store) GetToken(ctx context.Context, kind storage.TokenKind, signature string) (storage.Token, error) {
	ctx, sp := w.start(ctx, "GetToken")
	t, err := w.s.GetToken(ctx, kind, signature)
	tracing.End(sp, err)
	return t, err
}

// DeleteToken implements storage.Tokens.
func (w *store) DeleteToken(ctx context.Context, kind storage.TokenKind, signature string) error {
	ctx, sp := w.start(ctx, "DeleteToken")
	err := w.s.DeleteToken(ctx, kind, signature)
	tracing.End(sp, err)
	return err
}

// DeactivateToken implements storage.Tokens.
func (w *store) DeactivateToken(ctx context.Context, kind storage.TokenKind, signature string) error {
	ctx, sp := w.start(ctx, "DeactivateToken")
	err := w.s.DeactivateToken(ctx, kind, signature)
	tracing.End(sp, err)
	return err
}

// RotateToken implements storage.Tokens.
func (w *store) RotateToken(ctx context.Context, kind storage.TokenKind, signature string, at time.Time, successor []byte) error {
	ctx, sp := w.start(ctx, "RotateToken")
	err := w.s.RotateToken(ctx, kind, signature, at, successor)
	tracing.End(sp, err)
	return err
}

// DeactivateTokens implements storage.Tokens.
func (w *store) DeactivateTokens(ctx context.Context, kind storage.TokenKind, requestID string) (int64, error) {
	ctx, sp := w.start(ctx, "DeactivateTokens")
	n, err := w.s.DeactivateTokens(ctx, kind, requestID)
	tracing.End(sp, err)
	return n, err
}

// DeleteTokens implements storage.Tokens.
func (w *store) DeleteTokens(ctx context.Context, kind storage.TokenKind, requestID string) (int64, error) {
	ctx, sp := w.start(ctx, "DeleteTokens")
	n, err := w.s.DeleteTokens(ctx, kind, requestID)
	tracing.End(sp, err)
	return n, err
}

// RevokeTokens implements storage.Tokens.
func (w *store) RevokeTokens(ctx context.Context, f storage.TokenFilter) (int64, error) {
	ctx, sp := w.start(ctx, "RevokeTokens")
	n, err := w.s.RevokeTokens(ctx, f)
	tracing.End(sp, err)
	return n, err
}

// GetKeys implements storage.Keys.
func (w *store) GetKeys(ctx context.Context) (storage.KeySet, error) {
	ctx, sp := w.start(ctx, "GetKeys")
	ks, err := w.s.GetKeys(ctx)
	tracing.End(sp, err)
	return ks, err
}

// UpdateKeys implements storage.Keys.
func (w *store) UpdateKeys(ctx context.Context, fn func(storage.KeySet) (storage.KeySet, error)) (storage.KeySet, error) {
	ctx, sp := w.start(ctx, "UpdateKeys")
	ks, err := w.s.UpdateKeys(ctx, fn)
	tracing.End(sp, err)
	return ks, err
}

// UpdateAttempts implements storage.Throttle.
func (w *store) UpdateAttempts(ctx context.Context, key string, fn func(storage.Attempts) (storage.Attempts, error)) (storage.Attempts, error) {
	ctx, sp := w.start(ctx, "UpdateAttempts")
	a, err := w.s.UpdateAttempts(ctx, key, fn)
	tracing.End(sp, err)
	return a, err
}

// DeleteAttempts implements storage.Throttle.
func (w *store) DeleteAttempts(ctx context.Context, key string) error {
	ctx, sp := w.start(ctx, "DeleteAttempts")
	err := w.s.DeleteAttempts(ctx, key)
	tracing.End(sp, err)
	return err
}

// BeginTx implements storage.Transactor. The span covers starting the
// transaction only: the returned context carries the transaction but not
// this span, so later calls are children of the caller's span.
func (w *store) BeginTx(ctx context.Context) (context.Context, error) {
	_, sp := w.start(ctx, "BeginTx")
	txCtx, err := w.s.BeginTx(ctx)
	tracing.End(sp, err)
	return txCtx, err
}

// BeginLazyTx implements storage.LazyTransactor through the wrapped store
// (storage.BeginLazyTx: an ordinary transaction when it has no lazy ones).
func (w *store) BeginLazyTx(ctx context.Context) (context.Context, error) {
	_, sp := w.start(ctx, "BeginLazyTx")
	txCtx, err := storage.BeginLazyTx(ctx, w.s)
	tracing.End(sp, err)
	return txCtx, err
}

// CommitTx implements storage.Transactor.
func (w *store) CommitTx(ctx context.Context) error {
	_, sp := w.start(ctx, "CommitTx")
	err := w.s.CommitTx(ctx)
	tracing.End(sp, err)
	return err
}

// RollbackTx implements storage.Transactor.
func (w *store) RollbackTx(ctx context.Context) error {
	_, sp := w.start(ctx, "RollbackTx")
	err := w.s.RollbackTx(ctx)
	tracing.End(sp, err)
	return err
}

// GarbageCollect implements storage.Store.
func (w *store) GarbageCollect(ctx context.Context, now time.Time, attemptsTTL time.Duration) (storage.GCResult, error) {
	ctx, sp := w.start(ctx, "GarbageCollect")
	r, err := w.s.GarbageCollect(ctx, now, attemptsTTL)
	tracing.End(sp, err)
	return r, err
}

// Ping implements storage.Store.
func (w *store) Ping(ctx context.Context) error {
	ctx, sp := w.start(ctx, "Ping")
	err := w.s.Ping(ctx)
	tracing.End(sp, err)
	return err
}

// Close implements storage.Store.
func (w *store) Close() error { return w.s.Close() }

// AllocateStatusBlock implements storage.StatusLists.
func (w *store) AllocateStatusBlock(ctx context.Context, size, count int64, now, expiresAt time.Time) (storage.StatusBlock, error) {
	ctx, sp := w.start(ctx, "AllocateStatusBlock")
	b, err := w.s.AllocateStatusBlock(ctx, size, count, now, expiresAt)
	tracing.End(sp, err)
	return b, err
}

// GetStatusList implements storage.StatusLists.
func (w *store) GetStatusList(ctx context.Context, id int64) (storage.StatusList, error) {
	ctx, sp := w.start(ctx, "GetStatusList")
	l, err := w.s.GetStatusList(ctx, id)
	tracing.End(sp, err)
	return l, err
}

// ListStatusLists implements storage.StatusLists.
func (w *store) ListStatusLists(ctx context.Context, now time.Time) ([]storage.StatusList, error) {
	ctx, sp := w.start(ctx, "ListStatusLists")
	ls, err := w.s.ListStatusLists(ctx, now)
	tracing.End(sp, err)
	return ls, err
}
