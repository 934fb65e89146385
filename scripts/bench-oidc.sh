#!/usr/bin/env bash
# OpenID Connect load figures (issue #15): the code exchange with openid
# (access, ID and refresh token) and UserInfo, each compared with the RS256
# signing / verification limit measured in the same run. Run it under the
# shared lock: flock /tmp/bench.lock scripts/bench-oidc.sh
set -euo pipefail
cd "$(dirname "$0")/.."
D=$(mktemp -d -t oidcbench.XXXXXX)
trap 'rm -rf "$D"' EXIT
go build -o "$D/authserver" ./cmd/authserver
go build -o "$D/authbench" ./cmd/authbench
B=$D/authbench
S=$D/authserver
ALG=${ALG:-RS256}
PORT=${PORT:-18391}
"$S" serve --addr 127.0.0.1:$PORT --db "$D/bench.db" --demo --key-algorithm "$ALG" >"$D/server.log" 2>&1 &
PID=$!
trap 'kill -TERM $PID; wait $PID 2>/dev/null || true; rm -rf "$D"' EXIT
for _ in $(seq 1 200); do grep -q listening "$D/server.log" && break; sleep 0.05; done
"$B" setup --server-bin "$S" --db "$D/bench.db" --users 4 --state "$D/state.json" >/dev/null 2>&1
"$B" limits --only sign/RS256,verify/$ALG -d 2s --warmup 500ms --max-other-load 0.5 --retries 1 --append "$D/results.jsonl" >/dev/null
for sc in "oidc_code 16 6000" "userinfo 64 64" "client_credentials 64 64"; do
	set -- $sc
	"$B" run --url http://127.0.0.1:$PORT --state "$D/state.json" --server-pid $PID --append "$D/results.jsonl" \
		--max-other-load 0.5 --retries 1 -s "$1" -c "$2" -d 5s --warmup 1s --pool "$3" >/dev/null
done
"$B" report --format table "$D/results.jsonl"
