package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

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
//
// Its resource identifier is the audience (RFC 9728 §2, RFC 8707): by default
// {issuer}/api, the API's own base URL on this origin. Its protected resource
// metadata is then served here, at the well-known URL RFC 9728 §3.1 derives
// from that identifier ({issuer}/.well-known/oauth-protected-resource/api),
// and its challenges name that URL. When the audience names an API on
// another origin, that API serves the metadata of that identifier; the
// in-process API then names none in its challenges rather than a URL this
// server does not answer.
func (s *Server) mountDemoAPI() error {
	rc := resource.Config{
		Issuer:   s.cfg.Issuer,
		Audience: s.cfg.Audience,
		KeySet:   managerKeySet{s.keys},
		Now:      s.cfg.Now,
		Logger:   s.log,
		Realm:    "api",
		DPoP:     s.demoAPIDPoP(),
		// The token check reads the token's record, which is stricter
		// than the status list and immediate: no list fetches in process.
		StatusList: resource.StatusListConfig{SkipStatusCheck: true},
	}
	metaPath := s.localMetadataPath(s.cfg.Audience)
	if metaPath != "" {
		rc.ResourceMetadataURL, _ = resource.MetadataURL(s.cfg.Audience) // checked by localMetadataPath
	}
	auth, err := resource.New(context.Background(), rc, resource.WithTokenCheck(s.checkTokenRecord))
	if err != nil {
		return fmt.Errorf("authserver: demo API: %w", err)
	}
	s.extra = append(s.extra, route{pattern: "/api/", h: demoapi.Handler(auth, userDirectory{s.store})})
	if metaPath != "" {
		md := auth.Metadata()
		md.ResourceName = "Demo API"
		s.extra = append(s.extra, route{pattern: metaPath, h: resource.MetadataHandler(md), exact: true})
	}
	return nil
}

// localMetadataPath returns the path at which this server answers for the
// RFC 9728 metadata of the resource identifier id, or "" when that URL is on
// another origin (or id is not a URL).
func (s *Server) localMetadataPath(id string) string {
	mu, err := resource.MetadataURL(id)
	if err != nil {
		return ""
	}
	m, err1 := url.Parse(mu)
	is, err2 := url.Parse(s.cfg.Issuer)
	if err1 != nil || err2 != nil || !strings.EqualFold(m.Scheme, is.Scheme) || !strings.EqualFold(m.Host, is.Host) {
		return ""
	}
	return m.Path
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
