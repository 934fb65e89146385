package authserver

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/internal/demoapi"
	"github.com/oauthkit/authserver/keys"
	"github.com/oauthkit/authserver/resource"
	"github.com/oauthkit/authserver/storage"
)

// WithDemoAPI mounts the seed demo's API (/api/me, /api/protected,
// /api/admin/users) in-process, protected by the resource package exactly as
// a separate API would be, with one addition: a token revoked here is
// refused at once, because the API checks the token's record as
// introspection does (one indexed lookup, no HTTP round trip).
func WithDemoAPI() Option {
	return func(s *Server) { s.demoAPI = true }
}

// mountDemoAPI builds the in-process API; called by New.
func (s *Server) mountDemoAPI() error {
	auth, err := resource.New(context.Background(), resource.Config{
		Issuer:   s.cfg.Issuer,
		Audience: s.cfg.Audience,
		KeySet:   managerKeySet{s.keys},
		Now:      s.cfg.Now,
		Logger:   s.log,
		Realm:    "api",
	}, resource.WithTokenCheck(s.checkTokenRecord))
	if err != nil {
		return fmt.Errorf("authserver: demo API: %w", err)
	}
	s.extra = append(s.extra, route{"/api/", demoapi.Handler(auth, userDirectory{s.store})})
	return nil
}

// errRevoked is returned for a verified access token without a live record.
var errRevoked = errors.New("authserver: access token revoked")

// checkTokenRecord refuses a verified access token whose record is gone
// (revoked, or its grant was refreshed or revoked).
func (s *Server) checkTokenRecord(ctx context.Context, raw string, _ *resource.Claims) error {
	_, err := s.liveAccessRecord(ctx, jwtSignature(raw))
	if errors.Is(err, storage.ErrNotFound) {
		return errRevoked
	}
	if err != nil {
		// A database outage is 503, not a verdict on the token.
		return fmt.Errorf("%w: %w", resource.ErrUnavailable, err)
	}
	return nil
}

// managerKeySet serves the key manager's published keys to the resource
// package without an HTTP round trip.
type managerKeySet struct{ km *keys.Manager }

// Key implements resource.KeySet.
func (m managerKeySet) Key(_ context.Context, kid string) (*jose.JSONWebKey, error) {
	k, ok := m.km.PublicKey(kid)
	if !ok {
		return nil, fmt.Errorf("%w: %q", resource.ErrUnknownKey, kid)
	}
	return k, nil
}

// userDirectory lists users for the demo's admin endpoint.
type userDirectory struct{ store storage.Users }

// ListUsers implements demoapi.Directory.
func (d userDirectory) ListUsers(ctx context.Context) ([]demoapi.UserInfo, error) {
	us, err := d.store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]demoapi.UserInfo, 0, len(us))
	for _, u := range us {
		roles := u.Roles
		if roles == nil {
			roles = []string{}
		}
		out = append(out, demoapi.UserInfo{ID: u.ID, Name: u.Name, Email: u.Email, Roles: roles})
	}
	return out, nil
}
