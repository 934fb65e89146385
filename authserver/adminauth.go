package authserver

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oauthkit/authserver/resource"
)

// AdminAuthenticator returns a resource.Authenticator for the admin API: it
// verifies this server's access tokens exactly as the in-process demo API
// does (the resource package's JWT rules, with the issuer's own keys and no
// HTTP round trip) and refuses a revoked token at once by checking its
// record, as introspection does. onError writes refusals (see
// resource.Config.ErrorHandler); nil keeps the default JSON body.
func (s *Server) AdminAuthenticator(ctx context.Context, onError func(http.ResponseWriter, *http.Request, *resource.Error)) (*resource.Authenticator, error) {
	a, err := resource.New(ctx, resource.Config{
		Issuer:       s.cfg.Issuer,
		Audience:     s.cfg.Audience,
		KeySet:       managerKeySet{s.keys},
		Now:          s.cfg.Now,
		Logger:       s.log,
		Realm:        "admin",
		ErrorHandler: onError,
	}, resource.WithTokenCheck(s.checkTokenRecord))
	if err != nil {
		return nil, fmt.Errorf("authserver: admin authenticator: %w", err)
	}
	return a, nil
}

// Gatherer returns the server's metrics registry, for in-process readers
// such as the admin console's charts.
func (s *Server) Gatherer() prometheus.Gatherer { return s.metrics.reg }
