#!/usr/bin/env bash
# Outside tools the test suite drives, installed from Debian's packages when run as root:
#   kcat   an independent Kafka client: the tests check that operators' standard tools reach
#          the broker with `deploy/local-stack.sh client-config` (and nothing else does).
# Elsewhere it says what is missing; the tests that need it then skip (fail under CI=true).
set -euo pipefail

PACKAGES=(kcat)
missing=()
for package in "${PACKAGES[@]}"; do
  command -v "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "[test-tools] installing Debian packages: ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } \
    || { echo "[test-tools] could not install: ${missing[*]}" >&2; exit 1; }
else
  echo "[test-tools] not installed (install them, or run as root): ${missing[*]}" >&2
fi
