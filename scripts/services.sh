#!/usr/bin/env bash
# Installs (when missing) and starts the local services chatflow needs, each on
# a project port with its data under .data/. Idempotent: a running service is
# left alone. Usage: scripts/services.sh start|stop|status
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DATA=$ROOT/.data
PG_PORT=${PG_PORT:-55432}
REDIS_PORT=${REDIS_PORT:-56379}
TEMPORAL_PORT=${TEMPORAL_PORT:-7233}
TEMPORAL_UI_PORT=${TEMPORAL_UI_PORT:-8233}
KAFKA_PORT=${KAFKA_PORT:-59092}
PG_VERSION=15
PGBIN=/usr/lib/postgresql/$PG_VERSION/bin

log() { printf '[services] %s\n' "$*"; }

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

wait_for() { # name, tries, command...
  local name=$1 tries=$2; shift 2
  for ((i = 0; i < tries; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "$name did not come up; see $DATA/logs"; return 1
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
    log "postgres already running on :$PG_PORT"
  else
    [[ $(id -u) -eq 0 ]] && touch "$DATA/logs/postgres.log" && chown postgres "$DATA/logs/postgres.log"
    pg_run "$PGBIN/pg_ctl" -D "$DATA/pg" -l "$DATA/logs/postgres.log" -w -o \
      "-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on -c synchronous_commit=on -c shared_buffers=256MB" start >/dev/null
    log "postgres started on :$PG_PORT"
  fi
  wait_for postgres 40 "$PGBIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT"
  if ! "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "select 1 from pg_database where datname='chatflow'" | grep -q 1; then
    "$PGBIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres chatflow
  fi
}

start_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p "$DATA/redis" "$DATA/logs"
  if redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
    log "redis already running on :$REDIS_PORT"; return
  fi
  # AOF so that room seq counters survive a restart.
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DATA/redis" --appendonly yes \
    --appendfsync everysec --daemonize yes --pidfile "$DATA/redis/redis.pid" \
    --logfile "$DATA/logs/redis.log" --save "" --maxclients 20000
  # redis-cli exits 0 on error replies too (LOADING while the AOF replays): want PONG
  wait_for redis 600 bash -c "redis-cli -p $REDIS_PORT ping | grep -q PONG"
  log "redis started on :$REDIS_PORT"
}

start_temporal() {
  if [[ ! -x bin/temporal ]]; then
    log "building the temporal CLI v1.5.1 into bin/ (a few minutes the first time)"
    GOBIN=$ROOT/bin go install github.com/temporalio/cli/cmd/temporal@v1.5.1
  fi
  mkdir -p "$DATA/temporal" "$DATA/logs"
  if bin/temporal operator cluster health --address "127.0.0.1:$TEMPORAL_PORT" >/dev/null 2>&1; then
    log "temporal already running on :$TEMPORAL_PORT"; return
  fi
  # WAL + synchronous=normal: commits survive a crash of the process (not of
  # the OS) and workflow starts take about half the time of the defaults.
  nohup bin/temporal server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
    --db-filename "$DATA/temporal/temporal.db" --log-level warn \
    --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
    >"$DATA/logs/temporal.log" 2>&1 &
  echo $! >"$DATA/temporal/pid"
  wait_for temporal 120 bin/temporal operator cluster health --address "127.0.0.1:$TEMPORAL_PORT"
  log "temporal started on :$TEMPORAL_PORT (Web UI http://127.0.0.1:$TEMPORAL_UI_PORT)"
}

start_kafka() {
  mkdir -p "$DATA/kafka" "$DATA/logs"
  if (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null; then
    log "kafka dev broker already running on :$KAFKA_PORT"; return
  fi
  [[ -x bin/chatflow ]] || go build -o bin/chatflow ./cmd/chatflow
  nohup bin/chatflow kafka-broker -addr "127.0.0.1:$KAFKA_PORT" -data-dir "$DATA/kafka" \
    >"$DATA/logs/kafka.log" 2>&1 &
  echo $! >"$DATA/kafka/pid"
  wait_for kafka 40 bash -c "exec 3<>/dev/tcp/127.0.0.1/$KAFKA_PORT"
  log "kafka dev broker started on :$KAFKA_PORT"
}

stop_pidfile() { # name, pidfile
  if [[ -f $2 ]] && kill "$(cat "$2")" 2>/dev/null; then
    for _ in $(seq 40); do kill -0 "$(cat "$2")" 2>/dev/null || break; sleep 0.25; done
    log "$1 stopped"
  fi
  rm -f "$2"
}

case ${1:-start} in
start)
  start_postgres
  start_redis
  start_kafka
  start_temporal
  ;;
stop)
  stop_pidfile kafka "$DATA/kafka/pid"
  stop_pidfile temporal "$DATA/temporal/pid"
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 && log "redis stopped" || true
  if [[ -f $DATA/pg/PG_VERSION ]]; then
    pg_run "$PGBIN/pg_ctl" -D "$DATA/pg" -m fast stop >/dev/null 2>&1 && log "postgres stopped" || true
  fi
  ;;
*)
  echo "usage: $0 start|stop" >&2; exit 2
  ;;
esac
