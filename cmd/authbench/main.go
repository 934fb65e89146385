// Command authbench is the load tool of the authorization server: closed-loop
// scenarios against a running server (password, refresh, client_credentials,
// introspect, revoke, jwks, api, memflood), the machine's limits measured by
// the same generator (argon2id, JWT signing and verification per algorithm, a
// trivial HTTP handler), and a report that reads every figure as a ratio to
// its limit. scripts/bench.sh drives it and writes BENCHMARKS.md.
//
//	authbench setup --server-bin bin/authserver --db /tmp/bench.db --users 64
//	authbench run --url http://127.0.0.1:8080 --scenario password -c 4 -d 10s
//	authbench limits --algorithms RS256,ES256,EdDSA -d 3s
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
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "authbench:", err)
		os.Exit(1)
	}
}
