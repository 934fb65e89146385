package storagetest

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// zone is a non-UTC zone with a half-hour offset, so that a backend that
// drops or misreads the offset cannot pass by luck.
var zone = time.FixedZone("UTC+05:30", 5*3600+30*60)

// base is a fixed instant with sub-microsecond digits, in zone.
var base = time.Date(2031, time.March, 4, 5, 6, 7, 123456789, zone)

// at returns base plus d.
func at(d time.Duration) time.Time { return base.Add(d) }

func newUser(id, email string) storage.User {
	return storage.User{
		ID:           id,
		Email:        email,
		Name:         "User " + id,
		Roles:        []string{"reader", "writer"},
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		CreatedAt:    at(0),
		UpdatedAt:    at(time.Minute),
	}
}

func newClient(id string) storage.Client {
	return storage.Client{
		ID:                      id,
		SecretHashes:            []string{"$argon2id$new", "$argon2id$old"},
		GrantTypes:              []string{"password", "refresh_token"},
		Scopes:                  []string{"openid", "offline"},
		Introspect:              true,
		Name:                    "Client " + id,
		RedirectURIs:            []string{"https://app.example/cb", "http://127.0.0.1/cb", "com.example.app:/cb"},
		Resources:               []string{"https://api.example/"},
		SkipConsent:             true,
		PostLogoutRedirectURIs:  []string{"https://app.example/bye"},
		BackchannelLogoutURI:    "https://app.example/backchannel",
		SubjectType:             "pairwise",
		ExchangeAudiences:       []string{"https://orders.example/", "billing"},
		SecretExpiresAt:         at(time.Hour),
		TokenEndpointAuthMethod: "private_key_jwt",
		JWKSURI:                 "https://app.example/jwks.json",
		JWKS:                    []byte(`{"keys":[]}`),
		SecretCiphertext:        []byte{1, 2, 3},
		RequireDPoP:             true,
		RegistrationTokenHash:   "rat-hash-" + id,
		CreatedAt:               at(0),
		UpdatedAt:               at(time.Second),
	}
}

func newToken(kind storage.TokenKind, sig, requestID, clientID, subject string) storage.Token {
	return storage.Token{
		Kind:        kind,
		Signature:   sig,
		RequestID:   requestID,
		ClientID:    clientID,
		Subject:     subject,
		Active:      true,
		RequestedAt: at(0),
		ExpiresAt:   at(time.Hour),
		Payload:     []byte(`{"sig":"` + sig + `"}`),
	}
}

// checkTime fails unless got is in UTC and is want to the microsecond.
func checkTime(t *testing.T, field string, got, want time.Time) {
	t.Helper()
	if got.Location() != time.UTC {
		t.Errorf("%s: location %v, want UTC", field, got.Location())
	}
	if d := got.Sub(want); d <= -time.Microsecond || d >= time.Microsecond {
		t.Errorf("%s: got %v, want %v (off by %v)", field, got, want, d)
	}
}

// checkStrings compares string slices, treating nil and empty alike.
func checkStrings(t *testing.T, field string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %q, want %q", field, got, want)
	}
}

func checkBytes(t *testing.T, field string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s: got %x, want %x", field, got, want)
	}
}

func checkUser(t *testing.T, got, want storage.User) {
	t.Helper()
	if got.ID != want.ID || got.Email != want.Email || got.Name != want.Name ||
		got.Disabled != want.Disabled || got.PasswordHash != want.PasswordHash ||
		got.MustChangePassword != want.MustChangePassword {
		t.Errorf("user: got %+v, want %+v", got, want)
	}
	checkStrings(t, "user roles", got.Roles, want.Roles)
	checkTime(t, "user created_at", got.CreatedAt, want.CreatedAt)
	checkTime(t, "user updated_at", got.UpdatedAt, want.UpdatedAt)
}

func checkClient(t *testing.T, got, want storage.Client) {
	t.Helper()
	if got.ID != want.ID || got.Public != want.Public || got.Introspect != want.Introspect || got.Name != want.Name ||
		got.SkipConsent != want.SkipConsent || got.RequirePAR != want.RequirePAR {
		t.Errorf("client: got %+v, want %+v", got, want)
	}
	checkStrings(t, "client redirect URIs", got.RedirectURIs, want.RedirectURIs)
	checkStrings(t, "client post-logout redirect URIs", got.PostLogoutRedirectURIs, want.PostLogoutRedirectURIs)
	if got.SubjectType != want.SubjectType {
		t.Errorf("client subject type = %q, want %q", got.SubjectType, want.SubjectType)
	}
	if got.BackchannelLogoutURI != want.BackchannelLogoutURI {
		t.Errorf("client back-channel logout URI = %q, want %q", got.BackchannelLogoutURI, want.BackchannelLogoutURI)
	}
	checkStrings(t, "client resources", got.Resources, want.Resources)
	checkStrings(t, "client exchange audiences", got.ExchangeAudiences, want.ExchangeAudiences)
	checkTime(t, "client secret_expires_at", got.SecretExpiresAt, want.SecretExpiresAt)
	if got.TokenEndpointAuthMethod != want.TokenEndpointAuthMethod || got.JWKSURI != want.JWKSURI ||
		string(got.JWKS) != string(want.JWKS) || string(got.SecretCiphertext) != string(want.SecretCiphertext) ||
		got.RequireDPoP != want.RequireDPoP {
		t.Errorf("client auth fields: got %q %q %q %v %v, want %q %q %q %v %v",
			got.TokenEndpointAuthMethod, got.JWKSURI, got.JWKS, got.SecretCiphertext, got.RequireDPoP,
			want.TokenEndpointAuthMethod, want.JWKSURI, want.JWKS, want.SecretCiphertext, want.RequireDPoP)
	}
	if got.RegistrationTokenHash != want.RegistrationTokenHash {
		t.Errorf("client registration token hash = %q, want %q", got.RegistrationTokenHash, want.RegistrationTokenHash)
	}
	checkStrings(t, "client secret hashes", got.SecretHashes, want.SecretHashes)
	checkStrings(t, "client grant types", got.GrantTypes, want.GrantTypes)
	checkStrings(t, "client scopes", got.Scopes, want.Scopes)
	checkTime(t, "client created_at", got.CreatedAt, want.CreatedAt)
	checkTime(t, "client updated_at", got.UpdatedAt, want.UpdatedAt)
}

func checkToken(t *testing.T, got, want storage.Token) {
	t.Helper()
	if got.Kind != want.Kind || got.Signature != want.Signature || got.RequestID != want.RequestID ||
		got.ClientID != want.ClientID || got.Subject != want.Subject || got.Active != want.Active {
		t.Errorf("token: got %+v, want %+v", got, want)
	}
	checkTime(t, "token requested_at", got.RequestedAt, want.RequestedAt)
	checkTime(t, "token expires_at", got.ExpiresAt, want.ExpiresAt)
	checkBytes(t, "token payload", got.Payload, want.Payload)
}

func checkKeySet(t *testing.T, got, want storage.KeySet) {
	t.Helper()
	if got.Version != want.Version {
		t.Errorf("key set version: got %d, want %d", got.Version, want.Version)
	}
	if len(got.Keys) != len(want.Keys) {
		t.Fatalf("key set: got %d keys, want %d", len(got.Keys), len(want.Keys))
	}
	for i, g := range got.Keys {
		w := want.Keys[i]
		if g.ID != w.ID || g.Algorithm != w.Algorithm || g.State != w.State {
			t.Errorf("key %d: got %s/%s/%s, want %s/%s/%s", i, g.ID, g.Algorithm, g.State, w.ID, w.Algorithm, w.State)
		}
		checkBytes(t, "key private", g.Private, w.Private)
		checkBytes(t, "key public", g.Public, w.Public)
		checkTime(t, "key created_at", g.CreatedAt, w.CreatedAt)
		checkTime(t, "key activate_at", g.ActivateAt, w.ActivateAt)
		checkTime(t, "key retired_at", g.RetiredAt, w.RetiredAt)
		checkTime(t, "key delete_at", g.DeleteAt, w.DeleteAt)
	}
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

// must fails the test now on a non-nil error.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// tokenExists reports whether the record exists, failing on other errors.
func tokenExists(t *testing.T, s storage.Store, kind storage.TokenKind, sig string) (storage.Token, bool) {
	t.Helper()
	tok, err := s.GetToken(t.Context(), kind, sig)
	if errors.Is(err, storage.ErrNotFound) {
		return tok, false
	}
	must(t, "GetToken "+sig, err)
	return tok, true
}

var errPeek = errors.New("storagetest: peek only")

// peekAttempts reads the counter for key without writing it: the updater
// records what it is given and aborts.
func peekAttempts(t *testing.T, s storage.Store, key string) storage.Attempts {
	t.Helper()
	var got storage.Attempts
	_, err := s.UpdateAttempts(t.Context(), key, func(a storage.Attempts) (storage.Attempts, error) {
		got = a
		return a, errPeek
	})
	if !errors.Is(err, errPeek) {
		t.Fatalf("UpdateAttempts %s: %v", key, err)
	}
	return got
}

// ids returns the ID of every item, in order.
func ids[T any](items []T, id func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = id(it)
	}
	return out
}
