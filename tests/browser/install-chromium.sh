#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/browser): Playwright drives it, and its own
# browser download is never used. Idempotent: returns at once when Chromium is there.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0

if ! command -v apt-get >/dev/null; then
	echo "error: $CHROMIUM is missing and there is no apt-get: install Chromium there" >&2
	exit 1
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "error: installing Chromium needs root (or sudo)" >&2; exit 1; }
	as_root=(sudo)
fi
echo "installing Debian's chromium for the browser tests"
"${as_root[@]}" apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
