#!/usr/bin/env bash
# scale.sh measures introspection and refresh throughput on an empty SQLite
# database and on one holding SCALE_TOKENS (default 1,000,000) token records,
# one after the other, and prints both with their ratio. The hot queries are
# indexed (storage/sql TestSQLiteHotQueriesUseIndexes shows their plans), so
# the figures should stay within 20% of each other.
#
#   SCALE_TOKENS=1000000  SCALE_DURATION=10s  scripts/scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TOKENS=${SCALE_TOKENS:-1000000}
DURATION=${SCALE_DURATION:-10s}
OUT=$(mktemp -d)
PORT=18190
ADDR=127.0.0.1:$PORT
go build -o bin/authserver ./cmd/authserver
go build -o bin/authbench ./cmd/authbench

run_db() { # NAME SEED
	local name=$1 seed=$2 db=$OUT/$1.db
	bin/authbench setup --server-bin bin/authserver --db "$db" --users 16 --state "$OUT/$name.json" >/dev/null 2>&1
	if [[ $seed -gt 0 ]]; then
		echo "seeding $seed token records into $name…" >&2
		bin/authbench seed --db "$db" --tokens "$seed" 2>&1 | tail -1 >&2
	fi
	bin/authserver serve --addr "$ADDR" --admin-addr off --db "$db" >"$OUT/$name.log" 2>&1 &
	local pid=$!
	until grep -q listening "$OUT/$name.log"; do sleep 0.1; done
	for s in introspect:64 refresh:16; do
		bin/authbench run --url "http://$ADDR" --state "$OUT/$name.json" --server-pid "$pid" \
			-s "${s%:*}" -c "${s#*:}" -d "$DURATION" --warmup 2s -o json >>"$OUT/$name.jsonl"
	done
	kill "$pid"; wait "$pid" || true
}
run_db empty 0
run_db large "$TOKENS"
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def load(name):
    r = {}
    for line in open(f"{out}/{name}.jsonl"):
        d = json.loads(line)
        if d.get("kind") == "scenario":
            r[d["name"]] = d
    return r
e, l = load("empty"), load("large")
print("| scenario | empty db req/s | p99 ms | large db req/s | p99 ms | large/empty |")
print("|---|--:|--:|--:|--:|--:|")
for s in e:
    if s in l:
        print(f"| {s} | {e[s]['rps']:.0f} | {e[s]['latency_ms']['p99']:.1f} | {l[s]['rps']:.0f} | {l[s]['latency_ms']['p99']:.1f} | {l[s]['rps']/e[s]['rps']:.0%} |")
PY
