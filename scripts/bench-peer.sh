#!/usr/bin/env bash
# Peer comparison (issue #13): Centrifugo v6 (Redis engine, history 100 with a
# TTL, forced recovery, clients publishing over their own socket) and then
# chatflow, driven by the same generator (`chatflow bench`, rooms of 5, each
# client sending at a fixed rate, sender clock in the body, every delivery
# checked) at the same rates and durations, in one invocation on one machine.
# Server CPU comes from /proc/<pid>/stat deltas over each load phase:
# Centrifugo + Redis against every chatflow process (api, worker, kafka broker,
# Temporal, Postgres, Redis); the generator's own cores are reported apart.
#
# Results: $OUT/{centrifugo,chatflow}-<rate>.json, idle-*.json, the markdown
# table $TABLE (ratios chatflow ÷ Centrifugo, pasted into BENCHMARKS.md) and
# the load curve $OUT/peer-curve.png (scripts/plot.sh peer).
#
# Usage: [RATES="1000 2500 5000 10000"] [DURATION=30] [PER_CLIENT=5]
#        [IDLE_CONNS=10000] [SERVICES=skip] [CF_FSYNC="no always"] scripts/bench-peer.sh
# RATES are offered msg/s in all; each client sends PER_CLIENT msg/s, so a rate
# runs RATE/PER_CLIENT clients (a multiple of the room size). IDLE_CONNS=0 skips
# the idle-memory comparison. SERVICES=skip uses already running services
# without `make services`. DATABASE_URL, if set, is the chatflow database.
# CF_FSYNC lists the persistence of Centrifugo's Redis, one pass of every rate
# each: `no` (the default: no AOF, as Centrifugo deploys it) and `always`
# (AOF with `appendfsync always`, chatflow's durability point: a publish is
# answered and pushed only after its fsync). The `always` pass writes its files
# to $OUT-fsync and its table, against the same chatflow runs, to
# ${TABLE%.md}-fsync.md.
# SERVER_ENV is extra environment for both servers' processes alike
# (Centrifugo, and chatflow's api and worker), e.g. "GOMAXPROCS=1": on a box
# they share with every other process, one P each spins and wakes less
# (BENCHMARKS.md round 7).
set -euo pipefail
cd "$(dirname "$0")/.."
RATES=${RATES:-1000 2500 5000 10000}
DURATION=${DURATION:-30}; DURATION=${DURATION%s}
PER_CLIENT=${PER_CLIENT:-5}
ROOM_SIZE=5
IDLE_CONNS=${IDLE_CONNS:-10000}
CF_VERSION=v6.9.1
CF_PORT=${CF_PORT:-18000}
CF_REDIS_DB=${CF_REDIS_DB:-0}
CF_REDIS_PORT=${CF_REDIS_PORT:-16390}
API_PORT=${API_PORT:-18181}
REDIS_PORT=${REDIS_PORT:-16379}
OUT=${OUT:-bench/results/peer}
TABLE=${TABLE:-bench/results/peer.md}
LOGS=${CHATFLOW_DATA:-.data}/logs
mkdir -p "$OUT" "$LOGS" bin

[[ ${SERVICES:-} == skip ]] || make -s services >/dev/null
# Server cores are summed by process name: another chatflow api, worker or dev
# process, or another Centrifugo, on the machine would be counted as ours.
if others=$(pgrep -a -x 'chatflow|centrifugo' | grep -v ' kafka-broker'); then
  echo "warning: other chatflow/centrifugo processes are running; their CPU will count as the system's:" >&2
  echo "$others" >&2
fi
go build -o bin/chatflow ./cmd/chatflow
# Installed once; `centrifugo version` of a `go install` build says v0.0.0,
# so the module version is read from the binary instead.
if ! go version -m bin/centrifugo 2>/dev/null | grep -q "centrifugo/v6[[:space:]]*$CF_VERSION"; then
  echo "+ installing Centrifugo $CF_VERSION into bin/ (first time: a few minutes)" >&2
  GOBIN=$PWD/bin go install "github.com/centrifugal/centrifugo/v6@$CF_VERSION"
fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap cleanup EXIT
wait_http() { for _ in $(seq 150); do curl -fs "$1" >/dev/null && return 0; sleep 0.2; done; echo "not ready: $1" >&2; return 1; }
clients_for() { echo $(( ($1 / PER_CLIENT) / ROOM_SIZE * ROOM_SIZE )); }
bench() { echo "+ chatflow bench $*" >&2; bin/chatflow bench "$@"; }

# --- Centrifugo + Redis -------------------------------------------------------
CF_FSYNC=${CF_FSYNC:-no}
for fsync in $CF_FSYNC; do
CF_DIR=$(mktemp -d)
# Centrifugo gets a Redis of its own, as it is deployed: Redis' default
# persistence for an engine whose history is a cache (no AOF, no fsync).
# The `always` pass gives it chatflow's durability point instead.
case $fsync in
  no) cf_out=$OUT; cf_persist=(--appendonly no) ;;
  always) cf_out=$OUT-fsync; cf_persist=(--appendonly yes --appendfsync always) ;;
  *) echo "CF_FSYNC: no or always, not $fsync" >&2; exit 2 ;;
esac
mkdir -p "$cf_out"
redis-server --port "$CF_REDIS_PORT" --bind 127.0.0.1 --save "" "${cf_persist[@]}" --dir "$CF_DIR" \
  --logfile "$PWD/$LOGS/peer-redis.log" & pids+=($!)
for _ in $(seq 50); do redis-cli -p "$CF_REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
# Not CENTRIFUGO_*: Centrifugo reads (and warns about) every variable so named.
export BENCH_CENTRIFUGO_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
bin/chatflow bench -write-centrifugo-config "$CF_DIR/config.json" -centrifugo-port "$CF_PORT" \
  -centrifugo-redis "127.0.0.1:$CF_REDIS_PORT" -centrifugo-redis-db "$CF_REDIS_DB" -centrifugo-history-size 100 -centrifugo-history-ttl 300s
bin/centrifugo checkconfig --config "$CF_DIR/config.json" >/dev/null
env ${SERVER_ENV:-} bin/centrifugo --config "$CF_DIR/config.json" >"$LOGS/peer-centrifugo.log" 2>&1 & pids+=($!); cf_pid=$!
wait_http "127.0.0.1:$CF_PORT/health"
CF_URL=ws://127.0.0.1:$CF_PORT/connection/websocket
for rate in $RATES; do
  bench -target centrifugo -scenario chat -url "$CF_URL" -clients "$(clients_for "$rate")" -rate "$PER_CLIENT" \
    -duration "${DURATION}s" -label "centrifugo-$rate" -out "$cf_out/centrifugo-$rate.json" || true
done
if (( IDLE_CONNS > 0 )) && [[ $fsync == no ]]; then
  bench -target centrifugo -scenario idle -pid "$cf_pid" -url "$CF_URL" -conns "$IDLE_CONNS" -label idle-centrifugo -out "$OUT/idle-centrifugo.json" || true
fi
cleanup
rm -rf "$CF_DIR"
done

# --- chatflow (every process) -------------------------------------------------
# The load generator is thousands of users on one address, far past the
# per-user abuse limits: lift them (RATE_LIMITS=off), as scripts/bench.sh does.
export JWT_SECRET=bench-peer-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n') LOG_LEVEL=warn BCRYPT_COST=4 RATE_LIMITS=off
METRICS_ADDR=127.0.0.1:$((API_PORT + 9)) NODE_ID=peer-worker env ${SERVER_ENV:-} bin/chatflow worker >"$LOGS/peer-worker.log" 2>&1 & pids+=($!)
HTTP_ADDR=127.0.0.1:$API_PORT METRICS_ADDR=127.0.0.1:$((API_PORT + 10)) NODE_ID=peer-api env ${SERVER_ENV:-} bin/chatflow api >"$LOGS/peer-api.log" 2>&1 & pids+=($!); api_pid=$!
wait_http "127.0.0.1:$API_PORT/readyz"
API_URL=http://127.0.0.1:$API_PORT
U=(-users-file "${USERS_FILE:-bench/results/users.json}")
for rate in $RATES; do
  bench -scenario chat "${U[@]}" -url "$API_URL" -clients "$(clients_for "$rate")" -rate "$PER_CLIENT" \
    -duration "${DURATION}s" -label "chatflow-$rate" -out "$OUT/chatflow-$rate.json" || true
done
if (( IDLE_CONNS > 0 )); then
  bench -scenario idle -pid "$api_pid" "${U[@]}" -url "$API_URL" -clients 100 -conns "$IDLE_CONNS" -label idle-chatflow -out "$OUT/idle-chatflow.json" || true
fi
cleanup

# --- the table and the curve ----------------------------------------------------
{
  echo "Peer comparison, $(date -u +'%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty'):"
  echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), generator and every service on the same machine."
  echo "\`${SERVER_ENV:+SERVER_ENV=\"$SERVER_ENV\" }RATES=\"$RATES\" DURATION=$DURATION PER_CLIENT=$PER_CLIENT IDLE_CONNS=$IDLE_CONNS scripts/bench-peer.sh\`: rooms of $ROOM_SIZE,"
  echo "$PER_CLIENT msg/s per client, ${DURATION} s per rate; Centrifugo $CF_VERSION with the Redis engine (history 100, TTL 300 s, forced recovery)"
  echo "on a Redis of its own (no AOF, no fsync: a cache, as Centrifugo deploys it); chatflow's Redis runs \`appendfsync $(redis-cli -p "$REDIS_PORT" config get appendfsync | tail -1)\`. Ratios are chatflow ÷ Centrifugo."
  echo "Centrifugo has no durable ack: its ack column is the publish reply."
  echo
  bin/chatflow bench -peer-table "$OUT"
} >"$TABLE"
cat "$TABLE"
if [[ " $CF_FSYNC " == *" always "* ]]; then
  cp "$OUT"/chatflow-*.json "$OUT-fsync/"
  {
    echo "Peer comparison at the same durability point, $(date -u +'%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty'):"
    echo "the same chatflow runs as above; Centrifugo's Redis with \`appendonly yes\`, \`appendfsync always\` (a publish is answered and pushed after its fsync, as chatflow's send is)."
    echo "\`CF_FSYNC=\"$CF_FSYNC\" RATES=\"$RATES\" DURATION=$DURATION PER_CLIENT=$PER_CLIENT scripts/bench-peer.sh\`. Ratios are chatflow ÷ Centrifugo."
    echo
    bin/chatflow bench -peer-table "$OUT-fsync"
  } >"${TABLE%.md}-fsync.md"
  cat "${TABLE%.md}-fsync.md"
fi
scripts/plot.sh peer "$OUT" || echo "plot failed (gnuplot?)" >&2
