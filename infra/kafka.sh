#!/usr/bin/env bash
# Runs a real single-node Apache Kafka 4.x broker (KRaft) from jars fetched with Maven.
# Usage: infra/kafka.sh start|stop|status|fetch (fetch: only the jars, e.g. for a test that
# runs a private broker when `make up` reused a broker that was already running)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
DATA="$LOCAL/kafka-data"
CONF="$LOCAL/kafka-server.properties"
PIDFILE="$LOCAL/kafka.pid"
HEAP="${KAFKA_HEAP:--Xms256m -Xmx768m}"

running_pid() { pid_alive "$PIDFILE"; }

format_storage() {
  [ -f "$DATA/meta.properties" ] && return
  mkdir -p "$DATA" "$LOGS/kafka"
  local cluster_id
  cluster_id=$(java_run kafka.tools.StorageTool random-uuid)
  java_run kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$CONF" \
    >"$LOGS/kafka-format.log" 2>&1 || die "formatting Kafka storage failed; see $LOGS/kafka-format.log"
}

start() {
  if pid=$(running_pid); then say "already running (pid $pid) on 127.0.0.1:$PORT"; return; fi
  if port_open "$PORT"; then say "something already listens on 127.0.0.1:$PORT: reusing it as Kafka"; return; fi
  port_open "$CONTROLLER_PORT" && die "port $CONTROLLER_PORT (Kafka controller) is busy"
  need java "$JAVA_HINT"
  fetch_jars
  mkdir -p "$LOGS/kafka"
  sed -e "s#@DATA_DIR@#$DATA#" -e "s#@PORT@#$PORT#" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#" \
    "$ROOT/infra/kafka/server.properties.in" >"$CONF"
  format_storage
  say "starting Kafka on 127.0.0.1:$PORT (logs in $LOGS/kafka)"
  start_kafka_node "$CONF" "$LOGS/kafka" "$PIDFILE"
  wait_for "${KAFKA_START_TIMEOUT:-90}" "Kafka on 127.0.0.1:$PORT" broker_ready || {
    tail -20 "$LOGS/kafka/stdout.log" "$LOGS/kafka/server.log" 2>/dev/null >&2
    die "Kafka did not become ready within ${KAFKA_START_TIMEOUT:-90}s"
  }
}

broker_ready() {
  running_pid >/dev/null || { tail -20 "$LOGS/kafka/stdout.log" >&2; die "Kafka exited during start"; }
  port_open "$PORT" && kafka_node_started "$LOGS/kafka"
}

stop() { stop_pid "$PIDFILE" Kafka; }

status() {
  if pid=$(running_pid); then echo "kafka: running (pid $pid) on 127.0.0.1:$PORT"
  elif port_open "$PORT"; then echo "kafka: something else answers on 127.0.0.1:$PORT"
  else echo "kafka: stopped"; return 1; fi
}

case "${1:-}" in
  start) start ;; stop) stop ;; status) status ;; fetch) fetch_jars ;;
  *) echo "usage: $0 start|stop|status|fetch" >&2; exit 2 ;;
esac
