# Shared by the infra scripts: paths, small checks, and Kafka run from its jars (one broker in
# infra/kafka.sh, three in infra/cluster.sh, the same jars for both).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="${LEDGER_LOCAL_DIR:-$ROOT/.local}"
LOGS="$LOCAL/logs"
mkdir -p "$LOGS"

die() { echo "error: $*" >&2; exit 1; }
say() { echo "[$(basename "$0" .sh)] $*"; }

need() {  # need COMMAND "what it is for"
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2"
}

port_open() {  # port_open PORT -> 0 when something accepts TCP on 127.0.0.1:PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
  say "$what is ready"
}

pid_alive() {  # pid_alive PIDFILE -> prints the pid when that process still runs
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null && cat "$1"
}

# --- Kafka from the jars Maven fetches (infra/kafka/pom.xml) ----------------------------------

LIBS="${KAFKA_LIBS_DIR:-$LOCAL/kafka-libs}"  # private test brokers reuse the fetched jars
JAVA_HINT="install Java 17 (Debian: apt-get install openjdk-17-jre-headless)"

fetch_jars() {
  [ -f "$LIBS/.complete" ] && return
  need java "$JAVA_HINT"
  need mvn "install Maven (Debian: apt-get install maven) to fetch the Kafka jars"
  say "fetching Kafka jars with Maven into $LIBS"
  rm -rf "$LIBS"
  mvn -q -B -f "$ROOT/infra/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$LIBS" -DincludeScope=runtime >"$LOGS/maven.log" 2>&1 \
    || die "Maven could not fetch the Kafka jars; see $LOGS/maven.log"
  touch "$LIBS/.complete"
}

java_cmd() {  # java_cmd [LOG_DIR]: the java command line of a Kafka node logging to LOG_DIR
  # shellcheck disable=SC2086  # HEAP holds several options
  echo java $HEAP -XX:+UseG1GC -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$ROOT/infra/kafka/log4j2.yaml" "-Dkafka.logs.dir=${1:-$LOGS/kafka}" \
    -cp "$LIBS/*"
}

java_run() {  # java_run CLASS ARGS...: a Kafka tool in the foreground
  local cmd; read -ra cmd <<<"$(java_cmd)"
  "${cmd[@]}" "$@"
}

start_kafka_node() {  # start_kafka_node CONFIG LOG_DIR PIDFILE: kafka.Kafka in the background
  local config=$1 log_dir=$2 pidfile=$3
  mkdir -p "$log_dir"
  # Readiness is read from server.log: keep the previous run's log out of the way.
  [ -f "$log_dir/server.log" ] && mv -f "$log_dir/server.log" "$log_dir/server.log.previous"
  local cmd; read -ra cmd <<<"$(java_cmd "$log_dir")"
  nohup "${cmd[@]}" kafka.Kafka "$config" >"$log_dir/stdout.log" 2>&1 &
  echo $! >"$pidfile"
}

kafka_node_started() {  # kafka_node_started LOG_DIR -> 0 once the node logged its start
  grep -q "Kafka Server started" "$1/server.log" 2>/dev/null
}

stop_pid() {  # stop_pid PIDFILE NAME: SIGTERM, then SIGKILL after 30 s
  local pid
  if ! pid=$(pid_alive "$1"); then say "$2 not running"; rm -f "$1"; return; fi
  say "stopping $2 (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then say "$2 still running after 30s: SIGKILL"; kill -KILL "$pid"; fi
  rm -f "$1"
}
