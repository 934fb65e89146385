package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"golang.org/x/oauth2"
)

// runDevice signs in with the device authorization grant (RFC 8628), the
// way `gh auth login` does: it asks the server for a user code with
// x/oauth2's DeviceAuth, prints where to enter it, polls the token endpoint
// with DeviceAccessToken (which keeps the interval and slows down when told
// to) until the user allows or denies in a browser, then verifies the access
// token and calls /api/me.
func runDevice(ctx context.Context, o options, out io.Writer) error {
	md, err := discover(ctx, o.issuer)
	if err != nil {
		return err
	}
	if md.DeviceAuthorizationEndpoint == "" {
		return fmt.Errorf("the server at %s has no device_authorization_endpoint in its metadata", o.issuer)
	}
	conf := &oauth2.Config{
		ClientID: o.clientID,
		Endpoint: oauth2.Endpoint{DeviceAuthURL: md.DeviceAuthorizationEndpoint, TokenURL: md.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams},
		Scopes:   o.scopes,
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, httpClient)
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return fmt.Errorf("asking %s for a device code: %w", md.DeviceAuthorizationEndpoint, err)
	}
	fmt.Fprintf(out, "On any device, open\n\n    %s\n\nand enter the code\n\n    %s\n\n", da.VerificationURI, da.UserCode)
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(out, "(or open %s and confirm the code)\n\n", da.VerificationURIComplete)
	}
	interval := da.Interval
	if interval <= 0 {
		interval = 5 // RFC 8628 §3.2's default, as x/oauth2 applies it
	}
	fmt.Fprintf(out, "Waiting for you to allow access (polling every %ds, code valid until %s) ...\n", interval, da.Expiry.Format(time.Kitchen))
	waitCtx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	tok, err := conf.DeviceAccessToken(waitCtx, da)
	if err != nil {
		if re, ok := err.(*oauth2.RetrieveError); ok && re.ErrorCode != "" {
			return &authError{Code: re.ErrorCode, Description: re.ErrorDescription}
		}
		return fmt.Errorf("waiting for the token at %s: %w", md.TokenEndpoint, err)
	}
	return showToken(ctx, out, md, o.issuer, tok)
}
