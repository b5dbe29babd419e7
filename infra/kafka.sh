#!/usr/bin/env bash
# Runs a real single-node Apache Kafka 4.x broker (KRaft) from jars fetched with Maven.
# Usage: infra/kafka.sh start|stop|status|fetch (fetch: only the jars, e.g. for a test that
# runs a private broker when `make up` reused a broker that was already running)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
LIBS="${KAFKA_LIBS_DIR:-$LOCAL/kafka-libs}"  # private test brokers reuse the fetched jars
DATA="$LOCAL/kafka-data"
CONF="$LOCAL/kafka-server.properties"
PIDFILE="$LOCAL/kafka.pid"
HEAP="${KAFKA_HEAP:--Xms256m -Xmx768m}"

running_pid() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && cat "$PIDFILE"
}

fetch_jars() {
  [ -f "$LIBS/.complete" ] && return
  need java "install Java 17 (Debian: apt-get install openjdk-17-jre-headless)"
  need mvn "install Maven (Debian: apt-get install maven) to fetch the Kafka jars"
  say "fetching Kafka jars with Maven into $LIBS"
  rm -rf "$LIBS"
  mvn -q -B -f "$ROOT/infra/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$LIBS" -DincludeScope=runtime >"$LOGS/maven.log" 2>&1 \
    || die "Maven could not fetch the Kafka jars; see $LOGS/maven.log"
  touch "$LIBS/.complete"
}

java_cmd() {
  # shellcheck disable=SC2086  # HEAP holds several options
  echo java $HEAP -XX:+UseG1GC -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$ROOT/infra/kafka/log4j2.yaml" "-Dkafka.logs.dir=$LOGS/kafka" \
    -cp "$LIBS/*"
}

java_run() {
  local cmd; read -ra cmd <<<"$(java_cmd)"
  "${cmd[@]}" "$@"
}

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
  need java "install Java 17 (Debian: apt-get install openjdk-17-jre-headless)"
  fetch_jars
  mkdir -p "$LOGS/kafka"
  sed -e "s#@DATA_DIR@#$DATA#" -e "s#@PORT@#$PORT#" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#" \
    "$ROOT/infra/kafka/server.properties.in" >"$CONF"
  format_storage
  say "starting Kafka on 127.0.0.1:$PORT (logs in $LOGS/kafka)"
  # Readiness is read from server.log: keep the previous run's log out of the way.
  [ -f "$LOGS/kafka/server.log" ] && mv -f "$LOGS/kafka/server.log" "$LOGS/kafka/server.log.previous"
  local cmd; read -ra cmd <<<"$(java_cmd)"
  nohup "${cmd[@]}" kafka.Kafka "$CONF" >"$LOGS/kafka/stdout.log" 2>&1 &
  echo $! >"$PIDFILE"
  wait_for "${KAFKA_START_TIMEOUT:-90}" "Kafka on 127.0.0.1:$PORT" broker_ready || {
    tail -20 "$LOGS/kafka/stdout.log" "$LOGS/kafka/server.log" 2>/dev/null >&2
    die "Kafka did not become ready within ${KAFKA_START_TIMEOUT:-90}s"
  }
}

broker_ready() {
  running_pid >/dev/null || { tail -20 "$LOGS/kafka/stdout.log" >&2; die "Kafka exited during start"; }
  port_open "$PORT" && grep -q "Kafka Server started" "$LOGS/kafka/server.log" 2>/dev/null
}

stop() {
  local pid
  if ! pid=$(running_pid); then say "not running"; rm -f "$PIDFILE"; return; fi
  say "stopping Kafka (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then say "still running after 30s: SIGKILL"; kill -KILL "$pid"; fi
  rm -f "$PIDFILE"
}

status() {
  if pid=$(running_pid); then echo "kafka: running (pid $pid) on 127.0.0.1:$PORT"
  elif port_open "$PORT"; then echo "kafka: something else answers on 127.0.0.1:$PORT"
  else echo "kafka: stopped"; return 1; fi
}

case "${1:-}" in
  start) start ;; stop) stop ;; status) status ;; fetch) fetch_jars ;;
  *) echo "usage: $0 start|stop|status|fetch" >&2; exit 2 ;;
esac
