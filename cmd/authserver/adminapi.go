package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/oauthkit/authserver/adminapi"
	"github.com/oauthkit/authserver/authserver"
	"github.com/oauthkit/authserver/storage"
)

// auditRingSize is how many recent audit events GET /admin/v1/audit serves.
const auditRingSize = 1000

// consoleClientID is the client the admin console signs in with.
const consoleClientID = "admin-console"

// newAdminAPI builds the admin API and console of the --admin-addr listener.
// The console's metrics sampler runs until ctx is done.
func newAdminAPI(ctx context.Context, a *app, c *serveConfig, log *slog.Logger) (http.Handler, error) {
	api, err := adminapi.New(ctx, adminapi.Config{
		Store:            a.store,
		Keys:             a.keys,
		Server:           a.srv,
		Audit:            c.audit,
		Ring:             c.auditRing,
		InsecureSkipAuth: c.adminInsecure,
		// With --admin-client-ca the listener verifies client certificates.
		ClientCertificates: c.adminClientCA != "",
		PasswordParams:     c.argon2,
		Logger:             log,
	})
	if err != nil {
		return nil, err
	}
	redirect := c.adminScheme() + "://" + c.adminAddr + "/admin/ui/callback"
	if err := authserver.ValidateRedirectURI(redirect); err != nil {
		log.Warn("admin console off: its callback on --admin-addr is not a valid redirect URI (use a loopback or named --admin-addr)", "err", err)
		return api.Handler(), nil
	}
	if err := ensureConsoleClient(ctx, a.store, redirect); err != nil {
		return nil, err
	}
	m := adminapi.NewMetricsRing(a.srv.Gatherer())
	go m.Run(ctx.Done())
	api.WithConsole(adminapi.ConsoleConfig{Issuer: c.issuer, ClientID: consoleClientID, RedirectURI: redirect,
		TokenEndpoint: a.srv.Handler(), Metrics: m})
	log.Info("admin console", "url", c.adminScheme()+"://"+c.adminAddr+"/admin/ui/")
	return api.Handler(), nil
}

// ensureConsoleClient registers the console's client, or adds the callback
// to its redirect URIs.
func ensureConsoleClient(ctx context.Context, st storage.Clients, redirect string) error {
	_, err := st.UpdateClient(ctx, consoleClientID, func(cl storage.Client) (storage.Client, error) {
		if !slices.Contains(cl.RedirectURIs, redirect) {
			cl.RedirectURIs = append(cl.RedirectURIs, redirect)
			cl.UpdatedAt = time.Now().UTC()
		}
		return cl, nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		err = st.CreateClient(ctx, adminapi.ConsoleClient(consoleClientID, redirect, time.Now().UTC()))
	}
	if err != nil {
		return fmt.Errorf("register the admin console's client: %w", err)
	}
	return nil
}
