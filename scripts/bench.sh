#!/usr/bin/env bash
# bench.sh regenerates the "## Load tool figures" section of
# BENCHMARKS.md: it builds bin/authserver and bin/authbench, starts a fresh
# server on a temporary SQLite database with --demo, creates bench users and
# clients (authbench setup), measures every limit of the machine, then runs
# each scenario for a few seconds right after measuring its own limit again,
# and renders the section with each figure as a ratio to that limit.
#
# The default run takes about 2–3 minutes. Environment variables:
#
#   BENCH_DURATION=5s        measured window of each scenario
#   BENCH_WARMUP=1s          warm-up before each window
#   BENCH_LIMIT_DURATION=2s  measured window of each limit (every limit once,
#                            and each scenario's own right before it)
#   BENCH_KEY_ALG=RS256      --key-algorithm of the server (its default)
#   BENCH_EXTRA_ALGS=ES256   also run the token scenarios with these
#                            algorithms, each on a fresh server ("" skips)
#   BENCH_EXTRA_SCENARIOS="refresh client_credentials"
#   BENCH_MAX_OTHER_LOAD=0.2 measure again (up to BENCH_RETRIES=2 times) when
#                            other processes used more cores than this during
#                            a measurement; a busy machine lengthens the run
#   BENCH_USERS=64           bench users created by setup
#   BENCH_REVOKE_POOL=10000  access tokens issued before the revoke window (the
#                            run ends early when they are all revoked)
#   BENCH_CONC_<SCENARIO>=N  workers of one scenario (BENCH_CONC_JWKS=128);
#                            the defaults: password 4, introspect/jwks/api 64,
#                            refresh/client_credentials 64 (every token
#                            response waits for a group commit's fsync, so
#                            the token endpoint needs many requests in flight
#                            to fill the cores), revoke 16, memflood 1000
#   BENCH_POSTGRES=          a PostgreSQL server URL without database
#                            (postgres://postgres@127.0.0.1:5432): also run
#                            BENCH_PG_SCENARIOS with BENCH_PG_ALG on a fresh
#                            database created there (and dropped after) with
#                            psql; empty skips
#   BENCH_PG_ALG=ES256
#   BENCH_PG_SCENARIOS="password refresh client_credentials introspect"
#   BENCH_PORT=18090         first port tried for the server
#   BENCH_DIR=               where the database goes (default: a temporary
#                            directory; its filesystem matters, every token
#                            commit is an fsync)
#   BENCH_OUT=$TMPDIR/authbench-results
#                            results: results.jsonl, section.md, server logs
#   BENCH_UPDATE=1           write the section into BENCHMARKS.md (0: only
#                            $BENCH_OUT/section.md)
#
# Example, a longer run:  BENCH_DURATION=20s BENCH_LIMIT_DURATION=5s scripts/bench.sh
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=${BENCH_DURATION:-5s}
WARMUP=${BENCH_WARMUP:-1s}
LIMIT_DURATION=${BENCH_LIMIT_DURATION:-2s}
KEY_ALG=${BENCH_KEY_ALG:-RS256}
EXTRA_ALGS=${BENCH_EXTRA_ALGS-ES256}
EXTRA_SCENARIOS=${BENCH_EXTRA_SCENARIOS:-refresh client_credentials}
PG_URL=${BENCH_POSTGRES:-}
PG_ALG=${BENCH_PG_ALG:-ES256}
PG_SCENARIOS=${BENCH_PG_SCENARIOS:-password refresh client_credentials introspect}
PG_DB=authbench_$$
USERS=${BENCH_USERS:-64}
MAX_OTHER=${BENCH_MAX_OTHER_LOAD:-0.2}
RETRIES=${BENCH_RETRIES:-2}
REVOKE_POOL=${BENCH_REVOKE_POOL:-10000}
PORT=${BENCH_PORT:-18090}
OUT=${BENCH_OUT:-${TMPDIR:-/tmp}/authbench-results}
UPDATE=${BENCH_UPDATE:-1}
HEADING="## Load tool figures"

log() { printf '%s bench: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# conc SCENARIO DEFAULT prints the concurrency of a scenario.
conc() {
	local var="BENCH_CONC_$(echo "$1" | tr '[:lower:]' '[:upper:]')"
	echo "${!var:-$2}"
}

START=$(date +%s)
mkdir -p "$OUT" bin
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
rm -f "$OUT"/server-*.log
if [[ -n ${BENCH_DIR:-} ]]; then
	mkdir -p "$BENCH_DIR"
	WORK=$(mktemp -d "$BENCH_DIR/authbench.XXXXXX")
else
	WORK=$(mktemp -d -t authbench.XXXXXX)
fi

SERVER_PID=
SERVE_EXTRA=()
stop_server() {
	if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID"
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	SERVER_PID=
}
cleanup() {
	stop_server
	rm -rf "$WORK"
	if [[ -n $PG_URL ]]; then
		psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building bin/authserver and bin/authbench"
go build -o bin/authserver ./cmd/authserver
go build -o bin/authbench ./cmd/authbench

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
while ! port_free "$PORT"; do PORT=$((PORT + 1)); done
ADDR=127.0.0.1:$PORT
URL=http://$ADDR

# start_server DB ALG LOGNAME starts the server and waits for "listening".
start_server() {
	local db=$1 alg=$2 logf=$OUT/$3
	bin/authserver serve --addr "$ADDR" --admin-addr off --db "$db" --demo --key-algorithm "$alg" "${SERVE_EXTRA[@]}" >"$logf" 2>&1 &
	SERVER_PID=$!
	for _ in $(seq 1 200); do
		if grep -q 'listening' "$logf"; then
			return 0
		fi
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			cat "$logf" >&2
			log "the server exited"
			exit 1
		fi
		sleep 0.05
	done
	cat "$logf" >&2
	log "the server did not start listening within 10s"
	exit 1
}

# scenario NAME CONC [extra authbench flags...] runs one scenario.
scenario() {
	local name=$1 c=$2
	shift 2
	log "scenario $name, $c workers, $DURATION"
	bin/authbench run --url "$URL" --state "$STATE" --server-pid "$SERVER_PID" --append "$RESULTS" \
		--max-other-load "$MAX_OTHER" --retries "$RETRIES" -s "$name" -c "$c" -d "$DURATION" --warmup "$WARMUP" "$@"
}

# limits [NAME...] measures the named limits, or all of them.
limits() {
	local only=()
	if [[ $# -gt 0 ]]; then
		only=(--only "$(IFS=,; echo "$*")")
	fi
	log "limits ${*:-(all)}"
	bin/authbench limits --algorithms RS256,ES256,EdDSA -d "$LIMIT_DURATION" --warmup 500ms \
		--http-concurrency "$(conc jwks 64)" --max-other-load "$MAX_OTHER" --retries "$RETRIES" \
		--append "$RESULTS" "${only[@]}" >/dev/null
}

# limit_for SCENARIO names the limit a scenario is compared with.
limit_for() {
	case $1 in
	password | signin) echo argon2id ;;
	code) echo "sign/$ALG" ;;
	refresh | client_credentials) echo "sign/$ALG" ;;
	introspect | api) echo "verify/$ALG" ;;
	jwks | revoke | authorize | statuslist) echo http ;;
	esac
}

DB=$WORK/bench.db
STATE=$WORK/state.json
ALG=$KEY_ALG
start_server "$DB" "$ALG" server-start.log
log "server pid $SERVER_PID on $URL ($ALG); setup: $USERS users"
bin/authbench setup --server-bin bin/authserver --db "$DB" --users "$USERS" --state "$STATE"

scenario idle 0 --label "idle (after start with --demo and setup)"
limits

# fresh NAME CONC [flags...] measures the scenario's limit (with the server
# stopped), restarts the server on the same database and runs the scenario:
# the limit is measured at the same moment, and each scenario's CPU and peak
# RSS are its own, not what earlier scenarios left on the heap (Go returns
# freed memory to the kernel lazily).
fresh() {
	stop_server
	local l
	l=$(limit_for "$1")
	if [[ -n $l ]]; then
		limits "$l"
	fi
	start_server "$DB" "$ALG" "server-$ALG-$1.log"
	scenario "$@"
}

fresh password "$(conc password 4)"
fresh refresh "$(conc refresh 64)"
fresh client_credentials "$(conc client_credentials 64)"
fresh introspect "$(conc introspect 64)"
fresh revoke "$(conc revoke 16)" --pool "$REVOKE_POOL"
fresh jwks "$(conc jwks 64)"
fresh statuslist "$(conc statuslist 64)"
fresh api "$(conc api 64)"
# Code flow (issue #14): signin vs argon2id, code exchange vs signing;
# authorize has an absolute target (5,000/s), compared with the http limit.
fresh signin "$(conc signin 4)"
fresh authorize "$(conc authorize 64)"
fresh code "$(conc code 64)" --pool "$(conc code_pool 4000)"
fresh idle 0 --label "idle (fresh restart, no seeding)"
# memflood comes last: its wrong passwords throttle 127.0.0.1.
fresh memflood "$(conc memflood 1000)"
stop_server

for alg in $EXTRA_ALGS; do
	DB=$WORK/bench-$alg.db
	STATE=$WORK/state-$alg.json
	ALG=$alg
	start_server "$DB" "$ALG" "server-$ALG-start.log"
	log "server pid $SERVER_PID with $ALG"
	bin/authbench setup --server-bin bin/authserver --db "$DB" --users "$USERS" --state "$STATE"
	for s in $EXTRA_SCENARIOS; do
		fresh "$s" "$(conc "$s" 64)"
	done
	stop_server
done

# default_conc SCENARIO prints the concurrency of the main pass.
default_conc() {
	case $1 in
	password) conc password 4 ;;
	revoke) conc revoke 16 ;;
	memflood) conc memflood 1000 ;;
	*) conc "$1" 64 ;;
	esac
}

if [[ -n $PG_URL ]]; then
	log "PostgreSQL pass on $PG_URL/$PG_DB with $PG_ALG"
	psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $PG_DB" >/dev/null
	psql "$PG_URL/postgres" -qc "CREATE DATABASE $PG_DB" >/dev/null
	DB="$PG_URL/$PG_DB?sslmode=disable"
	# PostgreSQL is shared storage: the server insists on an explicit secret.
	head -c 48 /dev/urandom | base64 >"$WORK/secret"
	SERVE_EXTRA=(--secret-file "$WORK/secret")
	STATE=$WORK/state-pg.json
	ALG=$PG_ALG
	start_server "$DB" "$ALG" "server-pg-start.log"
	bin/authbench setup --server-bin bin/authserver --db "$DB" --users "$USERS" --state "$STATE"
	for s in $PG_SCENARIOS; do
		fresh "$s" "$(default_conc "$s")" --label "$s ($ALG, PostgreSQL)"
	done
	stop_server
fi


ELAPSED=$(($(date +%s) - START))
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
FS=$(df -PT "$WORK" 2>/dev/null | awk 'NR==2 {print $2}')
OTHER=""
if ! git diff --quiet HEAD -- cmd authserver keys resource storage internal 2>/dev/null; then
	OTHER=" (with uncommitted changes)"
fi
report_args=(
	--meta "Run $(date -u +%Y-%m-%dT%H:%MZ), ${ELAPSED}s in all, at commit \`$COMMIT\`$OTHER, $(go version | awk '{print $3}')."
	--meta "Machine: $(nproc) cores ($CPU), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r); load tool and server on the same cores."
	--meta "Server: \`bin/authserver serve --demo --admin-addr off --key-algorithm $KEY_ALG\` (every other flag at its default: argon2id m=19456 KiB t=2 p=1, SQLite WAL with synchronous=FULL) on a fresh database on $FS, restarted before each scenario; extra passes with ${EXTRA_ALGS:-no other algorithm} on fresh databases."
	--meta "Scenarios: ${DURATION} measured after ${WARMUP} of warm-up; limits: ${LIMIT_DURATION} each, all of them once and each scenario's own right before it (server stopped)."
)
if [[ -n $PG_URL ]]; then
	report_args+=(--meta "PostgreSQL rows: the same binary with \`--db postgres://…\` on a fresh database of the local PostgreSQL $(psql "$PG_URL/postgres" -tAc 'SHOW server_version' 2>/dev/null | cut -d' ' -f1) (default settings, on the same 2 cores); the issue's targets are for SQLite and are not checked on them.")
fi
report_args+=(
	--heading "$HEADING"
	--out "$OUT/section.md"
)
if [[ $UPDATE == 1 ]]; then
	report_args+=(--update BENCHMARKS.md)
fi
bin/authbench report "${report_args[@]}" "$RESULTS"
cat "$OUT/section.md"
echo
bin/authbench report --format table "$RESULTS"
echo
if [[ $UPDATE == 1 ]]; then
	log "BENCHMARKS.md updated (section \"$HEADING\"); results in $OUT"
else
	log "section in $OUT/section.md; results in $OUT"
fi
