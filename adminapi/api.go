package adminapi

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/oauthkit/authserver/authserver"
	"github.com/oauthkit/authserver/internal/allow"
	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/keys"
	"github.com/oauthkit/authserver/resource"
	"github.com/oauthkit/authserver/storage"
)

// OpenAPI is the OpenAPI 3.1 document of the API, served as is at
// /admin/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Scope is the scope an access token needs to use the API.
const Scope = "admin"

// Prefix is the path prefix of the API's resources.
const Prefix = "/admin/v1"

// Page sizes of the lists.
const (
	defaultLimit = 50
	maxLimit     = 500
)

// maxBody bounds request bodies.
const maxBody = 64 << 10

// Config configures the API. Store, Keys and Server are required.
type Config struct {
	Store storage.Store
	Keys  *keys.Manager
	// Server verifies the bearer tokens (see authserver.AdminAuthenticator).
	Server *authserver.Server
	// Audit receives an admin_change event for every change; nil writes
	// them to Logger.
	Audit *authserver.AuditLog
	// Ring, if set, serves GET /admin/v1/audit: it must be fed the same
	// audit lines (see AuditRing).
	Ring *AuditRing
	// InsecureSkipAuth serves the API without authentication. It MUST NOT be
	// used except on a loopback address for development
	// (--admin-insecure-loopback); New logs a warning.
	InsecureSkipAuth bool
	// ClientCertificates authenticates a request by its TLS client
	// certificate instead of a bearer token when the connection carries a
	// verified one: the listener's tls.Config must verify client
	// certificates against the operators' CA (ClientCAs with
	// VerifyClientCertIfGiven, as --admin-client-ca sets up). The
	// certificate's subject is the actor in the audit log.
	ClientCertificates bool
	// PasswordParams hash new passwords; default password.DefaultParams.
	PasswordParams password.Params
	Logger         *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// API is the admin REST API. Create it with New; serve Handler.
type API struct {
	cfg     Config
	auth    *resource.Authenticator
	log     *slog.Logger
	console *console
}

// New builds the API.
func New(ctx context.Context, cfg Config) (*API, error) {
	if cfg.Store == nil || cfg.Keys == nil || cfg.Server == nil {
		return nil, errors.New("adminapi: Store, Keys and Server are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PasswordParams == (password.Params{}) {
		cfg.PasswordParams = password.DefaultParams
	}
	a := &API{cfg: cfg, log: cfg.Logger}
	if cfg.InsecureSkipAuth {
		a.log.Warn("the admin API accepts unauthenticated requests (--admin-insecure-loopback); MUST NOT be used outside development")
		return a, nil
	}
	auth, err := cfg.Server.AdminAuthenticator(ctx, func(w http.ResponseWriter, r *http.Request, e *resource.Error) {
		writeProblem(w, r, e.Status, e.Description)
	})
	if err != nil {
		return nil, err
	}
	a.auth = auth
	return a, nil
}

// Handler serves the API under /admin/v1 and the OpenAPI document at
// /admin/openapi.json. Every route is listed here.
func (a *API) Handler() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/admin/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(OpenAPI)
	}).Methods(http.MethodGet, http.MethodHead)
	h := func(path string, fn func(http.ResponseWriter, *http.Request) error, methods ...string) {
		r.Handle(Prefix+path, a.protect(fn)).Methods(methods...)
	}
	h("/clients", a.listClients, http.MethodGet)
	h("/clients", a.createClient, http.MethodPost)
	h("/clients/{id}", a.getClient, http.MethodGet)
	h("/clients/{id}", a.putClient, http.MethodPut)
	h("/clients/{id}", a.deleteClient, http.MethodDelete)
	h("/clients/{id}/secret", a.rotateSecret, http.MethodPost)
	h("/users", a.listUsers, http.MethodGet)
	h("/users", a.createUser, http.MethodPost)
	h("/users/{id}", a.getUser, http.MethodGet)
	h("/users/{id}", a.putUser, http.MethodPut)
	h("/users/{id}", a.deleteUser, http.MethodDelete)
	h("/users/{id}/password", a.setPassword, http.MethodPost)
	h("/users/{id}/disable", a.disableUser, http.MethodPost)
	h("/users/{id}/enable", a.enableUser, http.MethodPost)
	h("/users/{id}/consents", a.listConsents, http.MethodGet)
	h("/users/{id}/consents", a.revokeConsents, http.MethodDelete)
	h("/users/{id}/sessions", a.listSessions, http.MethodGet)
	h("/users/{id}/sessions", a.revokeSessions, http.MethodDelete)
	h("/users/{id}/sessions/{sid}", a.endSession, http.MethodDelete)
	h("/keys", a.listKeys, http.MethodGet)
	h("/keys/rotate", a.rotateKeys, http.MethodPost)
	h("/tokens/revoke", a.revokeTokens, http.MethodPost)
	h("/audit", a.listAudit, http.MethodGet)
	if a.console != nil {
		a.console.routes(r)
	}
	notFound := a.protect(func(_ http.ResponseWriter, _ *http.Request) error {
		return problem(http.StatusNotFound, "no such resource")
	})
	notAllowed := a.protect(func(w http.ResponseWriter, req *http.Request) error {
		if methods := allow.Methods(r, req); methods != "" {
			w.Header().Set("Allow", methods)
		}
		return problem(http.StatusMethodNotAllowed, "method not allowed on this resource")
	})
	r.NotFoundHandler, r.MethodNotAllowedHandler = notFound, notAllowed
	return r
}

// actorKey carries who makes the request.
type actorKey struct{}

// actor is who made a request, for the audit log: a client (and a user,
// for a user's token), or an operator's client certificate.
type actor struct{ clientID, subject, certSubject string }

// clientCert returns the subject of the request's verified TLS client
// certificate, when client certificates authenticate.
func (a *API) clientCert(r *http.Request) (string, bool) {
	if !a.cfg.ClientCertificates || r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return "", false
	}
	return r.TLS.VerifiedChains[0][0].Subject.String(), true
}

func contextWithActor(ctx context.Context, act actor) context.Context {
	return context.WithValue(ctx, actorKey{}, act)
}

// verify checks an access token as the API's middleware does.
func (a *API) verify(ctx context.Context, raw string) (*resource.Claims, error) {
	if a.auth == nil {
		auth, err := a.cfg.Server.AdminAuthenticator(ctx, nil)
		if err != nil {
			return nil, err
		}
		return auth.Verify(ctx, raw)
	}
	return a.auth.Verify(ctx, raw)
}

func claimsSub(c *resource.Claims) string {
	if c == nil {
		return ""
	}
	return c.Subject
}

// protect authenticates the request (a token with the admin scope), runs fn
// and turns its error into a problem.
func (a *API) protect(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		act := actor{clientID: "insecure-loopback"}
		if subj, ok := a.clientCert(r); ok {
			act = actor{certSubject: subj}
		} else if c, ok := resource.FromContext(r.Context()); ok {
			act = actor{clientID: c.ClientID, subject: c.Subject}
		}
		r = r.WithContext(contextWithActor(r.Context(), act))
		if err := fn(w, r); err != nil {
			a.fail(w, r, err)
		}
	})
	if a.auth == nil {
		return inner
	}
	bearer := a.auth.RequireAnyScope(Scope)(inner)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := a.clientCert(r); ok {
			inner.ServeHTTP(w, r) // mutual TLS: the certificate is the credential
			return
		}
		bearer.ServeHTTP(w, r)
	})
}

// fail writes err as a problem; unexpected errors are logged and become a
// generic 500 (or 503 when the store is unreachable).
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		writeProblem(w, r, ae.status, ae.detail)
	case errors.Is(err, storage.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, "no such resource")
	case errors.Is(err, storage.ErrAlreadyExists):
		writeProblem(w, r, http.StatusConflict, "the resource already exists")
	case errors.Is(err, storage.ErrConflict):
		writeProblem(w, r, http.StatusConflict, "a concurrent change won; retry")
	case errors.Is(err, storage.ErrInvalidText):
		writeProblem(w, r, http.StatusBadRequest, "a value holds a NUL byte or is not valid UTF-8")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeProblem(w, r, http.StatusServiceUnavailable, "the request was cancelled or timed out")
	default:
		a.log.ErrorContext(r.Context(), "admin API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeProblem(w, r, http.StatusInternalServerError, "internal error")
	}
}

// audit records one change with who made it. attrs never hold secrets.
func (a *API) audit(r *http.Request, command, target string, err error, attrs ...slog.Attr) {
	act, _ := r.Context().Value(actorKey{}).(actor)
	result := "ok"
	if err != nil {
		result = "error"
	}
	all := []slog.Attr{slog.String("command", command), slog.String("target", target), slog.String("result", result)}
	if act.certSubject != "" {
		all = append(all, slog.String("actor_cert_subject", act.certSubject))
	} else {
		all = append(all, slog.String("actor_client_id", act.clientID))
	}
	if act.subject != "" && act.subject != act.clientID {
		all = append(all, slog.String("actor_sub", act.subject))
	}
	all = append(all, slog.String("via", "admin_api"))
	all = append(all, attrs...)
	if a.cfg.Audit != nil {
		a.cfg.Audit.Log(r.Context(), "admin_change", all...)
		return
	}
	a.log.LogAttrs(r.Context(), slog.LevelInfo, "audit", append([]slog.Attr{slog.String("event", "admin_change")}, all...)...)
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body into v: application/json, at most maxBody bytes,
// no unknown fields, one value.
func decode(r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return problem(http.StatusUnsupportedMediaType, "the body must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return problem(http.StatusRequestEntityTooLarge, fmt.Sprintf("the body exceeds %d bytes", maxBody))
		}
		return problem(http.StatusBadRequest, "malformed JSON body: "+jsonProblem(err))
	}
	if dec.More() {
		return problem(http.StatusBadRequest, "malformed JSON body: more than one value")
	}
	return nil
}

// jsonProblem describes a decoding error without echoing the input.
func jsonProblem(err error) string {
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ute):
		return fmt.Sprintf("field %q has the wrong type", ute.Field)
	case errors.As(err, &se):
		return "syntax error at offset " + strconv.FormatInt(se.Offset, 10)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ")
	default:
		return "cannot be decoded"
	}
}

// etagOf is a strong validator of a representation: the hash of its JSON
// and of the record's last change.
func etagOf(v any, updated time.Time) string {
	b, _ := json.Marshal(v)
	h := sha256.New()
	h.Write(b)
	h.Write([]byte(updated.UTC().Format(time.RFC3339Nano)))
	return `"` + hex.EncodeToString(h.Sum(nil)[:12]) + `"`
}

// checkIfMatch compares the request's If-Match with the current ETag: a
// missing header matches (unconditional write), "*" matches any existing
// representation.
func checkIfMatch(r *http.Request, current string) error {
	im := r.Header.Get("If-Match")
	if im == "" {
		return nil
	}
	for _, t := range strings.Split(im, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || t == current {
			return nil
		}
	}
	return problem(http.StatusPreconditionFailed, "the resource changed since it was read (If-Match does not match its ETag)")
}

// page reads limit and cursor. The cursor is the opaque form of the last ID
// of the previous page.
func page(r *http.Request) (limit int, after string, err error) {
	q := r.URL.Query()
	limit = defaultLimit
	if s := q.Get("limit"); s != "" {
		n, perr := strconv.Atoi(s)
		if perr != nil || n < 1 || n > maxLimit {
			return 0, "", problem(http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d", maxLimit))
		}
		limit = n
	}
	if c := q.Get("cursor"); c != "" {
		b, derr := base64.RawURLEncoding.DecodeString(c)
		if derr != nil || len(b) == 0 {
			return 0, "", problem(http.StatusBadRequest, "invalid cursor")
		}
		after = string(b)
	}
	return limit, after, nil
}

// List is one page of a list; NextCursor is empty on the last page.
type List[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// paginate returns the page of items (sorted by id) after the cursor.
func paginate[S, T any](items []S, id func(S) string, view func(S) T, limit int, after string) List[T] {
	start := 0
	if after != "" {
		start, _ = slices.BinarySearchFunc(items, after, func(s S, a string) int { return strings.Compare(id(s), a) })
		if start < len(items) && id(items[start]) == after {
			start++
		}
	}
	end := min(start+limit, len(items))
	out := List[T]{Items: make([]T, 0, end-start)}
	for _, it := range items[start:end] {
		out.Items = append(out.Items, view(it))
	}
	if end < len(items) && end > start {
		out.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(id(items[end-1])))
	}
	return out
}

// nz turns a nil slice into an empty one, for JSON arrays.
func nz[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
