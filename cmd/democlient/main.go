// Command democlient signs a user in with the authorization code flow and
// PKCE, the way `gcloud auth login` does, and shows what it got.
//
// It reads the server's metadata (RFC 8414), listens on a loopback port
// (RFC 8252 §7.3), opens the browser on the authorization URL (or prints it
// with --no-browser), checks state and iss (RFC 9207) on the redirect,
// exchanges the code with x/oauth2 and the PKCE verifier (RFC 7636), verifies
// the access token against the server's JWKS, prints its claims, and calls
// the demo API's /api/me with it.
//
// Run it against `authserver serve --demo`, which registers the public client
// demo-app:
//
//	go run ./cmd/democlient
//
// With --device it signs in with the device authorization grant (RFC 8628)
// instead, as the demo's public client "demo", printing the verification URI
// and the user code to enter there:
//
//	go run ./cmd/democlient --device
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"
)

func main() {
	var o options
	var scope string
	flag.StringVar(&o.issuer, "issuer", "http://127.0.0.1:8080", "issuer URL of the authorization server")
	flag.StringVar(&o.clientID, "client-id", "demo-app", "client ID of a public client with a loopback redirect URI")
	flag.StringVar(&scope, "scope", "profile email", "space-separated scopes to ask for")
	flag.BoolVar(&o.noBrowser, "no-browser", false, "only print the authorization URL; do not open a browser")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait for the sign-in")
	device := flag.Bool("device", false, "sign in with the device authorization grant (RFC 8628) as client \"demo\" (default scope: none)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "democlient: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	o.issuer = strings.TrimSuffix(o.issuer, "/")
	o.scopes = strings.Fields(scope)
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if *device {
		if !set["client-id"] {
			o.clientID = "demo"
		}
		if !set["scope"] {
			o.scopes = nil
		}
		err = runDevice(ctx, o, os.Stdout)
	} else {
		err = run(ctx, o, os.Stdout, openBrowser)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "democlient:", err)
		var ae *authError
		if errors.As(err, &ae) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}
