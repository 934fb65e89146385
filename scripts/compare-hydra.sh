#!/usr/bin/env bash
# compare-hydra.sh runs Ory Hydra and this server side by side with the same
# load tool (bin/authbench), in one run on the same machine, and prints a
# results table (authbench report). It is not part of .ci/run; run it under
# flock /tmp/bench.lock on a quiet machine.
#
# Hydra v2.3.0 is built from its Go module (proxy.golang.org): a wrapper
# module requires github.com/ory/hydra/v2 and repeats its replace directives,
# since replace directives of a dependency are ignored. Hydra's go.mod
# replaces github.com/ory/hydra-client-go/v2 with ./internal/httpclient, a
# nested module its module zip does not contain; the wrapper uses the
# published github.com/ory/hydra-client-go/v2 (HYDRA_CLIENT_VERSION) instead.
# The sqlite build tag is required by Hydra's in-memory store (DSN=memory).
#
# Each server runs alone, in turn, for each scenario (client_credentials,
# introspection, JWKS; RS256, and ES256 when HYDRA_ES256=1 and Hydra accepts
# an ES256 access-token key), with the same workers and window; peak RSS is
# the server's VmHWM during the window.
#
# Environment: DURATION=8s CONC=64 ALGS="RS256 ES256" HYDRA_WORK=/tmp/hydra-build
#   SCENARIOS="client_credentials introspect jwks"
#   HYDRA_VERSION=v2.3.0 HYDRA_CLIENT_VERSION=v2.2.1 PORT=18390
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8s}
CONC=${CONC:-64}
ALGS=${ALGS:-RS256 ES256}
PORT=${PORT:-18390}
HYDRA_VERSION=${HYDRA_VERSION:-v2.3.0}
HYDRA_CLIENT_VERSION=${HYDRA_CLIENT_VERSION:-v2.2.1}
HYDRA_WORK=${HYDRA_WORK:-/tmp/hydra-build}
OUT=${OUT:-$(mktemp -d)/compare.jsonl}

build_hydra() {
	local dir=$HYDRA_WORK/$HYDRA_VERSION
	if [[ -x $dir/hydra ]]; then
		echo "$dir/hydra"
		return
	fi
	mkdir -p "$dir"
	(
		cd "$dir"
		cat >go.mod <<MOD
module hydrabuild

go 1.24

require github.com/ory/hydra/v2 $HYDRA_VERSION
MOD
		# Hydra's own replace directives, but the nested client module from
		# the proxy.
		curl -fsS "https://proxy.golang.org/github.com/ory/hydra/v2/@v/$HYDRA_VERSION.mod" |
			awk '/^replace / && $0 !~ /=> \.\// { print }' >>go.mod
		echo "replace github.com/ory/hydra-client-go/v2 => github.com/ory/hydra-client-go/v2 $HYDRA_CLIENT_VERSION" >>go.mod
		cat >tools.go <<'GO'
//go:build tools

package hydrabuild

import _ "github.com/ory/hydra/v2"
GO
		GOFLAGS=-mod=mod go mod tidy >&2
		CGO_ENABLED=1 GOFLAGS=-mod=mod go build -tags sqlite -o hydra github.com/ory/hydra/v2 >&2
	)
	echo "$dir/hydra"
}

HYDRA=$(build_hydra)
go build -o bin/authserver ./cmd/authserver
go build -o bin/authbench ./cmd/authbench

work=$(mktemp -d)
pid=
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
wait_up() { # url
	for _ in $(seq 200); do
		curl -fs "$1" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "server at $1 did not start" >&2
	return 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
run() { # label scenario url state
	bin/authbench run --url "$3" --state "$4" --server-pid "$pid" -s "$2" -c "$CONC" -d "$DURATION" \
		--warmup 2s --label "$1" -o json --append "$OUT" >/dev/null
}

start_ours() { # alg
	rm -rf "$work/db" && mkdir -p "$work/db"
	bin/authbench setup --server-bin bin/authserver --db "$work/db/auth.db" --users 1 --state "$work/ours.json" >/dev/null 2>&1
	bin/authserver serve --addr "127.0.0.1:$PORT" --admin-addr off --db "$work/db/auth.db" --key-algorithm "$1" >"$work/ours.log" 2>&1 &
	pid=$!
	wait_up "http://127.0.0.1:$PORT/healthz"
}

start_hydra() { # alg; writes $work/hydra.json
	local pub=$((PORT + 1)) adm=$((PORT + 2))
	DSN=memory SECRETS_SYSTEM=compare-hydra-secret-0123456789 STRATEGIES_ACCESS_TOKEN=jwt \
		URLS_SELF_ISSUER="http://127.0.0.1:$pub" SERVE_PUBLIC_PORT=$pub SERVE_ADMIN_PORT=$adm \
		SERVE_PUBLIC_HOST=127.0.0.1 SERVE_ADMIN_HOST=127.0.0.1 LOG_LEVEL=error \
		"$HYDRA" serve all --dev >"$work/hydra.log" 2>&1 &
	pid=$!
	wait_up "http://127.0.0.1:$adm/health/ready"
	if [[ $1 == ES256 ]]; then
		curl -fsS -X POST "http://127.0.0.1:$adm/admin/keys/hydra.jwt.access-token" \
			-H 'Content-Type: application/json' -d '{"alg":"ES256","use":"sig","kid":"es256"}' >/dev/null ||
			echo "hydra: adding an ES256 access-token key failed; it signs with its default key" >&2
	fi
	local c
	c=$(curl -fsS -X POST "http://127.0.0.1:$adm/admin/clients" -H 'Content-Type: application/json' \
		-d '{"grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic","scope":"read"}')
	local id secret
	id=$(sed -E 's/.*"client_id":"([^"]*)".*/\1/' <<<"$c")
	secret=$(sed -E 's/.*"client_secret":"([^"]*)".*/\1/' <<<"$c")
	# Hydra's introspection is on the admin port and needs no client
	# authentication; the Basic header authbench sends is ignored.
	cat >"$work/hydra.json" <<JSON
{"users":[],"password":"","client_id":"$id","client_secret":"$secret",
 "introspector_id":"$id","introspector_secret":"$secret",
 "paths":{"/token":"/oauth2/token","/introspect":"http://127.0.0.1:$adm/admin/oauth2/introspect"}}
JSON
	# The algorithm Hydra actually signs with, for the report.
	# Hydra creates its key sets on first use (RSA-4096 for the defaults,
	# seconds each); do it before the measured window.
	curl -fsS "http://127.0.0.1:$pub/.well-known/jwks.json" >/dev/null
	local tok
	tok=$(curl -fsS -u "$id:$secret" -d grant_type=client_credentials -d scope=read "http://127.0.0.1:$pub/oauth2/token" |
		sed -E 's/.*"access_token":"([^"]*)".*/\1/')
	echo "hydra $1: access token header $(cut -d. -f1 <<<"$tok" | tr '_-' '/+' | base64 -d 2>/dev/null || true)" >&2
}

bin/authbench limits --only http --duration 3s -o json --append "$OUT" >/dev/null
for alg in $ALGS; do
	for sc in ${SCENARIOS:-client_credentials introspect jwks}; do
		start_ours "$alg"
		run "ours $sc $alg" "$sc" "http://127.0.0.1:$PORT" "$work/ours.json"
		stop
		start_hydra "$alg"
		run "hydra $sc $alg" "$sc" "http://127.0.0.1:$((PORT + 1))" "$work/hydra.json"
		stop
	done
done
bin/authbench limits --only http --duration 3s -o json --append "$OUT" >/dev/null
bin/authbench report --format table "$OUT"
echo "results: $OUT" >&2
