#!/usr/bin/env bash
# Runs a PostgreSQL cluster of the installed binaries on 127.0.0.1, with a database `ledger`.
# Usage: infra/postgres.sh start|stop|status
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PORT="${PGPORT:-5432}"
DB="${LEDGER_DB_NAME:-ledger}"

# As root the cluster belongs to the `postgres` user, which must be able to reach its folder;
# a clone inside a private (0700) folder cannot give it that, so the cluster then lives in
# a folder of its own under /var/tmp, named after this checkout.
cluster_home() {
  if [ "$(id -u)" != 0 ] || runuser -u postgres -- test -x "$LOCAL" 2>/dev/null; then
    echo "$LOCAL/postgres"
  else
    echo "/var/tmp/ledger-postgres-$(echo "$LOCAL" | md5sum | cut -c1-12)"
  fi
}
HOME_DIR="$(cluster_home)"
DATA="$HOME_DIR/data"
SOCK="$HOME_DIR/run"
LOG="$HOME_DIR/postgres.log"

find_bin() {
  local dir
  for dir in "${PG_BINDIR:-}" $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && { echo "$dir"; return; }
  done
  command -v pg_ctl >/dev/null 2>&1 && { dirname "$(command -v pg_ctl)"; return; }
  die "PostgreSQL server binaries (pg_ctl, initdb) not found: apt-get install postgresql, or set PG_BINDIR"
}
BIN="$(find_bin)"

# PostgreSQL refuses to run as root: as root, run the cluster as the `postgres` user.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user to own the cluster"
    # From /: the postgres user may not be allowed into the caller's folder.
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

psql_cmd() { "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -X -q -v ON_ERROR_STOP=1 "$@"; }

init_cluster() {
  [ -f "$DATA/PG_VERSION" ] && return
  say "creating a cluster in $DATA"
  mkdir -p "$DATA" "$SOCK"
  [ "$(id -u)" = 0 ] && chown -R postgres: "$HOME_DIR"
  chmod 700 "$DATA"
  as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    >"$LOGS/initdb.log" 2>&1 || die "initdb failed; see $LOGS/initdb.log"
  cat >>"$DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
max_connections = 200
shared_buffers = 512MB
wal_buffers = 16MB
max_wal_size = 4GB
checkpoint_timeout = 15min
CONF
}

ready() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; }

ensure_database() {
  psql_cmd -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 \
    || psql_cmd -d postgres -c "CREATE DATABASE \"$DB\"" \
    || die "could not create database $DB on 127.0.0.1:$PORT"
}

start() {
  if ready; then
    say "PostgreSQL already answers on 127.0.0.1:$PORT: reusing it"
  else
    port_open "$PORT" && die "port $PORT is busy but no PostgreSQL answers there"
    init_cluster
    mkdir -p "$SOCK"; [ "$(id -u)" = 0 ] && chown postgres: "$SOCK"
    say "starting PostgreSQL on 127.0.0.1:$PORT (log $LOG)"
    as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t "${PG_START_TIMEOUT:-60}" start >/dev/null \
      || { tail -20 "$LOG" >&2; die "PostgreSQL did not start; see $LOG"; }
    wait_for 30 "PostgreSQL on 127.0.0.1:$PORT" ready || die "PostgreSQL does not answer on $PORT"
  fi
  ensure_database
}

stop() {
  if [ -f "$DATA/postmaster.pid" ]; then
    say "stopping PostgreSQL"
    as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
  else
    say "not running"
  fi
}

status() {
  if ready; then echo "postgres: running on 127.0.0.1:$PORT"; else echo "postgres: stopped"; return 1; fi
}

case "${1:-}" in
  start) start ;; stop) stop ;; status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
