// Command resourceserver runs the demo API (GET /api/me, /api/protected,
// /api/admin/users) as a separate process that trusts a remote issuer, the
// way a third-party API uses package resource:
//
//	resourceserver --issuer http://localhost:8080 --addr 127.0.0.1:8082
//	resourceserver --issuer http://localhost:8080 --mode local-then-introspect \
//	    --introspect-client-id demo-api --introspect-client-secret-file secret.txt
//
// It has no user database: /api/admin/users lists the users it has seen in
// valid tokens since it started.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "resourceserver:", err)
		os.Exit(1)
	}
}
