package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/oauthkit/authserver/adminapi"
)

// auditRingSize is how many recent audit events GET /admin/v1/audit serves.
const auditRingSize = 1000

// newAdminAPI builds the admin API of the --admin-addr listener.
func newAdminAPI(ctx context.Context, a *app, c *serveConfig, log *slog.Logger) (http.Handler, error) {
	api, err := adminapi.New(ctx, adminapi.Config{
		Store:            a.store,
		Keys:             a.keys,
		Server:           a.srv,
		Audit:            c.audit,
		Ring:             c.auditRing,
		InsecureSkipAuth: c.adminInsecure,
		PasswordParams:   c.argon2,
		Logger:           log,
	})
	if err != nil {
		return nil, err
	}
	return api.Handler(), nil
}
