# Shared by infra/kafka.sh and infra/postgres.sh: paths and small checks.
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
