#!/usr/bin/env bash
# The Docker path: used by `make up`/`make down` only when a Docker engine answers.
# Usage: infra/docker.sh available|up|down
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  available) command -v docker >/dev/null 2>&1 && timeout 5 docker info >/dev/null 2>&1 ;;
  up) docker compose up -d --wait kafka postgres ;;
  down) docker compose down ;;
  *) echo "usage: $0 available|up|down" >&2; exit 2 ;;
esac
