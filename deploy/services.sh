#!/usr/bin/env bash
# Run the six services as separate OS processes against the local stack, and the portal (the
# web front end: no database, no Kafka; it calls the services over HTTP) in front of them.
#   deploy/services.sh start|stop|status
# Ports: portal 8000, onboarding 8001, deals 8002, attribution 8003, incentives 8004, notifications 8005,
# programme 8006: HTTP_PORT_BASE (default 8000) moves them all, so a second stack
# (POLLINATE_WORK_DIR, KAFKA_PORT, PG_PORT: see local-stack.sh) can run its own services beside.
# Logs in the stack's work folder (.work/services/ by default).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="${POLLINATE_WORK_DIR:-$ROOT/.work}/services"
PY="$ROOT/.venv/bin/python"
BASE="${HTTP_PORT_BASE:-8000}"
declare -A PORTS=([onboarding]=$((BASE + 1)) [deals]=$((BASE + 2)) [attribution]=$((BASE + 3))
  [incentives]=$((BASE + 4)) [notifications]=$((BASE + 5)) [programme]=$((BASE + 6)))
eval "$("$ROOT/deploy/local-stack.sh" env)"
mkdir -p "$RUN"
cd "$ROOT"

# shellcheck source=deploy/alive.sh
. "$ROOT/deploy/alive.sh"
# Ours: alive and running that service's module (a pid file left by a reboot may name another
# process by now, which `stop` must not signal).
running() { [ -f "$RUN/$1.pid" ] && alive "$(cat "$RUN/$1.pid")" "services.$1"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# The service answers ready on its port (the venv's Python: curl may not be installed).
ready() {
  "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "http://127.0.0.1:$1/health/ready" >/dev/null 2>&1
}

# The stack's database (host:port/db) as each service's two roles: the owner migrates the
# schema before the service starts; the service runs as its runtime role.
DB="${POLLINATE_ADMIN_DATABASE_URL#*@}"

start() {
  # Another stack's services on these ports would answer our readiness probes and the demo,
  # with keys that are not ours: found out here, not as 401s later.
  for svc in "${!PORTS[@]}" portal; do
    if ! running "$svc" && port_open "$(port_of "$svc")"; then
      echo "port $(port_of "$svc") ($svc) is taken by another process: set HTTP_PORT_BASE (now $BASE) to move the services' ports" >&2
      exit 1
    fi
  done
  for svc in "${!PORTS[@]}"; do
    if running "$svc"; then echo "$svc already running"; continue; fi
    MIGRATION_DATABASE_URL="postgresql://${svc}_owner:${svc}_owner@$DB" "$PY" -m "services.$svc" migrate \
      >>"$RUN/$svc.log" 2>&1 || { echo "$svc: migrations failed: see $RUN/$svc.log" >&2; exit 1; }
    # setsid + all three streams redirected: the service outlives this script and holds
    # none of the caller's pipes open.
    # Each service reaches Kafka as its own principal (only the topics it is granted).
    KAFKA_SASL_USERNAME="$svc" KAFKA_SASL_PASSWORD="$(cat "$POLLINATE_KAFKA_CREDENTIALS/$svc")" \
    DATABASE_URL="postgresql://${svc}_svc:${svc}_svc@$DB" \
    TOKEN_SIGNING_KEY="$([ "$svc" = onboarding ] && printf '%s' "$TOKEN_SIGNING_KEY")" \
    HTTP_PORT="${PORTS[$svc]}" TRACE_EXPORTER="file:$RUN/traces.jsonl" \
      setsid "$PY" -m "services.$svc" >>"$RUN/$svc.log" 2>&1 </dev/null &
    echo $! > "$RUN/$svc.pid"
  done
  start_portal
  for svc in "${!PORTS[@]}" portal; do
    local deadline=$((SECONDS + 60))
    until ready "$(port_of "$svc")"; do
      running "$svc" || { echo "$svc exited: see $RUN/$svc.log" >&2; tail -5 "$RUN/$svc.log" >&2; exit 1; }
      [ "$SECONDS" -lt "$deadline" ] || { echo "$svc not ready after 60s: see $RUN/$svc.log" >&2; exit 1; }
      sleep 0.3
    done
    echo "$svc ready on http://127.0.0.1:$(port_of "$svc")"
  done
}

PORTAL_PORT="$BASE"
port_of() { if [ "$1" = portal ]; then echo "$PORTAL_PORT"; else echo "${PORTS[$1]}"; fi; }

# The portal reaches each service at its port here and verifies sign-ins with the stack's keys.
start_portal() {
  if running portal; then echo "portal already running"; return; fi
  PORTAL_ONBOARDING_URL="http://127.0.0.1:${PORTS[onboarding]}" PORTAL_DEALS_URL="http://127.0.0.1:${PORTS[deals]}" \
  PORTAL_ATTRIBUTION_URL="http://127.0.0.1:${PORTS[attribution]}" PORTAL_INCENTIVES_URL="http://127.0.0.1:${PORTS[incentives]}" \
  PORTAL_NOTIFICATIONS_URL="http://127.0.0.1:${PORTS[notifications]}" \
  PORTAL_PROGRAMME_URL="http://127.0.0.1:${PORTS[programme]}" HTTP_PORT="$PORTAL_PORT" \
    setsid "$PY" -m services.portal >>"$RUN/portal.log" 2>&1 </dev/null &
  echo $! > "$RUN/portal.pid"
}

stop() {
  for svc in portal "${!PORTS[@]}"; do
    if running "$svc"; then
      kill -TERM "$(cat "$RUN/$svc.pid")"
      for _ in $(seq 1 40); do running "$svc" || break; sleep 0.25; done
      running "$svc" && kill -KILL "$(cat "$RUN/$svc.pid")"
      echo "$svc stopped"
    fi
    rm -f "$RUN/$svc.pid"
  done
}

status() {
  for svc in "${!PORTS[@]}" portal; do
    if running "$svc"; then echo "$svc: $(ready "$(port_of "$svc")" && echo ready || echo 'not answering')";
    else echo "$svc: stopped"; fi
  done
}

case "${1:-}" in start) start ;; stop) stop ;; status) status ;; *) echo "usage: $0 start|stop|status" >&2; exit 2 ;; esac
