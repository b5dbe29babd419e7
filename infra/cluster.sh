#!/usr/bin/env bash
# Three Apache Kafka 4.x brokers on 127.0.0.1 from the jars infra/kafka.sh runs: KRaft
# combined nodes (broker and controller) forming one controller quorum, for trials and fault
# tests. Internal topics are replicated three times with min ISR 2, as the ledger's topics
# are with LEDGER_REPLICATION_FACTOR=3 (docs/operations.md).
# Usage: infra/cluster.sh start|stop|status|bootstrap|cafile|kill NODE|acls [PREFIX]|credentials NAME
#   start      starts every node that is not running (again, after `kill`) and waits for all
#   kill NODE  SIGKILLs one node (1, 2 or 3): a broker fault for tests; `start` brings it back
#   cafile     prints the CA file clients need with KAFKA_CLUSTER_TLS=1 (KAFKA_SSL_CAFILE)
#   acls [PREFIX]     with KAFKA_CLUSTER_ACLS=1: creates the components' ACLs for a topic
#                     prefix (default LEDGER_TOPIC_PREFIX); `start` does it for that prefix
#   credentials NAME  prints the KAFKA_* settings a user (ledger-pricing, ...) runs with
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NODES="${KAFKA_CLUSTER_NODES:-3}"
FIRST_PORT="${KAFKA_CLUSTER_PORT:-19092}"
FIRST_CONTROLLER_PORT="${KAFKA_CLUSTER_CONTROLLER_PORT:-19192}"
# "name:password ..." turns the client listener into SASL_PLAINTEXT with SCRAM-SHA-256 and
# SCRAM-SHA-512; the users are written at format time and the first one speaks between nodes.
SCRAM_USERS="${KAFKA_CLUSTER_SCRAM_USERS:-}"
# 1: the client listener speaks TLS (SSL, or SASL_SSL with SCRAM users), with a certificate
# for 127.0.0.1 signed by a CA made for this cluster (`cafile` prints where it is).
TLS="${KAFKA_CLUSTER_TLS:-0}"
# 1: StandardAuthorizer with one SCRAM principal per component (ledger-pricing, ...), each
# allowed only what it needs (services/common/kafka_acls.py, docs/operations.md); the first user is the brokers'
# own and the only super user. Without KAFKA_CLUSTER_SCRAM_USERS, users are made once with
# random passwords and kept in .local/cluster/scram-users (`credentials NAME` prints them).
ACLS="${KAFKA_CLUSTER_ACLS:-0}"
COMPONENTS="pricing projector api webhooks gateway audit"
HEAP="${KAFKA_HEAP:--Xms128m -Xmx384m}"
HOME_DIR="$LOCAL/cluster"
TIMEOUT="${KAFKA_START_TIMEOUT:-120}"

[[ "$ACLS" =~ ^[01]$ ]] || die "KAFKA_CLUSTER_ACLS must be 0 or 1, not '$ACLS'"
[[ "$NODES" =~ ^[1-9]$ ]] || die "KAFKA_CLUSTER_NODES must be 1 to 9, not '$NODES'"
REPLICAS=$((NODES < 3 ? NODES : 3))
MIN_ISR=$((NODES < 2 ? NODES : 2))

TLS_DIR="$HOME_DIR/tls"
USERS_FILE="$HOME_DIR/scram-users"

generated_users() {  # the admin and one user per component, random passwords, made once
  if [ ! -f "$USERS_FILE" ]; then
    mkdir -p "$HOME_DIR"
    local name
    (umask 077; for name in admin $COMPONENTS; do
      echo "ledger-$name:$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    done >"$USERS_FILE")
  fi
  tr '\n' ' ' <"$USERS_FILE"
}
if [ "$ACLS" = 1 ] && [ -z "$SCRAM_USERS" ]; then SCRAM_USERS=$(generated_users); fi
node_dir() { echo "$HOME_DIR/node-$1"; }
port() { echo $((FIRST_PORT + $1 - 1)); }
controller_port() { echo $((FIRST_CONTROLLER_PORT + $1 - 1)); }
node_pid() { pid_alive "$(node_dir "$1")/kafka.pid"; }
all_nodes() { seq 1 "$NODES"; }

bootstrap() {
  local n servers=()
  for n in $(all_nodes); do servers+=("127.0.0.1:$(port "$n")"); done
  (IFS=,; echo "${servers[*]}")
}

quorum() {
  local n servers=()
  for n in $(all_nodes); do servers+=("127.0.0.1:$(controller_port "$n")"); done
  (IFS=,; echo "${servers[*]}")
}

write_config() {  # write_config NODE
  local n=$1 dir protocol
  dir=$(node_dir "$n")
  protocol=$(client_protocol)
  mkdir -p "$dir/data" "$dir/logs"
  cat >"$dir/server.properties" <<PROPERTIES
# Written by infra/cluster.sh: node $n of $NODES.
process.roles=broker,controller
node.id=$n
controller.quorum.bootstrap.servers=$(quorum)
listeners=CLIENT://127.0.0.1:$(port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n")
advertised.listeners=CLIENT://127.0.0.1:$(port "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
listener.security.protocol.map=CONTROLLER:$(controller_protocol),CLIENT:$protocol
log.dirs=$dir/data

offsets.topic.replication.factor=$REPLICAS
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=$REPLICAS
transaction.state.log.min.isr=$MIN_ISR
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=$REPLICAS
share.coordinator.state.topic.min.isr=$MIN_ISR
default.replication.factor=$REPLICAS
min.insync.replicas=$MIN_ISR
unclean.leader.election.enable=false

num.partitions=6
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
log.retention.hours=168
message.max.bytes=2097152
num.network.threads=2
num.io.threads=2
PROPERTIES
  [ -n "$SCRAM_USERS" ] && write_sasl_config "$dir/server.properties"
  [ "$TLS" = 1 ] && write_tls_config "$dir/server.properties"
  [ "$ACLS" = 1 ] && write_acl_config "$dir/server.properties"
  return 0
}

controller_protocol() {
  if [ "$ACLS" = 1 ]; then echo SASL_PLAINTEXT; else echo PLAINTEXT; fi
}

write_acl_config() {  # write_acl_config FILE: the authorizer; nodes speak as the first user
  [ -n "$SCRAM_USERS" ] || die "KAFKA_CLUSTER_ACLS=1 needs SCRAM users"
  local first=${SCRAM_USERS%% *} login
  # Controllers cannot read SCRAM users before their metadata is loaded: between nodes the
  # controller listener uses PLAIN with the first user, so no anonymous principal is trusted.
  login="org.apache.kafka.common.security.plain.PlainLoginModule required"
  login+=" username=\"${first%%:*}\" password=\"${first#*:}\" user_${first%%:*}=\"${first#*:}\";"
  cat >>"$1" <<PROPERTIES

authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:${first%%:*}
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=$login
PROPERTIES
}

user_password() {  # user_password NAME
  local user
  for user in $SCRAM_USERS; do
    [ "${user%%:*}" = "$1" ] && { echo "${user#*:}"; return; }
  done
  die "no SCRAM user '$1' on this cluster (users: $(user_names | sed 's/ $//'))"
}

user_names() { local user; for user in $SCRAM_USERS; do printf '%s ' "${user%%:*}"; done; }

credentials() {  # credentials NAME: the settings a component runs with on this cluster
  local name=${1:?usage: $0 credentials NAME} password
  password=$(user_password "$name") || exit 1
  echo "KAFKA_BOOTSTRAP_SERVERS=$(bootstrap)"
  echo "KAFKA_SECURITY_PROTOCOL=$(client_protocol)"
  echo "KAFKA_SASL_MECHANISM=SCRAM-SHA-256"
  echo "KAFKA_SASL_USERNAME=$name"
  echo "KAFKA_SASL_PASSWORD=$password"
  [ "$TLS" = 1 ] && echo "KAFKA_SSL_CAFILE=$TLS_DIR/ca.pem"
  return 0
}

grant_acls() {  # grant_acls [PREFIX]: services/common/kafka_acls.py as the cluster's admin
  [ "$ACLS" = 1 ] || die "the cluster runs without ACLs (KAFKA_CLUSTER_ACLS=1 starts it with them)"
  local python="$ROOT/.venv/bin/python" first=${SCRAM_USERS%% *}
  [ -x "$python" ] || die "no $python: run make install first"
  (
    # shellcheck disable=SC2046  # one KEY=value per line, none with spaces
    export $(credentials "${first%%:*}")
    cd "$ROOT" && "$python" -m services.common.kafka_acls "${1-${LEDGER_TOPIC_PREFIX:-}}"
  ) || die "creating the ACLs failed"
}

client_protocol() {
  case "$TLS:${SCRAM_USERS:+sasl}" in
    0:) echo PLAINTEXT ;; 0:sasl) echo SASL_PLAINTEXT ;; 1:) echo SSL ;; 1:sasl) echo SASL_SSL ;;
    *) die "KAFKA_CLUSTER_TLS must be 0 or 1, not '$TLS'" ;;
  esac
}

make_certificates() {  # once per cluster: a CA, and a certificate for 127.0.0.1 it signed
  [ -f "$TLS_DIR/broker.p12" ] && return
  need openssl "install OpenSSL to make the cluster's TLS certificates"
  mkdir -p "$TLS_DIR"
  local log="$TLS_DIR/openssl.log"
  {
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=ledger cluster CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
      -keyout "$TLS_DIR/broker.key" -out "$TLS_DIR/broker.csr"
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth,clientAuth" "authorityKeyIdentifier=keyid,issuer" >"$TLS_DIR/broker.ext"
    openssl x509 -req -days 365 -in "$TLS_DIR/broker.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
      -CAcreateserial -extfile "$TLS_DIR/broker.ext" -out "$TLS_DIR/broker.pem"
    openssl rand -hex 16 >"$TLS_DIR/keystore.password"
    openssl pkcs12 -export -name broker -in "$TLS_DIR/broker.pem" -inkey "$TLS_DIR/broker.key" \
      -passout "file:$TLS_DIR/keystore.password" -out "$TLS_DIR/broker.p12"
  } >"$log" 2>&1 || die "making the TLS certificates failed; see $log"
}

write_tls_config() {  # write_tls_config FILE: the node's certificate, and the CA it trusts
  local password
  password=$(cat "$TLS_DIR/keystore.password")
  cat >>"$1" <<PROPERTIES

ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS_DIR/broker.p12
ssl.keystore.password=$password
ssl.key.password=$password
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
PROPERTIES
}

write_sasl_config() {  # write_sasl_config FILE: SCRAM on the client (and inter-node) listener
  local first=${SCRAM_USERS%% *} mechanism login
  login="org.apache.kafka.common.security.scram.ScramLoginModule required"
  login+=" username=\"${first%%:*}\" password=\"${first#*:}\";"
  printf '\n%s\n%s\n' "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512" \
    "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256" >>"$1"
  # Every enabled mechanism needs its login on the listener, even if only one speaks between nodes.
  for mechanism in scram-sha-256 scram-sha-512; do
    echo "listener.name.client.$mechanism.sasl.jaas.config=$login" >>"$1"
  done
}

scram_options() {  # one --add-scram per user and mechanism, for StorageTool format
  local user
  for user in $SCRAM_USERS; do
    [[ "$user" == *:* ]] || die "KAFKA_CLUSTER_SCRAM_USERS: '$user' is not name:password"
    echo "--add-scram"; echo "SCRAM-SHA-256=[name=${user%%:*},password=${user#*:}]"
    echo "--add-scram"; echo "SCRAM-SHA-512=[name=${user%%:*},password=${user#*:}]"
  done
}

random_uuid() {  # what `StorageTool random-uuid` prints (16 random bytes, base64url), no JVM
  head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='
}

cluster_ids() {  # one cluster id and a metadata directory id per node, made once and kept
  [ -f "$HOME_DIR/cluster.id" ] || random_uuid >"$HOME_DIR/cluster.id"
  local n
  for n in $(all_nodes); do
    [ -f "$(node_dir "$n")/directory.id" ] || random_uuid >"$(node_dir "$n")/directory.id"
  done
}

initial_controllers() {  # 1@127.0.0.1:19192:<directory id>,2@...
  local n voters=()
  for n in $(all_nodes); do
    voters+=("$n@127.0.0.1:$(controller_port "$n"):$(cat "$(node_dir "$n")/directory.id")")
  done
  (IFS=,; echo "${voters[*]}")
}

format_node() {  # format_node NODE: once, with every node of the quorum named
  local n=$1 dir extra=()
  dir=$(node_dir "$n")
  [ -f "$dir/data/meta.properties" ] && return
  mapfile -t extra < <(scram_options)
  java_run kafka.tools.StorageTool format -t "$(cat "$HOME_DIR/cluster.id")" -c "$dir/server.properties" \
    --initial-controllers "$(initial_controllers)" "${extra[@]}" >"$dir/logs/format.log" 2>&1 \
    || die "formatting node $n failed; see $dir/logs/format.log"
}

start_node() {  # start_node NODE
  local n=$1 dir
  dir=$(node_dir "$n")
  if port_open "$(port "$n")" || port_open "$(controller_port "$n")"; then
    die "node $n: port $(port "$n") or $(controller_port "$n") is taken by another program"
  fi
  format_node "$n"
  start_kafka_node "$dir/server.properties" "$dir/logs" "$dir/kafka.pid"
  say "node $n starting on 127.0.0.1:$(port "$n") (pid $(cat "$dir/kafka.pid"), logs in $dir/logs)"
}

nodes_ready() {
  local n
  for n in $(all_nodes); do
    node_pid "$n" >/dev/null || {
      grep -h -A1 ERROR "$(node_dir "$n")"/logs/{stdout,server}.log 2>/dev/null | tail -8 >&2
      die "node $n exited during start (logs in $(node_dir "$n")/logs)"
    }
    port_open "$(port "$n")" && kafka_node_started "$(node_dir "$n")/logs" || return 1
  done
}

start() {
  need java "$JAVA_HINT"
  fetch_jars
  mkdir -p "$HOME_DIR"
  local n started=0
  [ "$TLS" = 1 ] && make_certificates
  for n in $(all_nodes); do write_config "$n"; done
  cluster_ids
  # Formatting starts a JVM per node: all at once (start_node formats only what is not yet).
  local formats=()
  for n in $(all_nodes); do
    node_pid "$n" >/dev/null || { format_node "$n" & formats+=($!); }
  done
  for pid in "${formats[@]}"; do wait "$pid" || die "formatting a node failed"; done
  for n in $(all_nodes); do
    if pid=$(node_pid "$n"); then continue; fi
    start_node "$n"
    started=$((started + 1))
  done
  # A node's start completes only once a majority of the quorum answers: wait for all at once.
  wait_for "$TIMEOUT" "Kafka cluster on $(bootstrap)" nodes_ready || {
    for n in $(all_nodes); do tail -5 "$(node_dir "$n")/logs/server.log" 2>/dev/null >&2; done
    die "the cluster did not become ready within ${TIMEOUT}s (KAFKA_START_TIMEOUT)"
  }
  [ "$started" -gt 0 ] || say "already running on $(bootstrap)"
  if [ "$ACLS" = 1 ]; then
    say "ACLs for topic prefix '${LEDGER_TOPIC_PREFIX:-}': $(grant_acls)"
    say "principals: $(user_names)(infra/cluster.sh credentials NAME prints one's settings)"
  fi
}

stop() {
  # All at once: a node stopped last would otherwise wait for a quorum that has gone.
  local n
  for n in $(all_nodes); do stop_pid "$(node_dir "$n")/kafka.pid" "node $n" & done
  wait
}

kill_node() {  # kill_node NODE: SIGKILL, no controlled shutdown
  local n=${1:?usage: $0 kill NODE} pid
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le "$NODES" ] || die "no node '$n' (1..$NODES)"
  pid=$(node_pid "$n") || die "node $n is not running"
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$(node_dir "$n")/kafka.pid"
  say "node $n (pid $pid) killed"
}

status() {
  local n down=0
  for n in $(all_nodes); do
    if pid=$(node_pid "$n"); then echo "cluster node $n: running (pid $pid) on 127.0.0.1:$(port "$n")"
    else echo "cluster node $n: stopped"; down=1; fi
  done
  return "$down"
}

case "${1:-}" in
  start) start ;; stop) stop ;; status) status ;; bootstrap) bootstrap ;;
  cafile) echo "$TLS_DIR/ca.pem" ;; kill) kill_node "${2:-}" ;;
  acls) grant_acls "${@:2}" ;; credentials) credentials "${2:-}" ;;
  *) echo "usage: $0 start|stop|status|bootstrap|cafile|kill NODE|acls [PREFIX]|credentials NAME" >&2
     exit 2 ;;
esac
