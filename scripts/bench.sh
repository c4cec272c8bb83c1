#!/usr/bin/env bash
# Runs the benchmark suite against real local processes and plots the load
# curve: services, one worker process, one or two api processes, then
# `chatflow bench` scenarios. Results: bench/results/*.json, bench/results/*.png.
# Usage: scripts/bench.sh [quick]
#        scripts/bench.sh reads [N]   history and search with an empty table, then
#                                     with N (default 1,000,000) stored messages,
#                                     in a database of their own (chatflow_reads)
#        scripts/bench.sh lowload     1,000 msg/s, where the tail comes from: the same
#                                     run with Redis appendfsync everysec, with the api
#                                     at GOGC=400 and with BATCH_LINGER=300ms (a third
#                                     of the batch workflows), alternated REPS (2) times
#        scripts/bench.sh profile     CPU, mutex and block profiles of api and worker
#                                     at 1,000 and 5,000 msg/s (bench/results/pprof/)
#        scripts/bench.sh largeroom   one room of 1,000 members, 50 msg/s
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
API_ENV=${API_ENV:-} WORKER_ENV=${WORKER_ENV:-}
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

start_system() { # nodes bcrypt_cost
  cleanup; pids=()
  LOG_LEVEL=warn NODE_ID=bench-worker METRICS_ADDR=127.0.0.1:18190 env $WORKER_ENV bin/chatflow worker >"$LOGS/bench-worker.log" 2>&1 & pids+=($!)
  for i in $(seq 1 "$1"); do
    # The load generator is thousands of users on one address, connections
    # and sends far past the per-user abuse limits: lift them (RATE_LIMITS=off).
    HTTP_ADDR=127.0.0.1:$((18180 + i)) METRICS_ADDR=127.0.0.1:$((18190 + i)) NODE_ID=bench-api$i BCRYPT_COST=$2 LOG_LEVEL=warn RATE_LIMITS=off \
      env $API_ENV bin/chatflow api >"$LOGS/bench-api$i.log" 2>&1 & pids+=($!)
  done
  for i in $(seq 1 "$1"); do
    for _ in $(seq 100); do curl -fs "127.0.0.1:$((18180 + i))/readyz" >/dev/null && break; sleep 0.2; done
  done
}
urls() { local u=""; for i in $(seq 1 "$1"); do u+="${u:+,}http://127.0.0.1:$((18180 + i))"; done; echo "$u"; }

# Users signed up by earlier runs are reused (the sign-up storm is its own scenario).
U=(-users-file "$OUT/users.json")
bench() { echo "+ chatflow bench $*" >&2; bin/chatflow bench "$@"; }

rcli() { redis-cli -p "${REDIS_PORT:-16379}" "$@"; }
chat1k() { # label [extra bench args]
  local l=$1; shift
  bench -scenario chat "${U[@]}" -url "$(urls 1)" -clients 200 -rate 5 -duration 20s -label "$l" -out "$OUT/$l.json" "$@" || true
}

if [[ ${1:-} == lowload ]]; then
  trap 'rcli config set appendfsync always >/dev/null; cleanup' EXIT
  for rep in $(seq 1 "${REPS:-2}"); do
    API_ENV= start_system 1 4
    chat1k "lowload-base-r$rep"
    rcli config set appendfsync everysec >/dev/null
    chat1k "lowload-everysec-r$rep"
    rcli config set appendfsync always >/dev/null
    API_ENV=GOGC=400 start_system 1 4
    chat1k "lowload-gogc400-r$rep"
    API_ENV=BATCH_LINGER=300ms start_system 1 4
    chat1k "lowload-linger300-r$rep"
  done
  exit 0
fi

if [[ ${1:-} == profile ]]; then
  P=$OUT/pprof; mkdir -p "$P"
  API_ENV=PPROF_ADDR=127.0.0.1:18281 WORKER_ENV=PPROF_ADDR=127.0.0.1:18280 start_system 1 4
  for lvl in "200 5 1k" "1000 5 5k"; do
    set -- $lvl
    bench -scenario chat "${U[@]}" -url "$(urls 1)" -clients "$1" -rate "$2" -duration 30s -label "profile-$3" -out "$OUT/profile-$3.json" &
    b=$!
    sleep 12 # setup and ramp
    for who in api:18281 worker:18280; do
      n=${who%%:*} port=${who##*:}
      curl -fs "127.0.0.1:$port/debug/pprof/profile?seconds=12" -o "$P/$n-cpu-$3.pb.gz" &
    done
    # the Temporal dev server is not ours to instrument: sample it with perf
    if command -v perf >/dev/null && [ -f "${CHATFLOW_DATA:-.data}/temporal/pid" ]; then
      perf record -q -F 199 -o "$P/temporal-$3.perf" -p "$(cat "${CHATFLOW_DATA:-.data}/temporal/pid")" -- sleep 12 >/dev/null 2>&1 &
    fi
    sleep 13
    for who in api:18281 worker:18280; do
      n=${who%%:*} port=${who##*:}
      curl -fs "127.0.0.1:$port/debug/pprof/mutex" -o "$P/$n-mutex-$3.pb.gz"
      curl -fs "127.0.0.1:$port/debug/pprof/block" -o "$P/$n-block-$3.pb.gz"
    done
    wait $b || true
    if [ -f "$P/temporal-$3.perf" ]; then
      perf report -i "$P/temporal-$3.perf" --stdio --no-children --sort symbol 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 >"$P/temporal-cpu-$3.top.txt" || true
      rm -f "$P/temporal-$3.perf"
    fi
    for f in "$P"/*-"$3".pb.gz; do
      go tool pprof -top -nodecount=25 bin/chatflow "$f" >"${f%.pb.gz}.top.txt" 2>/dev/null || true
    done
  done
  exit 0
fi

if [[ ${1:-} == largeroom ]]; then
  start_system 1 4
  bench -scenario chat "${U[@]}" -url "$(urls 1)" -clients 1000 -room-size 1000 -rate 0.05 -duration 40s -label largeroom-1000x50 -out "$OUT/largeroom.json"
  exit 0
fi

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
