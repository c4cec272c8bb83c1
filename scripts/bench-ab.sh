#!/usr/bin/env bash
# A/B benchmark: the same chat scenarios against two builds of chatflow in one
# sitting, alternating A and B per level, on the same local services and with
# the same load generator (this tree's `chatflow bench`). A is a git revision
# (HEAD to compare settings only), B is this tree; both run with Redis
# appendfsync always unless A_FSYNC says otherwise (issue #8's run compared
# against a build of the everysec era with A_FSYNC=everysec). A_ENV / B_ENV
# are extra environment for that side's api and worker ("BATCH_LINGER=500ms").
# A_NICE / B_NICE run that side's durable path (worker, Temporal dev server,
# Postgres) at that nice level, the api and Redis at 0.
# A_WORKER=0 runs A without a worker (a diagnostic: nothing is persisted or
# published during the run, so A's Postgres check fails; the batch workflows
# wait in Temporal and a worker drains them after the run, before the next).
# Results: bench/results/ab-$PREFIX{A,B}-*.json (PREFIX empty by default), with the
# api's frame and write counters in *.metrics; `scripts/bench-table.py ab PREFIX` prints them.
# SCENARIO=reconnect runs `chatflow bench -scenario reconnect` instead of chat,
# against two api nodes (clients drop and come back on the other node; levels
# are then "clients rate" for the phase before the drop, e.g. "1000 2").
# AB=gen compares load generators instead: both sides run this tree's api and
# worker, A is driven by OLD's `chatflow bench` and B by this tree's (round 5:
# the generator's own sampling took CPU from the system it measured).
# A_REDIS / B_REDIS are Redis settings for that side's runs, as CONFIG SET
# pairs ("auto-aof-rewrite-percentage 0"); every run starts from the values
# Redis had when the script began, and the script puts them back at the end.
# A_SVC_ENV / B_SVC_ENV are environment for the Go services (the Temporal dev
# server and the Kafka broker) on that side ("GOMAXPROCS=1"); when either is
# set, every run restarts those two with its side's (scripts/services.sh
# restart-go), so both sides pay the restart.
# A_PG_SQL / B_PG_SQL are SQL files run against Postgres before each of that
# side's runs (after the settle): a definition both builds share, such as a
# function of an index expression (round 8: chat.search_doc before and after
# migration 0015); each run starts its own connections, so it sees the file's.
# Before each run the stores are settled (VACUUM of chat.messages, CHECKPOINT,
# sync; SETTLE=0 skips it).
# Usage: [REPS=n] [AB=gen] [A_FSYNC=..] [A_WORKER=0] [A_ENV=..] [B_ENV=..] [A_REDIS=..] [B_REDIS=..]
#        [A_SVC_ENV=..] [B_SVC_ENV=..] [A_PG_SQL=..] [B_PG_SQL=..] [PREFIX=..] [DURATION=20s] [SETTLE=1]
#        scripts/bench-ab.sh OLD_REV ["clients rate" ...]
# REPS repeats every level n times (A B, then B A, ...) so the spread between
# runs of the same build shows what counts as noise.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: scripts/bench-ab.sh OLD_REV [levels]}; shift
LEVELS=("$@"); [[ ${#LEVELS[@]} -gt 0 ]] || LEVELS=("200 5" "500 5")
OUT=bench/results; LOGS=${CHATFLOW_DATA:-.data}/logs
mkdir -p "$OUT" "$LOGS"
make -s services >/dev/null
go build -o bin/chatflow ./cmd/chatflow
wt=$(mktemp -d)
git worktree add -q --detach "$wt" "$OLD"
(cd "$wt" && go build -o "$wt/bin/chatflow" ./cmd/chatflow) # named chatflow, so the bench finds its processes
export DATABASE_URL="postgres://postgres@127.0.0.1:${PG_PORT:-15432}/chatflow?sslmode=disable"
export REDIS_ADDR=127.0.0.1:${REDIS_PORT:-16379} KAFKA_BROKERS=127.0.0.1:${KAFKA_PORT:-19092}
export JWT_SECRET=bench-ab-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n') LOG_LEVEL=warn BCRYPT_COST=4
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap 'cleanup; git worktree remove --force "$wt"' EXIT
# redis_conf applies CONFIG SET pairs; orig_redis holds what A_REDIS and
# B_REDIS name as it was at the start.
redis_conf() {
  while [[ $# -ge 2 ]]; do
    redis-cli -p "${REDIS_PORT:-16379}" config set "$1" "$2" >/dev/null
    shift 2
  done
}
orig_redis=()
save_redis() {
  while [[ $# -ge 2 ]]; do
    orig_redis+=("$1" "$(redis-cli -p "${REDIS_PORT:-16379}" config get "$1" | sed -n 2p)")
    shift 2
  done
}
save_redis ${A_REDIS:-} ${B_REDIS:-}
durable_pids() { # the Temporal dev server and every Postgres process
  cat "${CHATFLOW_DATA:-.data}/temporal/pid" 2>/dev/null || true
  pgrep -x postgres || true
}
# renice_durable sets the durable path's nice level. A Postgres backend that
# ended between the listing and the renice fails the command; the rest are
# reniced all the same, and the script goes on.
renice_durable() {
  renice -n "$1" -p $(durable_pids) >/dev/null 2>&1 || true
}
# settle puts the background work the previous run left (autovacuum of
# chat.messages, dirty pages of the WAL and the AOF) before this run rather
# than into it: round 3's A/A run had one build spread by a third at 5,000
# msg/s, with the slow run short of cores no listed process used.
# Redis rewrites its AOF each time the file doubles (auto-aof-rewrite-percentage
# 100): a fork and a write of the whole dataset, every minute or two at 5,000
# msg/s on fresh stores. Round 5's first pipelines A/B had its two worst runs
# exactly during two rewrites, so the settle starts one and waits for it.
settle() {
  [[ ${SETTLE:-1} == 1 ]] || return 0
  psql "$DATABASE_URL" -qc 'VACUUM (ANALYZE) chat.messages' -c CHECKPOINT >/dev/null 2>&1 || true
  local r="redis-cli -p ${REDIS_PORT:-16379}"
  $r bgrewriteaof >/dev/null 2>&1 || true
  for _ in $(seq 120); do
    $r info persistence | grep -q '^aof_rewrite_in_progress:0' && ! $r info persistence | grep -q '^aof_rewrite_scheduled:1' && break
    sleep 0.5
  done
  sync
}
# start_worker and start_api run one of the roles in the background, with
# that side's extra environment; start_api waits until the node answers.
start_worker() { # binary env log [nice]
  env $2 METRICS_ADDR=127.0.0.1:18191 NODE_ID=ab-worker nice -n "${4:-0}" "$1" worker >"$3" 2>&1 & pids+=($!)
}
start_api() { # binary env log port metrics-port node-id
  env $2 HTTP_ADDR=127.0.0.1:$4 METRICS_ADDR=127.0.0.1:$5 RATE_LIMITS=off NODE_ID=$6 "$1" api >"$3" 2>&1 & pids+=($!)
  for _ in $(seq 100); do curl -fs "127.0.0.1:$4/healthz" >/dev/null && break; sleep 0.2; done
}
# drain runs a worker until the rows in Postgres stop growing: what a run
# without a worker left in Temporal is stored before the next run.
drain() { # binary env label
  start_worker "$1" "$2" "$LOGS/ab-worker-$3-drain.log"
  local prev=-1 n
  for _ in $(seq 120); do
    sleep 3
    n=$(psql "$DATABASE_URL" -qAtc 'SELECT count(*) FROM chat.messages')
    [[ $n == "$prev" ]] && break
    prev=$n
  done
  echo "+ $3: drained ($n rows)" >&2
}
run() { # label binary fsync clients rate suffix env nice worker generator redis-settings
  local label=${PREFIX:-}$1 bin=$2 nice=${8:-0} worker=${9:-1} gen=${10:-bin/chatflow}
  cleanup
  if [[ -n ${A_SVC_ENV:-}${B_SVC_ENV:-} ]]; then
    local svc_env=${A_SVC_ENV:-}; [[ $1 == A ]] || svc_env=${B_SVC_ENV:-}
    env $svc_env scripts/services.sh restart-go >/dev/null
  fi
  redis_conf "${orig_redis[@]}"
  settle
  redis_conf ${11:-}
  local pg_sql=${A_PG_SQL:-}; [[ $1 == A ]] || pg_sql=${B_PG_SQL:-}
  [[ -z $pg_sql ]] || psql "$DATABASE_URL" -q -v ON_ERROR_STOP=1 -f "$pg_sql" >/dev/null
  redis-cli -p "${REDIS_PORT:-16379}" config set appendfsync "$3" >/dev/null
  renice_durable "$nice"
  start_worker "$bin" "$7" "$LOGS/ab-worker-$label.log" "$nice"
  local worker_pid=$!
  start_api "$bin" "$7" "$LOGS/ab-api-$label.log" 18181 18192 ab-api
  local urls=http://127.0.0.1:18181
  if [[ ${SCENARIO:-chat} == reconnect ]]; then
    start_api "$bin" "$7" "$LOGS/ab-api2-$label.log" 18183 18194 ab-api2
    urls=$urls,http://127.0.0.1:18183
  fi
  if [[ $worker == 0 ]]; then
    # sign-ups are sagas that need a worker: sign the level's users up (and
    # let the worker drain that warm-up) before taking the worker away
    bin/chatflow bench -scenario chat -users-file "$OUT/users-ab.json" -url http://127.0.0.1:18181 \
      -clients "$4" -rate 1 -duration 1s -label warmup -out /dev/null >/dev/null 2>&1 || true
    sleep 3
    kill "$worker_pid"; wait "$worker_pid" 2>/dev/null || true
  fi
  echo "+ $label: $4 clients x $5 msg/s" >&2
  redis-cli -p "${REDIS_PORT:-16379}" config resetstat >/dev/null
  psql "$DATABASE_URL" -qAtc 'SELECT pg_stat_statements_reset()' >/dev/null 2>&1 || true
  "$gen" bench -scenario "${SCENARIO:-chat}" -users-file "$OUT/users-ab.json" -url "$urls" \
    -clients "$4" -rate "$5" -duration "${DURATION:-20s}" -label "$label-$4x$5$6" -out "$OUT/ab-$label-$4x$5$6.json" || true
  # what the run leaves beside its result: the api's socket writes against its
  # frames (how much coalescing there was), its own send→ack histogram (Redis
  # round trip and pipeline wait), and Redis' own time per script call (the
  # send script is evalsha)
  { curl -fs 127.0.0.1:18192/metrics | grep -E '^chatflow_(ws_(frames_out|writes)_total|ack_seconds_(bucket|count))' || true
    redis-cli -p "${REDIS_PORT:-16379}" info commandstats | grep -E '^cmdstat_(evalsha|publish|xadd)' | tr -d '\r' || true
    redis-cli -p "${REDIS_PORT:-16379}" info persistence | grep -E '^aof_rewrites:' | tr -d '\r' || true
    # Postgres' time per statement over the run (pg_stat_statements): calls,
    # total ms, rows, the sqlc query name
    psql "$DATABASE_URL" -qAtF' ' -c "SELECT 'pgss', calls, round(total_exec_time), rows,
      coalesce(substring(query from '-- name: (\w+)'), left(regexp_replace(query, '\s+', ' ', 'g'), 60))
      FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12" 2>/dev/null || true
  } >"$OUT/ab-$label-$4x$5$6.metrics"
  [[ $worker == 1 ]] || drain "$bin" "$7" "$label"
}
for lvl in "${LEVELS[@]}"; do
  set -- $lvl
  for rep in $(seq "${REPS:-1}"); do
    sfx=""; [[ ${REPS:-1} -gt 1 ]] && sfx="-r$rep"
    # even repetitions run B first (A B B A ...), so neither side always
    # takes the first run of a level, the one after a restart or after a
    # heavier level (BENCHMARKS.md round 3 has an A/A run for the noise)
    order=(A B); (( rep % 2 == 1 )) || order=(B A)
    for side in "${order[@]}"; do
      if [[ $side == A && ${AB:-server} == gen ]]; then
        run A bin/chatflow "${A_FSYNC:-always}" "$1" "$2" "$sfx" "${A_ENV:-}" "${A_NICE:-0}" "${A_WORKER:-1}" "$wt/bin/chatflow" "${A_REDIS:-}"
      elif [[ $side == A ]]; then
        run A "$wt/bin/chatflow" "${A_FSYNC:-always}" "$1" "$2" "$sfx" "${A_ENV:-}" "${A_NICE:-0}" "${A_WORKER:-1}" "" "${A_REDIS:-}"
      else
        run B bin/chatflow always "$1" "$2" "$sfx" "${B_ENV:-}" "${B_NICE:-0}" 1 "" "${B_REDIS:-}"
      fi
    done
  done
done
cleanup
redis_conf "${orig_redis[@]}"
renice_durable 0
redis-cli -p "${REDIS_PORT:-16379}" config set appendfsync always >/dev/null
