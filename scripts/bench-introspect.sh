#!/usr/bin/env bash
# bench-introspect.sh measures, in one run, the trivial-HTTP limit of the load
# tool and, per key algorithm, introspection with and without the cache of
# verified tokens (--introspection-cache-size -1), client_credentials, JWKS
# and idle, each with the server's peak RSS. Each scenario runs on a fresh
# server (SQLite in a temporary directory). Run it under flock /tmp/bench.lock.
#
#   DURATION=5s  ALGS="RS256 ES256"  CONC=64  PORT=18190
#   SERVE_EXTRA="--argon2-memory 64"   extra flags of every server
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
ALGS=${ALGS:-RS256 ES256}
CONC=${CONC:-64}
PORT=${PORT:-18190}
OUT=${OUT:-$(mktemp -d)/results.jsonl}
go build -o bin/authserver ./cmd/authserver
go build -o bin/authbench ./cmd/authbench
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
pid=
start() { # alg, extra serve flags...
	local alg=$1
	shift
	rm -rf "$work/db"
	mkdir -p "$work/db"
	bin/authbench setup --server-bin bin/authserver --db "$work/db/auth.db" --users 64 --state "$work/state.json" >/dev/null
	# shellcheck disable=SC2086
	bin/authserver serve --addr "127.0.0.1:$PORT" --admin-addr off --db "$work/db/auth.db" --key-algorithm "$alg" ${SERVE_EXTRA:-} "$@" >"$work/server.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	cat "$work/server.log" >&2
	return 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
run() { # label, scenario, workers
	bin/authbench run --url "http://127.0.0.1:$PORT" --state "$work/state.json" --server-pid "$pid" \
		-s "$2" -c "$3" -d "$DURATION" --warmup 1s --label "$1" -o json --append "$OUT" >/dev/null
}
bin/authbench limits --only http --duration "$DURATION" -o json --append "$OUT" >/dev/null
for alg in $ALGS; do
	start "$alg"
	run "idle $alg" idle 0
	stop
	start "$alg"
	run "introspect $alg (cache)" introspect "$CONC"
	stop
	start "$alg" --introspection-cache-size -1
	run "introspect $alg (no cache)" introspect "$CONC"
	stop
	start "$alg"
	run "client_credentials $alg" client_credentials "$CONC"
	stop
	start "$alg"
	run "jwks $alg" jwks "$CONC"
	stop
done
bin/authbench limits --only http --duration "$DURATION" -o json --append "$OUT" >/dev/null
bin/authbench report "$OUT"
echo "results: $OUT" >&2
