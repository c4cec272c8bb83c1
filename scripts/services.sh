#!/usr/bin/env bash
# Installs (when missing) and starts the local services chatflow needs, each on
# a project port with its data under .data/. Idempotent: a running service is
# left alone (Temporal only if it serves namespace default). Usage:
# scripts/services.sh start|stop|status, `diag` (status plus log tails and
# Temporal's namespaces), `s3` to start the object store alone, or
# `redis-cluster` / `redis-cluster-stop` for the local 3-master Redis Cluster
# of `make test-cluster` (not part of `start`).
#
# Knobs (environment): CHATFLOW_DATA (data directory, default .data; relative
# paths are taken from the repository root), PG_PORT (15432), REDIS_PORT
# (16379), KAFKA_PORT (19092), TEMPORAL_PORT (7233), TEMPORAL_UI_PORT (8233),
# S3_PORT (19000; the object store), S3_ACCESS_KEY / S3_SECRET_KEY (its root
# keys, dev values by default; the api reads the same variables).
# The default ports lie below the kernel's ephemeral range (32768-60999), so
# the client sockets of a load or test run never hold one. A second, separate
# set of services runs with its own CHATFLOW_DATA and ports; `stop` finds the
# processes through the pid files under CHATFLOW_DATA, whatever their ports.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DATA=${CHATFLOW_DATA:-.data}
[[ $DATA == /* ]] || DATA=$ROOT/$DATA
PG_PORT=${PG_PORT:-15432}
REDIS_PORT=${REDIS_PORT:-16379}
TEMPORAL_PORT=${TEMPORAL_PORT:-7233}
TEMPORAL_UI_PORT=${TEMPORAL_UI_PORT:-8233}
KAFKA_PORT=${KAFKA_PORT:-19092}
S3_PORT=${S3_PORT:-19000}
# The Redis Cluster: three masters on REDIS_CLUSTER_PORT .. +2 (17001-17003).
REDIS_CLUSTER_PORT=${REDIS_CLUSTER_PORT:-17001}
# The dev keys are blob.DevAccessKey / blob.DevSecretKey: keep them in step.
S3_ACCESS_KEY=${S3_ACCESS_KEY:-chatflow-dev}
S3_SECRET_KEY=${S3_SECRET_KEY:-chatflow-dev-secret-key}
VERSITYGW_VERSION=v1.8.0
PG_VERSION=15
PGBIN=/usr/lib/postgresql/$PG_VERSION/bin

log() { printf '[services] %s\n' "$*"; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  log "installing $* (apt)"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -q "$@" >/dev/null 2>&1 || {
    as_root apt-get update -q >/dev/null 2>&1
    as_root apt-get install -y -q "$@" >/dev/null
  }
}

# Postgres refuses to run as root, so as root the cluster belongs to the
# Debian 'postgres' user.
pg_run() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

wait_for() { # name, tries, pid to watch ("" for none), command...
  local name=$1 tries=$2 pid=$3; shift 3
  for ((i = 0; i < tries; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 5 "$DATA/logs/$name.log" >&2 2>/dev/null || true
      die "$name exited during start; see $DATA/logs/$name.log"
    fi
    sleep 0.5
  done
  die "$name did not come up; see $DATA/logs"
}

# sockets_on PORT: one line "state pid name" per process with a TCP socket
# whose local port is PORT ("state - -" when ss cannot name the process).
sockets_on() {
  ss -tanpH "sport = :$1" 2>/dev/null | awk '{
    st = $1; n = 0
    while (match($0, /\("[^"]+",pid=[0-9]+/)) {
      s = substr($0, RSTART + 2, RLENGTH - 2); split(s, a, "\",pid=")
      print st, a[2], a[1]; n++
      $0 = substr($0, RSTART + RLENGTH)
    }
    if (n == 0) print st, "-", "-"
  }' | sort -u
}

# ensure_free PORT SERVICE: fails, naming the holder, unless PORT is free to
# listen on. A listener holds it, and so does a connection whose local end
# is PORT (a client socket given PORT as its ephemeral port).
ensure_free() {
  local port=$1 what=$2 st pid name listen="" conn="" closing=0
  while read -r st pid name; do
    [[ -n $st ]] || continue
    if [[ $st == LISTEN ]]; then
      if [[ $pid == - ]]; then listen+="${listen:+, }a process ss cannot name (run as root to see it)"
      else listen+="${listen:+, }pid $pid ($name)"; fi
    elif [[ $pid != - ]]; then
      conn+="${conn:+, }pid $pid ($name)"
    else
      closing=$((closing + 1))
    fi
  done < <(sockets_on "$port")
  [[ -z $listen ]] || die "port $port ($what) is taken by $listen"
  [[ -z $conn ]] || die "port $port ($what) is taken by $conn (the local port of a connection, e.g. an ephemeral client port); end it or choose another port"
  # A closed client connection keeps its local port in TIME-WAIT for 60 s and
  # blocks a listener there; a closed server-side connection does not.
  ((closing)) || return 0
  can_bind "$port" && return 0
  log "port $port ($what) is the local port of $closing closed connection(s) in TIME-WAIT; waiting up to 70 s for the kernel to free it"
  for _ in $(seq 140); do
    sleep 0.5
    can_bind "$port" && return 0
  done
  die "port $port ($what) is still held by connection(s) in TIME-WAIT (ss -tan 'sport = :$port'); choose another port"
}

# can_bind PORT: whether a server could listen on 127.0.0.1:PORT now (with
# SO_REUSEADDR, as servers do). Without python3: whether no socket uses it.
can_bind() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
  else
    [[ -z $(ss -tanH "sport = :$1" 2>/dev/null) ]]
  fi
}

# pid_of PIDFILE COMM: the pid in PIDFILE when that process is alive and is COMM.
pid_of() {
  [[ -f $1 ]] || return 1
  local pid; pid=$(head -n1 "$1" 2>/dev/null | tr -dc 0-9)
  [[ -n $pid && -d /proc/$pid ]] || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2"* ]] || return 1
  echo "$pid"
}

# listen_ports PID: the TCP ports PID listens on, comma-separated.
listen_ports() {
  ss -ltnpH 2>/dev/null | awk -v p="pid=$1," 'index($0, p) { n = split($4, a, ":"); print a[n] }' | sort -un | paste -sd, -
}

# owned NAME PID PORT: true when our NAME (PID) listens on PORT; fails when it
# runs on other ports (the data directory is in use, so no second copy).
owned() {
  local name=$1 pid=$2 port=$3 ports
  ports=$(listen_ports "$pid")
  [[ ,$ports, == *,$port,* ]] && return 0
  die "$name of $DATA (pid $pid) listens on ${ports:-no port yet}, not $port; stop it first (scripts/services.sh stop with the same CHATFLOW_DATA), then start again"
}

start_postgres() {
  [[ -x $PGBIN/initdb ]] || apt_install postgresql-$PG_VERSION
  mkdir -p "$DATA/logs"
  if [[ ! -f $DATA/pg/PG_VERSION ]]; then
    log "initdb $DATA/pg"
    mkdir -p "$DATA/pg"
    [[ $(id -u) -eq 0 ]] && chown -R postgres "$DATA/pg"
    pg_run "$PGBIN/initdb" -D "$DATA/pg" -U postgres --auth=trust -E UTF8 >"$DATA/logs/initdb.log"
  fi
  if pg_run "$PGBIN/pg_ctl" -D "$DATA/pg" status >/dev/null 2>&1; then
    local pid port
    pid=$(sed -n 1p "$DATA/pg/postmaster.pid"); port=$(sed -n 4p "$DATA/pg/postmaster.pid")
    [[ $port == "$PG_PORT" ]] || die "postgres of $DATA (pid $pid) runs on port $port, not $PG_PORT; stop it first (scripts/services.sh stop with the same CHATFLOW_DATA), then start again"
    log "postgres already running on :$PG_PORT"
  else
    ensure_free "$PG_PORT" postgres
    [[ $(id -u) -eq 0 ]] && touch "$DATA/logs/postgres.log" && chown postgres "$DATA/logs/postgres.log"
    pg_run "$PGBIN/pg_ctl" -D "$DATA/pg" -l "$DATA/logs/postgres.log" -w -o \
      "-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on -c synchronous_commit=on -c shared_buffers=256MB -c shared_preload_libraries=pg_stat_statements" start >/dev/null
    log "postgres started on :$PG_PORT"
  fi
  wait_for postgres 40 "" "$PGBIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT"
  if ! "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "select 1 from pg_database where datname='chatflow'" | grep -q 1; then
    "$PGBIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres chatflow
  fi
  # Per-query cost for operators and benchmarks (README "Operations"). A
  # server started before the library was preloaded answers the view with an
  # error until it is restarted.
  "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d chatflow -qc 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' >/dev/null
}

start_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p "$DATA/redis" "$DATA/logs"
  local pid
  if pid=$(pid_of "$DATA/redis/redis.pid" redis-server) && owned redis "$pid" "$REDIS_PORT"; then
    log "redis already running on :$REDIS_PORT"; return
  fi
  ensure_free "$REDIS_PORT" redis
  rm -f "$DATA/redis/redis.pid"
  # AOF fsynced on every write: room seq counters and dedupe keys of acked
  # messages survive a crash of the OS, not only of the process.
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DATA/redis" --appendonly yes \
    --appendfsync always --daemonize yes --pidfile "$DATA/redis/redis.pid" \
    --logfile "$DATA/logs/redis.log" --save "" --maxclients 20000
  # redis-cli exits 0 on error replies too (LOADING while the AOF replays): want
  # PONG. The daemon writes its pid file once it listens, then replays the AOF.
  for ((i = 0; ; i++)); do
    redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
    if ((i >= 10)) && ! pid_of "$DATA/redis/redis.pid" redis-server >/dev/null; then
      tail -n 3 "$DATA/logs/redis.log" >&2 || true
      die "redis exited during start; see $DATA/logs/redis.log"
    fi
    ((i < 600)) || die "redis did not answer PING within 5 minutes; see $DATA/logs/redis.log"
    sleep 0.5
  done
  log "redis started on :$REDIS_PORT"
}

# start_redis_cluster starts three cluster-enabled redis-servers (the same
# durability as the main Redis) and, the first time, joins them into one
# cluster of 3 masters and no replicas. Idempotent: running nodes are left
# alone and an existing cluster (nodes.conf) is not created again.
start_redis_cluster() {
  command -v redis-server >/dev/null || apt_install redis-server
  local ports=() addrs=() port pid dir
  for i in 0 1 2; do
    port=$((REDIS_CLUSTER_PORT + i)); dir=$DATA/redis-cluster/$port
    ports+=("$port"); addrs+=("127.0.0.1:$port")
    mkdir -p "$dir" "$DATA/logs"
    if pid=$(pid_of "$dir/redis.pid" redis-server) && owned "redis cluster node" "$pid" "$port"; then
      continue
    fi
    ensure_free "$port" "redis cluster node"
    rm -f "$dir/redis.pid"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --cluster-enabled yes \
      --cluster-config-file nodes.conf --cluster-node-timeout 5000 --appendonly yes \
      --appendfsync always --daemonize yes --pidfile "$dir/redis.pid" \
      --logfile "$DATA/logs/redis-cluster-$port.log" --save "" --maxclients 20000
  done
  for port in "${ports[@]}"; do
    wait_for "redis-cluster-$port" 600 "" bash -c "redis-cli -p $port ping | grep -q PONG"
  done
  if ! redis-cli -p "${ports[0]}" cluster info | grep -q 'cluster_known_nodes:3'; then
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$DATA/logs/redis-cluster-create.log" 2>&1 ||
      { cat "$DATA/logs/redis-cluster-create.log" >&2; die "redis-cli --cluster create failed"; }
  fi
  for port in "${ports[@]}"; do
    wait_for "redis-cluster-$port" 120 "" bash -c "redis-cli -p $port cluster info | grep -q cluster_state:ok"
  done
  log "redis cluster ok on ${addrs[*]} (REDIS_CLUSTER_ADDRS=$(IFS=,; echo "${addrs[*]}"))"
}

stop_redis_cluster() {
  for i in 0 1 2; do
    stop_pidfile "redis cluster node :$((REDIS_CLUSTER_PORT + i))" \
      "$DATA/redis-cluster/$((REDIS_CLUSTER_PORT + i))/redis.pid" redis-server
  done
}

# temporal_ready TRIES: the dev server answers for namespace default (the
# one every role uses), within TRIES tries half a second apart.
temporal_ready() {
  for ((t = 0; t < $1; t++)); do
    ((t == 0)) || sleep 0.5
    bin/temporal operator namespace describe -n default --address "127.0.0.1:$TEMPORAL_PORT" >/dev/null 2>&1 && return 0
  done
  return 1
}

start_temporal() {
  if [[ ! -x bin/temporal ]]; then
    log "building the temporal CLI v1.5.1 into bin/ (a few minutes the first time)"
    GOBIN=$ROOT/bin go install github.com/temporalio/cli/cmd/temporal@v1.5.1
  fi
  mkdir -p "$DATA/temporal" "$DATA/logs"
  local pid
  if pid=$(pid_of "$DATA/temporal/pid" temporal) && owned temporal "$pid" "$TEMPORAL_PORT"; then
    if temporal_ready 10; then log "temporal already running on :$TEMPORAL_PORT"; return; fi
    # Seen once in CI: the dev server up, its namespace gone ("Namespace
    # default is not found.") for every test that followed. A restart on the
    # same file registers it again; the log tail is for finding out why.
    log "temporal (pid $pid) is up but does not serve namespace default; its log ends with:"
    tail -n 40 "$DATA/logs/temporal.log" | cut -c1-400 || true
    stop_pidfile temporal "$DATA/temporal/pid" temporal
  fi
  ensure_free "$TEMPORAL_PORT" temporal
  ensure_free "$TEMPORAL_UI_PORT" "temporal web UI"
  # WAL + synchronous=normal: commits survive a crash of the process (not of
  # the OS) and workflow starts take about half the time of the defaults.
  # The Web UI decodes compressed payloads (batch bodies) through the codec
  # endpoint on the METRICS_ADDR of `chatflow dev` (CODEC_PORT, 9090).
  nohup bin/temporal server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
    --db-filename "$DATA/temporal/temporal.db" --log-level warn \
    --ui-codec-endpoint "http://127.0.0.1:${CODEC_PORT:-9090}/codec" \
    --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
    >"$DATA/logs/temporal.log" 2>&1 &
  echo $! >"$DATA/temporal/pid"
  wait_for temporal 120 "$(cat "$DATA/temporal/pid")" temporal_ready 1
  log "temporal started on :$TEMPORAL_PORT (Web UI http://127.0.0.1:$TEMPORAL_UI_PORT)"
}

start_kafka() {
  mkdir -p "$DATA/kafka" "$DATA/logs"
  local pid
  if pid=$(pid_of "$DATA/kafka/pid" chatflow) && owned "kafka dev broker" "$pid" "$KAFKA_PORT"; then
    log "kafka dev broker already running on :$KAFKA_PORT"; return
  fi
  ensure_free "$KAFKA_PORT" kafka
  [[ -x bin/chatflow ]] || go build -o bin/chatflow ./cmd/chatflow
  nohup bin/chatflow kafka-broker -addr "127.0.0.1:$KAFKA_PORT" -data-dir "$DATA/kafka" \
    >"$DATA/logs/kafka.log" 2>&1 &
  echo $! >"$DATA/kafka/pid"
  wait_for kafka 40 "$(cat "$DATA/kafka/pid")" bash -c "exec 3<>/dev/tcp/127.0.0.1/$KAFKA_PORT"
  log "kafka dev broker started on :$KAFKA_PORT"
}

# The object store: Versity's S3 gateway over a directory (posix backend),
# each bucket a folder under $DATA/s3. Health: any HTTP answer on the port
# (an unsigned request gets an S3 error document).
start_s3() {
  if [[ ! -x bin/versitygw ]]; then
    log "building versitygw $VERSITYGW_VERSION into bin/ (about 1.5 minutes the first time)"
    GOBIN=$ROOT/bin go install github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION
  fi
  mkdir -p "$DATA/s3/data" "$DATA/logs"
  local pid
  if pid=$(pid_of "$DATA/s3/pid" versitygw) && owned "s3 (versitygw)" "$pid" "$S3_PORT"; then
    log "s3 (versitygw) already running on :$S3_PORT"; return
  fi
  ensure_free "$S3_PORT" "s3 (versitygw)"
  ROOT_ACCESS_KEY=$S3_ACCESS_KEY ROOT_SECRET_KEY=$S3_SECRET_KEY \
    nohup bin/versitygw --quiet --port "127.0.0.1:$S3_PORT" --cors-allow-origin '*' \
    posix "$DATA/s3/data" >"$DATA/logs/s3.log" 2>&1 &
  echo $! >"$DATA/s3/pid"
  wait_for s3 60 "$(cat "$DATA/s3/pid")" curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/"
  log "s3 (versitygw) started on :$S3_PORT (bucket folders under $DATA/s3/data)"
}

stop_pidfile() { # name, pidfile, comm
  local pid
  if pid=$(pid_of "$2" "$3") && kill "$pid" 2>/dev/null; then
    for _ in $(seq 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then log "$1 (pid $pid) is still running after 20 s"
    else log "$1 stopped"; fi
  fi
  rm -f "$2"
}

status_line() { # name, pid-or-empty
  if [[ -n $2 ]]; then log "$1: running, pid $2, listening on ${3:-$(listen_ports "$2")}"
  else log "$1: not running"; fi
}

status_all() {
  log "data: $DATA"
  if [[ -f $DATA/pg/PG_VERSION ]] && pg_run "$PGBIN/pg_ctl" -D "$DATA/pg" status >/dev/null 2>&1; then
    status_line postgres "$(sed -n 1p "$DATA/pg/postmaster.pid")" "$(sed -n 4p "$DATA/pg/postmaster.pid")"
  else status_line postgres ""; fi
  status_line redis "$(pid_of "$DATA/redis/redis.pid" redis-server || true)"
  status_line "kafka dev broker" "$(pid_of "$DATA/kafka/pid" chatflow || true)"
  status_line temporal "$(pid_of "$DATA/temporal/pid" temporal || true)"
  status_line "s3 (versitygw)" "$(pid_of "$DATA/s3/pid" versitygw || true)"
}

case ${1:-start} in
start)
  start_postgres
  start_redis
  start_kafka
  start_temporal
  start_s3
  ;;
s3)
  start_s3
  ;;
redis-cluster)
  start_redis_cluster
  ;;
redis-cluster-stop)
  stop_redis_cluster
  ;;
restart-go)
  # The two Go programs among the services, restarted with the caller's
  # environment (GOMAXPROCS, GOGC): scripts/bench-ab.sh's A_SVC_ENV/B_SVC_ENV.
  stop_pidfile kafka "$DATA/kafka/pid" chatflow
  stop_pidfile temporal "$DATA/temporal/pid" temporal
  start_kafka
  start_temporal
  ;;
stop)
  stop_redis_cluster
  stop_pidfile "s3 (versitygw)" "$DATA/s3/pid" versitygw
  stop_pidfile kafka "$DATA/kafka/pid" chatflow
  stop_pidfile temporal "$DATA/temporal/pid" temporal
  # SIGTERM: redis fsyncs the AOF and exits (it keeps no RDB: --save "").
  stop_pidfile redis "$DATA/redis/redis.pid" redis-server
  if [[ -f $DATA/pg/PG_VERSION ]]; then
    pg_run "$PGBIN/pg_ctl" -D "$DATA/pg" -m fast stop >/dev/null 2>&1 && log "postgres stopped" || true
  fi
  ;;
status)
  status_all
  ;;
diag)
  # What a failed `make test` prints, since CI keeps only the output: each
  # service's state, the end of its log, and the namespaces Temporal serves.
  status_all
  for name in temporal redis kafka postgres s3; do
    [[ -f $DATA/logs/$name.log ]] || continue
    echo "== last 30 lines of $DATA/logs/$name.log"
    tail -n 30 "$DATA/logs/$name.log" | cut -c1-400
  done
  echo "== temporal namespaces on :$TEMPORAL_PORT"
  bin/temporal operator namespace list --address "127.0.0.1:$TEMPORAL_PORT" 2>&1 |
    grep -E 'NamespaceInfo\.(Name|State)|rror' || true
  ;;
*)
  echo "usage: $0 start|stop|status|diag|s3|redis-cluster|redis-cluster-stop|restart-go" >&2; exit 2
  ;;
esac
