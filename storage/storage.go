// Package storage defines the persistence model of the authorization server:
// plain domain types, the small interfaces each concern needs, and the sentinel
// errors every backend returns.
//
// Implementations live in child packages: storage/memory (tests and
// development) and storage/sql (SQLite and PostgreSQL). The conformance suite in
// storage/storagetest is run by every backend.
//
// The package deliberately knows nothing about fosite or token formats: token
// records carry the columns the database must index and an opaque Payload that
// the authserver package owns.
package storage

import (
	"context"
	"errors"
	"time"
	"unicode/utf8"
)

// Sentinel errors. Backends return them bare or wrapped; callers test them with
// errors.Is.
var (
	// ErrNotFound is returned when the requested record does not exist (or, for
	// compare-and-swap operations, when no record in the expected state exists).
	ErrNotFound = errors.New("storage: not found")
	// ErrAlreadyExists is returned when creating a record whose key is taken.
	ErrAlreadyExists = errors.New("storage: already exists")
	// ErrConflict is returned when a concurrent writer won a race (for example a
	// serialization failure); the caller may retry.
	ErrConflict = errors.New("storage: conflict")
	// ErrInvalidText is returned when a string argument cannot be stored or
	// compared by the backend: it holds a NUL byte or is not valid UTF-8
	// (PostgreSQL's text type refuses both). It comes from the request, not
	// from the backend's health: front ends answer it as a bad request.
	ErrInvalidText = errors.New("storage: text holds a NUL byte or is not valid UTF-8")
)

// Absent reports whether err from a lookup by key means that no such record
// exists: ErrNotFound, or ErrInvalidText (text no backend stores names no
// record).
func Absent(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidText)
}

// User is a resource owner who signs in with the password grant.
type User struct {
	// ID is the stable, opaque identifier used as the token subject.
	ID string
	// Email is unique, compared case-insensitively; stored as given.
	Email string
	Name  string
	Roles []string
	// Disabled users cannot sign in.
	Disabled bool
	// MustChangePassword is set by an administrator's password reset: the
	// user must choose a new password at the next sign-in, and the password
	// grant refuses the user until then.
	MustChangePassword bool
	// PasswordHash is a PHC string (argon2id, or bcrypt when imported).
	PasswordHash string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Client is an OAuth 2.0 client registration.
type Client struct {
	ID string
	// SecretHashes holds the hashes of the accepted secrets, newest first. It
	// holds two entries while a secret rotation is in progress and none for a
	// public client.
	SecretHashes []string
	// Public clients (token_endpoint_auth_method "none") have no secret.
	Public bool
	// GrantTypes the client may use, for example "password", "refresh_token",
	// "client_credentials".
	GrantTypes []string
	// Scopes the client may request.
	Scopes []string
	// Introspect allows the client to call the introspection endpoint.
	Introspect bool
	Name       string
	// RedirectURIs are the registered redirection endpoints of the
	// authorization code flow, matched as exact strings (RFC 9700 §4.1.3;
	// only the port of a loopback URI may differ, RFC 8252 §7.3).
	RedirectURIs []string
	// Resources are the resource indicators (RFC 8707) the client may ask
	// for: the audiences its access tokens may carry besides the default.
	Resources []string
	// SkipConsent marks a first-party client: its users see no consent page.
	SkipConsent bool
	// RequirePAR makes the client send its authorization requests through
	// the pushed authorization request endpoint (RFC 9126 §6).
	RequirePAR bool
	// PostLogoutRedirectURIs are where RP-initiated logout may return the
	// browser (OpenID Connect RP-Initiated Logout 1.0), exact strings.
	PostLogoutRedirectURIs []string
	// BackchannelLogoutURI, when set, receives a logout token whenever a
	// session in which the client got tokens ends (Back-Channel Logout 1.0).
	BackchannelLogoutURI string
	// SubjectType is "pairwise" for per-sector pseudonymous subjects
	// (OpenID Connect Core §8.1); empty or "public" otherwise.
	SubjectType string
	// ExchangeAudiences are the audiences and resources (RFC 8693 §2.1) the
	// client may ask for in a token exchange; none means it may only keep
	// the subject token's audience.
	ExchangeAudiences []string
	// SecretExpiresAt, when set, is when the client's secret stops
	// authenticating it (RFC 7591 client_secret_expires_at).
	SecretExpiresAt time.Time
	// TokenEndpointAuthMethod is how the client authenticates (RFC 7591
	// §2): "client_secret_basic" (empty means this, or "none" for a public
	// client), "client_secret_post", "client_secret_jwt" or
	// "private_key_jwt" (RFC 7523).
	TokenEndpointAuthMethod string
	// JWKSURI is where the client publishes its public keys (private_key_jwt).
	JWKSURI string
	// JWKS is the client's public JWK Set as JSON, when registered by value.
	JWKS []byte
	// SecretCiphertext is the client secret encrypted by the keys package,
	// kept only for client_secret_jwt, whose HMAC needs the secret itself.
	SecretCiphertext []byte
	// RequireDPoP refuses token requests without a DPoP proof (RFC 9449 §5.2,
	// dpop_bound_access_tokens).
	RequireDPoP bool
	// RegistrationTokenHash is the hash of the registration access token
	// (RFC 7592) of a dynamically registered client; empty for clients
	// registered by an operator, which cannot be managed over RFC 7592.
	RegistrationTokenHash string
	CreatedAt             time.Time
	UpdatedAt             time.Time
}

// TokenKind tells access tokens from refresh tokens.
type TokenKind string

// Token kinds. Besides tokens, the short-lived handles of the authorization
// code flow are token records too: each is a bearer value of which only a
// hash is stored, with a subject, a client, an expiry and an opaque payload.
const (
	AccessToken  TokenKind = "access_token"
	RefreshToken TokenKind = "refresh_token"
	// AuthorizeCode is an authorization code (RFC 6749 §4.1.2); it is
	// consumed with DeactivateToken, so that exactly one exchange wins.
	AuthorizeCode TokenKind = "authorize_code"
	// PKCERequest holds the PKCE challenge of an authorization code
	// (RFC 7636), under the code's signature.
	PKCERequest TokenKind = "pkce"
	// PushedRequest is a pushed authorization request (RFC 9126), under its
	// request_uri; it is consumed with DeleteToken.
	PushedRequest TokenKind = "par"
	// AuthorizeRequest is an authorization request waiting for the user to
	// sign in or consent.
	AuthorizeRequest TokenKind = "authorize_request"
	// BrowserSession is a signed-in browser session, under the hash of its
	// cookie; Subject is the user.
	BrowserSession TokenKind = "browser_session"
	// Consent is a user's remembered consent to a client (Subject, ClientID);
	// the payload holds the consented scopes.
	Consent TokenKind = "consent"
	// UsedJTI marks a single-use JWT identifier as seen (client assertions,
	// RFC 7523 §3; DPoP proofs, RFC 9449 §11.1): CreateToken's
	// ErrAlreadyExists, or CreateTokenIfAbsent's false inside a shared
	// transaction, is the replay check, shared by every instance, and
	// the record expires with the JWT. Signature is a purpose prefix and
	// the hash of the jti (authserver useJTI).
	UsedJTI TokenKind = "jti"
	// DeviceCode is a device authorization (RFC 8628 §3.2) under the hash of
	// its device_code: active while pending; the user's decision is recorded
	// with RotateToken (Successor), and DeleteToken consumes it, so that
	// exactly one poll gets the tokens.
	DeviceCode TokenKind = "device_code"
	// UserCode maps the hash of a normalised user_code (RFC 8628 §6.1) to its
	// device code record (RequestID is that record's Signature).
	UserCode TokenKind = "user_code"
	// InitialAccessToken is an initial access token of dynamic client
	// registration (RFC 7591 §3), under the hash of the token; the payload
	// holds its use limit. Each use is a record of the same kind under
	// Signature + "/" + the use's number, so that CreateToken's
	// ErrAlreadyExists keeps the limit across instances.
	InitialAccessToken TokenKind = "initial_access_token"
)

// Token is the stored record of an issued token. The token itself is never
// stored: Signature is the part of it that identifies the record (the HMAC of a
// refresh token, the signature segment of a JWT access token).
type Token struct {
	Kind      TokenKind
	Signature string
	// RequestID groups every token of one grant (the first pair and all pairs
	// obtained by refreshing it).
	RequestID string
	ClientID  string
	// Subject is the user ID, or empty for client_credentials tokens.
	Subject string
	// Active is false for a refresh token that was rotated away.
	Active      bool
	RequestedAt time.Time
	ExpiresAt   time.Time
	// Payload is owned by the caller and round-trips byte for byte.
	Payload []byte
	// RotatedAt and Successor are set by RotateToken, atomically with the
	// deactivation; CreateToken ignores them.
	RotatedAt time.Time
	Successor []byte
	// StatusList and StatusIndex locate an access token's bit in a Token
	// Status List (status.go); StatusList is 0 for none.
	StatusList  int64
	StatusIndex int64
}

// TokenFilter selects tokens for bulk revocation. Empty fields match anything,
// but at least one field must be set.
type TokenFilter struct {
	Subject  string
	ClientID string
	// RequestID selects the records of one grant (Token.RequestID).
	RequestID string
}

// UserQuery selects one page of users for ListUsersPage.
type UserQuery struct {
	// EmailPrefix, when set, keeps the users whose lower-cased email starts
	// with the lower-cased prefix; the page is then ordered by lower-cased
	// email (byte order) instead of by ID.
	EmailPrefix string
	// After is the cursor: the last ID (or, with EmailPrefix, the last
	// lower-cased email) of the previous page; empty for the first page.
	After string
	// Limit is the most users returned; it must be positive.
	Limit int
}

// KeyState is the lifecycle state of a signing key.
type KeyState string

// Key states: next (published, not yet signing) → active (signs) → retired
// (published, verifies only) → deleted.
const (
	KeyNext    KeyState = "next"
	KeyActive  KeyState = "active"
	KeyRetired KeyState = "retired"
)

// SigningKey is one key of the server's key set.
type SigningKey struct {
	ID        string   `json:"id"`
	Algorithm string   `json:"alg"`
	State     KeyState `json:"state"`
	// Private is the private key, encrypted by the keys package; opaque here.
	Private []byte `json:"private"`
	// Public is the public JWK as JSON.
	Public    []byte    `json:"public"`
	CreatedAt time.Time `json:"created_at"`
	// ActivateAt is when a next key becomes (or became) active.
	ActivateAt time.Time `json:"activate_at"`
	// RetiredAt is when the key stopped signing; zero while not retired.
	RetiredAt time.Time `json:"retired_at,omitempty"`
	// DeleteAt is when a retired key may be removed from the set.
	DeleteAt time.Time `json:"delete_at,omitempty"`
}

// KeySet is the whole set of signing keys, read and written as one value.
type KeySet struct {
	Keys []SigningKey `json:"keys"`
	// Version increases with every successful UpdateKeys; backends maintain it.
	Version int64 `json:"version"`
}

// Attempts counts failed authentication attempts for one throttling key (an
// account, a client or an IP address).
type Attempts struct {
	Key      string
	Failures int
	// Last is the time of the last recorded attempt.
	Last time.Time
}

// GCResult reports what GarbageCollect removed.
type GCResult struct {
	Tokens   int64
	Attempts int64
	// Revocations counts revocation feed entries of expired tokens.
	Revocations int64
	// StatusLists counts expired status lists.
	StatusLists int64
	// ClientChanges counts client change feed entries older than
	// ClientChangeRetention.
	ClientChanges int64
}

// Revocation is an entry of the revocation feed: an access token whose record
// was deleted or deactivated before it expired.
type Revocation struct {
	// Seq orders the feed; it increases with every entry but may have gaps,
	// and (on PostgreSQL) an entry may become visible after one with a
	// higher Seq.
	Seq int64
	// Signature is the token record's Signature.
	Signature string
	ExpiresAt time.Time
	// StatusList and StatusIndex are the token record's (0 for none).
	StatusList  int64
	StatusIndex int64
}

// Users stores resource owners.
type Users interface {
	CreateUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, id string) (User, error)
	// GetUserByEmail matches the email case-insensitively.
	GetUserByEmail(ctx context.Context, email string) (User, error)
	// ListUsers returns every user, ordered by ID.
	ListUsers(ctx context.Context) ([]User, error)
	// ListUsersPage returns at most q.Limit users after q.After, in ID
	// order, or in lower-cased email order among those matching
	// q.EmailPrefix; an index answers it without reading the other users.
	ListUsersPage(ctx context.Context, q UserQuery) ([]User, error)
	// UpdateUser applies fn to the stored user atomically. fn may run more than
	// once and must only modify the value it is given. The ID cannot change.
	UpdateUser(ctx context.Context, id string, fn func(User) (User, error)) (User, error)
	// DeleteUser returns ErrNotFound when no user has the ID.
	DeleteUser(ctx context.Context, id string) error
}

// Clients stores client registrations.
type Clients interface {
	CreateClient(ctx context.Context, c Client) error
	GetClient(ctx context.Context, id string) (Client, error)
	// ListClients returns every client, ordered by ID.
	ListClients(ctx context.Context) ([]Client, error)
	// ListClientsPage returns at most limit clients with an ID greater than
	// after, ordered by ID.
	ListClientsPage(ctx context.Context, after string, limit int) ([]Client, error)
	// UpdateClient applies fn atomically; the same rules as UpdateUser apply.
	UpdateClient(ctx context.Context, id string, fn func(Client) (Client, error)) (Client, error)
	// DeleteClient returns ErrNotFound when no client has the ID. It leaves
	// the client's tokens alone; see RevokeTokens.
	DeleteClient(ctx context.Context, id string) error
}

// Tokens stores token records.
type Tokens interface {
	// CreateToken returns ErrAlreadyExists for a duplicate (Kind, Signature).
	CreateToken(ctx context.Context, t Token) error
	// CreateTokenIfAbsent stores t unless a record of its (Kind, Signature)
	// exists, and reports whether it stored it. A taken key is no error, so
	// the caller's transaction stays usable (on PostgreSQL a failed INSERT
	// would abort it): a single-use check can share a transaction with
	// other writes and fail alone. Of concurrent calls with one key, on any
	// instance, exactly one stores it; a call that meets the uncommitted
	// record of another transaction waits for that transaction to end.
	CreateTokenIfAbsent(ctx context.Context, t Token) (bool, error)
	// GetToken returns the record whether active or not.
	GetToken(ctx context.Context, kind TokenKind, signature string) (Token, error)
	// DeleteToken returns ErrNotFound when no record matches.
	DeleteToken(ctx context.Context, kind TokenKind, signature string) error
	// DeactivateToken is a compare-and-swap: it sets Active to false on the
	// record only if it is active, and returns ErrNotFound when no active record
	// matched (it was rotated by a concurrent request, or does not exist).
	DeactivateToken(ctx context.Context, kind TokenKind, signature string) error
	// RotateToken is DeactivateToken that also records, in the same atomic
	// step, when the token was rotated and an opaque successor value (the
	// server stores the encrypted response of the rotation there, so that a
	// retry within a grace window can be answered with the same pair).
	RotateToken(ctx context.Context, kind TokenKind, signature string, at time.Time, successor []byte) error
	// DeactivateTokens sets Active to false on every record of kind in the grant.
	DeactivateTokens(ctx context.Context, kind TokenKind, requestID string) (int64, error)
	// DeleteTokens deletes every record of kind in the grant.
	DeleteTokens(ctx context.Context, kind TokenKind, requestID string) (int64, error)
	// ListTokens returns the records of kind whose subject is subject
	// (active or not, expired ones included until garbage collected),
	// ordered by RequestedAt.
	ListTokens(ctx context.Context, kind TokenKind, subject string) ([]Token, error)
	// RevokeTokens deletes every record matching the filter, of every kind
	// (tokens, codes, browser sessions, consents) but UsedJTI: a deleted
	// single-use record would let its value be used again. It fails,
	// deleting nothing, when the filter is empty.
	RevokeTokens(ctx context.Context, f TokenFilter) (int64, error)
}

// Revocations is the revocation feed. Every backend appends an entry, in the
// same atomic step as the change, whenever an active access token record that
// has not expired is deleted (DeleteToken, DeleteTokens, RevokeTokens) or
// deactivated (DeactivateToken, DeactivateTokens, RotateToken). Instances poll
// the feed to answer revocation from memory.
type Revocations interface {
	// ListRevocations returns at most limit entries with Seq > after, in Seq
	// order, including entries of tokens that have expired but are not yet
	// garbage collected.
	ListRevocations(ctx context.Context, after int64, limit int) ([]Revocation, error)
}

// ClientChange is an entry of the client change feed: a client registration
// that was updated or deleted.
type ClientChange struct {
	// Seq orders the feed, with the same caveats as Revocation.Seq: it
	// increases with every entry but may have gaps, and (on PostgreSQL) an
	// entry may become visible after one with a higher Seq.
	Seq      int64
	ClientID string
	// ChangedAt is when the change was made, by the backend's clock.
	ChangedAt time.Time
}

// ClientChangeRetention is how long GarbageCollect keeps client change feed
// entries. A reader that falls further behind than this may miss changes;
// the server stops trusting its cached registrations long before (see
// authserver.Config.ClientChangeMaxDelay).
const ClientChangeRetention = time.Hour

// ClientChanges is the client change feed. Every backend appends an entry,
// in the same atomic step as the change, whenever a client is updated
// (UpdateClient, even when the updater changes nothing) or deleted
// (DeleteClient). Creating a client appends nothing. Instances poll the feed
// to drop the client registrations they cache.
type ClientChanges interface {
	// ListClientChanges returns at most limit entries with Seq > after, in
	// Seq order.
	ListClientChanges(ctx context.Context, after int64, limit int) ([]ClientChange, error)
}

// Issuer is a trusted issuer of JWT authorization grants (RFC 7523 §2.1),
// registered by an operator: assertions it signs with one of its keys may be
// exchanged for access tokens for the subjects and scopes it is allowed.
type Issuer struct {
	// ID is the issuer identifier, the iss of its assertions.
	ID string
	// JWKSURI is where the issuer publishes its public keys; JWKS is its
	// public JWK Set as JSON, when registered by value. One of them is set.
	JWKSURI string
	JWKS    []byte
	// Subjects are the sub values the issuer may assert (our user IDs or
	// emails); AnySubject allows any of our users instead.
	Subjects   []string
	AnySubject bool
	// Scopes are the scopes a token obtained with its assertions may have.
	Scopes    []string
	CreatedAt time.Time
}

// Issuers stores the trusted issuers of the JWT bearer grant.
type Issuers interface {
	// CreateIssuer returns ErrAlreadyExists when the ID is taken.
	CreateIssuer(ctx context.Context, iss Issuer) error
	GetIssuer(ctx context.Context, id string) (Issuer, error)
	// ListIssuers returns every issuer, ordered by ID.
	ListIssuers(ctx context.Context) ([]Issuer, error)
	// DeleteIssuer returns ErrNotFound when no issuer has the ID.
	DeleteIssuer(ctx context.Context, id string) error
}

// Keys stores the signing key set.
type Keys interface {
	// GetKeys returns the key set; an empty set (Version 0) when none is stored.
	GetKeys(ctx context.Context) (KeySet, error)
	// UpdateKeys applies fn to the stored set atomically, so that of two
	// concurrent updaters (even on two handles of one database) each sees the
	// other's result or fails; none is lost. fn may run more than once and must
	// only modify the value it is given. An error from fn aborts the update and
	// is returned unchanged.
	UpdateKeys(ctx context.Context, fn func(KeySet) (KeySet, error)) (KeySet, error)
}

// Throttle stores failed-attempt counters shared by every instance.
//
// A backend may commit the counters lazily when they are changed outside
// the caller's transaction: a crash of the process loses nothing, but a
// power loss (or a crash of the database server) may forget the changes
// made since the last durable commit (at worst a few attempts are not
// counted, or a released reservation still counts as a failure).
type Throttle interface {
	// UpdateAttempts applies fn to the counter for key atomically (a missing
	// counter is passed as Attempts{Key: key}); parallel callers are serialised
	// so none of their increments is lost. fn may run more than once.
	UpdateAttempts(ctx context.Context, key string, fn func(Attempts) (Attempts, error)) (Attempts, error)
	// DeleteAttempts removes the counter for key; a missing counter is not an
	// error.
	DeleteAttempts(ctx context.Context, key string) error
}

// Transactor runs several operations atomically. BeginTx returns a context
// that carries the transaction; every operation called with that context (or
// one derived from it) takes part in it until CommitTx or RollbackTx. Nested
// BeginTx calls on a context that already carries a transaction fail.
type Transactor interface {
	BeginTx(ctx context.Context) (context.Context, error)
	CommitTx(ctx context.Context) error
	RollbackTx(ctx context.Context) error
}

// LazyTransactor is a Transactor that can also begin a transaction whose
// commit need not be durable when CommitTx returns: a crash of the process
// never loses it, but a power loss (or a crash of the database server) may,
// until the next durable commit. Meant for counters whose loss costs little
// (Throttle); storage/sql implements it.
type LazyTransactor interface {
	Transactor
	BeginLazyTx(ctx context.Context) (context.Context, error)
}

// BeginLazyTx begins a lazy transaction on t when it is a LazyTransactor,
// else an ordinary one.
func BeginLazyTx(ctx context.Context, t Transactor) (context.Context, error) {
	if lt, ok := t.(LazyTransactor); ok {
		return lt.BeginLazyTx(ctx)
	}
	return t.BeginTx(ctx)
}

// Store is everything a backend provides.
type Store interface {
	Users
	Clients
	Issuers
	Tokens
	Revocations
	ClientChanges
	StatusLists
	Keys
	Throttle
	Transactor
	// GarbageCollect deletes token records (and revocation feed entries and
	// status lists) that expired before now, client change feed entries
	// older than ClientChangeRetention before now, and attempt counters last
	// touched before now minus attemptsTTL. It works in bounded
	// batches and is safe to run from several instances at once.
	GarbageCollect(ctx context.Context, now time.Time, attemptsTTL time.Duration) (GCResult, error)
	// Ping reports whether the backend is reachable and its schema is current.
	Ping(ctx context.Context) error
	Close() error
}

// PrefixEnd returns the least string greater than every string that starts
// with prefix, in byte order (which for valid UTF-8 is code point order), so
// that "s >= prefix AND s < PrefixEnd(prefix)" selects the strings with the
// prefix as an index range. It is empty when no such bound exists (an empty
// prefix, or one of only U+10FFFF). prefix must be valid UTF-8.
func PrefixEnd(prefix string) string {
	rs := []rune(prefix)
	for i := len(rs) - 1; i >= 0; i-- {
		switch r := rs[i]; {
		case r >= utf8.MaxRune:
			continue
		case r == 0xD7FF:
			rs[i] = 0xE000 // skip the surrogates, which UTF-8 cannot hold
		default:
			rs[i] = r + 1
		}
		return string(rs[:i+1])
	}
	return ""
}
