#!/usr/bin/env bash
# `make run`: starts pricing, projector, api and webhooks in the background, sends a demo burst and
# prints the demo balances. Usage: infra/run.sh start|stop|status
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RUN="$LOCAL/run"
LEDGER="$ROOT/.venv/bin/ledger"
API_PORT="${LEDGER_API_PORT:-8000}"
ADMIN_TOKEN="${LEDGER_DEV_ADMIN_TOKEN:-dev-admin-token}"
READ_TOKEN="${LEDGER_DEV_READ_TOKEN:-dev-read-token}"
export LEDGER_API_TOKENS="${LEDGER_API_TOKENS:-$ADMIN_TOKEN:admin,$READ_TOKEN:read}"
# The dev key pair for signed money-in entries (docs/operations.md, Entry signing keys): made
# once under .local/, unless the caller names keys of their own.
KEYS="$LOCAL/entry-keys"
export LEDGER_ENTRY_SIGNING_KEY="${LEDGER_ENTRY_SIGNING_KEY:-$KEYS/entry-signing.pem}"
export LEDGER_ENTRY_VERIFY_KEYS="${LEDGER_ENTRY_VERIFY_KEYS:-$KEYS/entry-signing.pub.pem}"
mkdir -p "$RUN"

dev_keys() {
  if [ ! -f "$KEYS/entry-signing.pub.pem" ]; then
    "$LEDGER" entry-keys create "$KEYS" >/dev/null
    say "made the dev entry signing key pair in $KEYS"
  fi
}

service_pid() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null && cat "$RUN/$1.pid"; }

start_service() {
  local name=$1; shift
  if pid=$(service_pid "$name"); then say "$name already running (pid $pid)"; return; fi
  nohup "$LEDGER" serve "$name" "$@" >"$LOGS/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
  say "$name started (pid $!, log $LOGS/$name.log)"
}

api() {  # api METHOD PATH [curl args...]
  local method=$1 path=$2; shift 2
  curl -sS -X "$method" -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$API_PORT$path" "$@"
}

demo_entries() {  # total journal entries of the demo accounts, 0 for unknown accounts
  local i total=0 n
  for i in 1 2 3 4 5; do
    n=$(api GET "/v1/accounts/demo-$i/balance" | sed -n 's/.*"entries":\([0-9]*\).*/\1/p')
    total=$((total + ${n:-0}))
  done
  echo "$total"
}

demo_applied() { [ "$(demo_entries)" -ge "$1" ]; }

start() {
  dev_keys
  "$LEDGER" topics create
  "$LEDGER" migrate  # the database first (docs/operations.md, Upgrades); services would too
  start_service pricing
  start_service projector
  start_service api --port "$API_PORT"
  start_service webhooks
  wait_for 60 "API on 127.0.0.1:$API_PORT" \
    curl -sf "http://127.0.0.1:$API_PORT/readyz" -o /dev/null || die "the API did not become ready; see $LOGS/api.log"

  say "demo: a top-up of 1,000,000,000 Credits for demo-1..demo-5, then 5,000 usage events"
  local before run_id
  before=$(demo_entries)
  run_id=$(date +%s)
  for i in 1 2 3 4 5; do
    api POST "/v1/accounts/demo-$i/credits" -H "Idempotency-Key: demo-topup-$i-$run_id" \
      -H 'Content-Type: application/json' \
      -d '{"credits": 1000000000, "reason": "purchase", "reference": "make-run-demo"}' >/dev/null
  done
  "$LEDGER" loadgen --accounts 5 --events 5000 --account-prefix demo-
  wait_for 60 "projection of the demo burst" demo_applied "$((before + 5005))" \
    || say "the projection is still catching up; balances below may be partial"
  echo
  echo "balances:"
  for i in 1 2 3 4 5; do api GET "/v1/accounts/demo-$i/balance"; echo; done
  cat <<TXT

API:     http://127.0.0.1:$API_PORT  (OpenAPI: http://127.0.0.1:$API_PORT/docs)
dashboard: http://127.0.0.1:$API_PORT/dashboard  (enter a token below; account demo-1)
tokens:  admin "$ADMIN_TOKEN", read "$READ_TOKEN"
try:     curl -H 'Authorization: Bearer $READ_TOKEN' http://127.0.0.1:$API_PORT/v1/accounts/demo-1/balance
stop:    make stop (services) or make down (services, Kafka and PostgreSQL)
TXT
}

stop() {
  local name pid
  for name in webhooks api projector pricing; do
    if pid=$(service_pid "$name"); then
      kill -TERM "$pid"
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      say "$name stopped"
    fi
    rm -f "$RUN/$name.pid"
  done
}

status() {
  local name
  for name in pricing projector api webhooks; do
    if pid=$(service_pid "$name"); then echo "$name: running (pid $pid)"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  start) start ;; stop) stop ;; status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
