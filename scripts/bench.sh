#!/usr/bin/env bash
# Runs the benchmark suite against real local processes and plots the load
# curve: services, one worker process, one or two api processes, then
# `chatflow bench` scenarios. Results: bench/results/*.json, bench/results/*.png.
# Usage: scripts/bench.sh [quick]
#        scripts/bench.sh reads [N]   history and search with an empty table, then
#                                     with N (default 1,000,000) stored messages,
#                                     in a database of their own (chatflow_reads)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/results
LOGS=${CHATFLOW_DATA:-.data}/logs
mkdir -p "$OUT" "$LOGS"
make -s services >/dev/null
go build -o bin/chatflow ./cmd/chatflow

# api and worker refuse to start without a key of their own (not one from the repo).
export JWT_SECRET="${JWT_SECRET:-$(head -c 48 /dev/urandom | base64 | tr -d '\n')}"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

start_system() { # nodes bcrypt_cost
  cleanup; pids=()
  LOG_LEVEL=warn NODE_ID=bench-worker METRICS_ADDR=127.0.0.1:18190 bin/chatflow worker >"$LOGS/bench-worker.log" 2>&1 & pids+=($!)
  for i in $(seq 1 "$1"); do
    # The load generator is thousands of users on one address, connections
    # and sends far past the per-user abuse limits: lift them (RATE_LIMITS=off).
    HTTP_ADDR=127.0.0.1:$((18180 + i)) METRICS_ADDR=127.0.0.1:$((18190 + i)) NODE_ID=bench-api$i BCRYPT_COST=$2 LOG_LEVEL=warn RATE_LIMITS=off \
      bin/chatflow api >"$LOGS/bench-api$i.log" 2>&1 & pids+=($!)
  done
  for i in $(seq 1 "$1"); do
    for _ in $(seq 100); do curl -fs "127.0.0.1:$((18180 + i))/readyz" >/dev/null && break; sleep 0.2; done
  done
}
urls() { local u=""; for i in $(seq 1 "$1"); do u+="${u:+,}http://127.0.0.1:$((18180 + i))"; done; echo "$u"; }

# Users signed up by earlier runs are reused (the sign-up storm is its own scenario).
U=(-users-file "$OUT/users.json")
bench() { echo "+ chatflow bench $*" >&2; bin/chatflow bench "$@"; }

if [[ ${1:-} == reads ]]; then
  n=${2:-1000000}
  db=postgres://postgres@127.0.0.1:${PG_PORT:-15432}/chatflow_reads?sslmode=disable
  # a fresh database each time, so the first pass really reads an empty table
  dropdb -h 127.0.0.1 -p "${PG_PORT:-15432}" -U postgres --if-exists chatflow_reads
  createdb -h 127.0.0.1 -p "${PG_PORT:-15432}" -U postgres chatflow_reads
  rm -f "$OUT/users-reads.json"
  export DATABASE_URL=$db
  bin/chatflow migrate >/dev/null
  start_system 1 4
  R=(-users-file "$OUT/users-reads.json" -url "$(urls 1)" -readers 32 -duration 15s)
  for p in 0 "$n"; do
    bench -scenario history "${R[@]}" -preload "$p" -label "history-$p" -out "$OUT/history-$p.json"
    bench -scenario search "${R[@]}" -preload "$p" -label "search-$p" -out "$OUT/search-$p.json"
  done
  exit 0
fi

start_system 1 10
bench -scenario baseline -out $OUT/baseline.json
bench -scenario signup -url "$(urls 1)" -signups 200 -concurrency 50 -out $OUT/signup.json

start_system 1 4
if [[ ${1:-} == quick ]]; then
  bench -scenario chat "${U[@]}" -url "$(urls 1)" -clients 100 -rate 10 -duration 10s -out $OUT/chat-quick.json
  exit 0
fi
bench -scenario history "${U[@]}" -url "$(urls 1)" -readers 32 -duration 15s -out $OUT/history.json
bench -scenario idle "${U[@]}" -url "$(urls 1)" -clients 100 -conns 10000 -out $OUT/idle.json
for lvl in "100 10" "500 5" "1000 5" "2000 5" "5000 4"; do
  set -- $lvl
  bench -scenario chat "${U[@]}" -url "$(urls 1)" -clients "$1" -rate "$2" -duration 20s -label "1node-$1x$2" -out "$OUT/chat-1node-$1x$2.json" || true
done
start_system 2 4
for lvl in "500 5" "1000 5"; do
  set -- $lvl
  bench -scenario chat "${U[@]}" -url "$(urls 2)" -clients "$1" -rate "$2" -duration 20s -label "2node-$1x$2" -out "$OUT/chat-2node-$1x$2.json" || true
done
bench -scenario reconnect "${U[@]}" -url "$(urls 2)" -clients 1000 -rate 2 -duration 10s -label reconnect -out $OUT/reconnect.json || true
scripts/plot.sh
