#!/usr/bin/env bash
# targets.sh measures the open issues' performance targets the way
# BENCHMARKS.md reports them: every scenario on a fresh server (SQLite,
# --demo, --audit-log off, --admin-addr off) with 64 bench users, each right
# after the limit it is compared with, repeated ROUNDS times so that medians
# can be read on a shared machine. Then the peak RSS of every load-tool
# scenario (VmHWM of the server during the window), for RS256 and ES256.
#
#   flock /tmp/bench.lock scripts/targets.sh | tee targets.txt
#
# Environment: ROUNDS (5), DURATION (5s), SKIP_RSS=1 skips the memory pass.
# Each output line is the load tool's table row; "limit NAME OPS" lines are
# the limits. About 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
D=$(mktemp -d -t targets.XXXXXX)
trap 'rm -rf "$D"' EXIT
go build -o "$D/bin/" ./cmd/authserver ./cmd/authbench
B=$D/bin/authbench
S=$D/bin/authserver
PORT=${PORT:-19300}

# limit NAME: one limit of the machine (authbench limits), 3 s.
limit() {
	"$B" limits --algorithms RS256 --only "$1" -d 3s --warmup 1s 2>/dev/null | awk -v n="$1" '$1==n{print "limit", n, $4}'
}

# run ALG SCENARIO WORKERS [run flags]: the scenario on a fresh server.
run() {
	local alg=$1 sc=$2 c=$3 w
	shift 3
	w=$(mktemp -d "$D/run.XXXX")
	"$B" setup --server-bin "$S" --db "$w/b.db" --users 64 --state "$w/st.json" >/dev/null 2>&1
	"$S" serve --addr 127.0.0.1:$PORT --admin-addr off --db "$w/b.db" --demo --key-algorithm "$alg" --audit-log off >"$w/log" 2>&1 &
	local pid=$!
	for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done
	# A failed run is reported and the next one goes on; its server is
	# stopped either way (it holds the caller's flock).
	"$B" run --url http://127.0.0.1:$PORT --state "$w/st.json" --server-pid $pid -s "$sc" -c "$c" -d "$DURATION" --warmup 1s "$@" 2>"$w/err" |
		awk -v a="$alg" 'NF && $1 != "name" {print a, $0}' ||
		echo "$alg $sc FAILED: $(tail -n 1 "$w/err")"
	kill $pid 2>/dev/null || true
	wait $pid 2>/dev/null || true
	rm -rf "$w"
}

echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load $(cut -d' ' -f1 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
	echo "# round $r $(date -u +%T)"
	limit sign/RS256
	run RS256 code 64 --pool 7000
	limit argon2id
	run RS256 signin 4
	limit argon2id
	run ES256 password 4
	run RS256 authorize 64
done
for r in $(seq 1 3); do
	limit sign/RS256
	run RS256 oidc_code 32 --pool 5000
	limit verify/RS256
	run RS256 userinfo 64
	limit http
	run RS256 introspect 64
	run ES256 introspect 64
done
[ "${SKIP_RSS:-}" = 1 ] && exit 0
echo "# peak RSS (last column) of every scenario"
for alg in RS256 ES256; do
	for sc in "idle 1" "password 4" "refresh 64" "client_credentials 64" "introspect 64" "revoke 16" "jwks 64" \
		"statuslist 64" "oidc_code 32" "userinfo 64" "api 64" "signin 4" "authorize 64" "code 64" "memflood 1000"; do
		set -- $sc
		# revoke spends a pre-issued token per request: enough for the
		# warmup and the window at ES256's rate.
		# ES256 exchanges codes several times faster than RS256: its pool
		# must last through the warmup and the window too.
		case $1$alg in
		codeRS256 | oidc_codeRS256) run "$alg" "$1" "$2" --pool 6000 ;;
		codeES256 | oidc_codeES256 | revoke*) run "$alg" "$1" "$2" --pool 30000 ;;
		*) run "$alg" "$1" "$2" ;;
		esac
	done
done
