#!/usr/bin/env bash
# Local Apache Kafka (KRaft) + PostgreSQL without a Docker engine. One broker by default;
# KAFKA_BROKERS=3 starts a replicated cluster of three broker+controller nodes (node n listens
# on KAFKA_PORT + 10(n-1), its controller and TLS ports likewise), whose topics get replication
# factor 3 and min.insync.replicas 2 (`env` exports them for deploy/kafka_access.py).
#
#   deploy/local-stack.sh start    fetch Kafka jars if needed, start both, wait until ready
#   deploy/local-stack.sh stop     stop both (SIGTERM, then wait)
#   deploy/local-stack.sh status   print what runs; exit 0 only when both are ready
#   deploy/local-stack.sh wait     wait until both are ready (exit 1 after the timeout)
#   deploy/local-stack.sh env      print the environment variables that point clients at the stack
#                                  (Kafka as the operators' admin principal)
#   deploy/local-stack.sh client-config <principal> [--tls]
#                                  librdkafka properties for one principal (admin or a service),
#                                  e.g. kcat -F <(deploy/local-stack.sh client-config deals) ...
#   deploy/local-stack.sh reset    stop and delete all local data (not the downloaded jars)
#   deploy/local-stack.sh restart-kafka [n]   stop and start the brokers (or node n) only
#   deploy/local-stack.sh stop-kafka [n] | start-kafka [n]   the brokers (or node n), one way
#   deploy/local-stack.sh kafka-pid <n>   node n's process id (fault tests kill it with -9)
#
# Everything lives under .work/ (git-ignored). Every command is idempotent.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${POLLINATE_WORK_DIR:-$ROOT/.work}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
# The controller's port follows the client port (as the TLS one does): a second stack that sets only
# KAFKA_PORT must not join the first one's quorum on its controller port.
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_TLS_PORT="${KAFKA_TLS_PORT:-$((KAFKA_PORT + 2))}"
KAFKA_BROKERS="${KAFKA_BROKERS:-1}"
case "$KAFKA_BROKERS" in 1|3) ;; *) printf '[local-stack] error: KAFKA_BROKERS must be 1 or 3 (a quorum of three voters), not %s\n' "$KAFKA_BROKERS" >&2; exit 2 ;; esac
PG_PORT="${PG_PORT:-5432}"
PG_DB="${PG_DB:-pollinate}"
PG_ADMIN_PASSWORD="${PG_ADMIN_PASSWORD:-postgres}"
PG_BIN="${PG_BIN:-}"
# Three JVMs start slower than one on a small machine: a cluster waits twice as long.
READY_TIMEOUT="${READY_TIMEOUT:-$((120 * (KAFKA_BROKERS > 1 ? 2 : 1)))}"

KAFKA_HOME="$WORK/kafka"
# The jars: a second stack (make test-cluster) may share the first one's instead of copying them.
KAFKA_LIBS="${POLLINATE_KAFKA_LIBS:-$KAFKA_HOME/libs}"
# One broker keeps its files at the top of $KAFKA_HOME; a cluster's node n under node-n (a cluster
# and a single broker never share data: switching KAFKA_BROKERS starts the other one afresh).
# One password file per principal (the operators' admin and each service), the owner's alone.
KAFKA_CREDENTIALS="$KAFKA_HOME/credentials"
KAFKA_TLS_DIR="$KAFKA_HOME/tls"
KAFKA_PRINCIPALS="admin onboarding deals attribution incentives notifications programme"
PYTHON="${POLLINATE_PYTHON:-$ROOT/.venv/bin/python}"
# The platform's token signing key pair (shared/identity.py), made here once: no committed key.
TOKEN_KEYS="$WORK/identity/keys.json"
PG_HOME="$WORK/postgres"
PG_DATA="$PG_HOME/data"
PG_RUN="$PG_HOME/run"
PG_LOG="$PG_HOME/postgres.log"
# Server settings, the same in docker-compose.yml (a unit test checks): commit timestamps give
# the outbox relay lag; pg_stat_statements lets tests bound the statements a handler sends;
# checkpoints after ~2 GB of WAL (max_wal_size 4 GB, less the completion target) or 15 min,
# not every ~10 s as 1 GB forced at saturation: each checkpoint makes the next change to every
# page write the whole page into the WAL (at 600 deals/s that was 86 kB of WAL per deal and 16%
# more Postgres CPU per deal than with these; now a checkpoint every ~80 s at saturation).
PG_SETTINGS="-c max_connections=300 -c shared_buffers=512MB -c max_wal_size=4GB -c checkpoint_timeout=15min -c track_commit_timestamp=on -c shared_preload_libraries=pg_stat_statements"

log() { printf '[local-stack] %s\n' "$*" >&2; }
die() { printf '[local-stack] error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- prerequisites
need_java() {
  command -v java >/dev/null 2>&1 || die "java not found: Kafka 4 needs Java 17+ (Debian: apt-get install openjdk-17-jre-headless)"
  local major
  major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
  [ -n "$major" ] && [ "$major" -ge 17 ] || die "java $major found, Kafka 4 needs Java 17+"
}

find_pg_bin() {
  if [ -n "$PG_BIN" ]; then [ -x "$PG_BIN/postgres" ] || die "PG_BIN=$PG_BIN has no postgres binary"; return; fi
  local candidate
  for candidate in /usr/lib/postgresql/*/bin; do
    [ -x "$candidate/postgres" ] && PG_BIN="$candidate"
  done
  if [ -z "$PG_BIN" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "PostgreSQL server binaries not found: installing the Debian package 'postgresql'"
    # The binaries only: Debian's package would create and start a cluster of its own on
    # 127.0.0.1:5432, the port this stack's own cluster is about to take.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/50-pollinate.conf
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; } \
      || die "could not install the 'postgresql' Debian package"
    for candidate in /usr/lib/postgresql/*/bin; do
      [ -x "$candidate/postgres" ] && PG_BIN="$candidate"
    done
  fi
  [ -n "$PG_BIN" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: install the 'postgresql' package or set PG_BIN"
}

# initdb and postgres refuse to run as root: run them as the 'postgres' user then.
as_pg_owner() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root but no 'postgres' user exists to own the database"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# ---------------------------------------------------------------- Kafka
fetch_kafka() {
  local stamp="$KAFKA_LIBS/.pom.sha256" want
  want="$(sha256sum "$ROOT/deploy/kafka/pom.xml" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found: Apache Maven fetches the Kafka jars from Maven Central (Debian: apt-get install maven)"
  log "fetching Apache Kafka jars from Maven Central (cached in ~/.m2 for next time)"
  rm -rf "$KAFKA_LIBS"; mkdir -p "$KAFKA_LIBS"
  mvn -q -B -f "$ROOT/deploy/kafka/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" >&2 \
    || die "maven could not fetch the Kafka jars (is Maven Central reachable?)"
  echo "$want" > "$stamp"
}

make_credentials() {
  mkdir -p "$KAFKA_CREDENTIALS"; chmod 0700 "$KAFKA_CREDENTIALS"
  local principal
  for principal in $KAFKA_PRINCIPALS; do
    [ -s "$KAFKA_CREDENTIALS/$principal" ] && continue
    (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(24))' > "$KAFKA_CREDENTIALS/$principal")
  done
}

need_openssl() {
  command -v openssl >/dev/null 2>&1 && return
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "openssl not found: installing the Debian package 'openssl'"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >/dev/null; } \
      || die "could not install the 'openssl' Debian package"
  fi
  command -v openssl >/dev/null 2>&1 || die "openssl not found: it makes the TLS listener's certificates (Debian: apt-get install openssl)"
}

# A CA of the stack's own and a broker certificate for 127.0.0.1 it signs: the TLS listener's.
make_tls() {
  [ -s "$KAFKA_TLS_DIR/broker.pem" ] && return
  need_openssl
  mkdir -p "$KAFKA_TLS_DIR"; chmod 0700 "$KAFKA_TLS_DIR"
  local d="$KAFKA_TLS_DIR"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Pollinate local stack CA" \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null || die "could not make the stack's CA"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$d/broker.key" \
    -out "$d/broker.csr" 2>/dev/null || die "could not make the broker's key"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$d/san.ext"
  openssl x509 -req -in "$d/broker.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 3650 -extfile "$d/san.ext" -out "$d/broker.crt" 2>/dev/null || die "could not sign the broker's certificate"
  cat "$d/broker.key" "$d/broker.crt" > "$d/broker.pem"
  chmod 0600 "$d"/*
}

# Users, topics and ACLs from the topic registry (deploy/kafka_access.py), as the admin.
provision_kafka() {
  # A principal the registry gained since the broker's first start (a new service) gets its
  # password here too: the broker may already be running.
  make_credentials
  [ -x "$PYTHON" ] || die "$PYTHON not found: run 'make install' first (it provisions the broker's principals and ACLs)"
  ( cd "$ROOT" && env KAFKA_BOOTSTRAP_SERVERS="$(bootstrap_servers)" KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT \
      KAFKA_TOPIC_REPLICATION_FACTOR="$(topic_replication)" KAFKA_TOPIC_MIN_INSYNC_REPLICAS="$(topic_min_insync)" \
      KAFKA_SASL_MECHANISM=SCRAM-SHA-512 KAFKA_SASL_USERNAME=admin \
      KAFKA_SASL_PASSWORD="$(cat "$KAFKA_CREDENTIALS/admin")" \
      "$PYTHON" -m deploy.kafka_access apply --credentials "$KAFKA_CREDENTIALS" ) \
    || die "provisioning Kafka's principals and ACLs failed"
}

make_token_keys() {
  [ -s "$TOKEN_KEYS" ] && return
  [ -x "$PYTHON" ] || die "$PYTHON not found: run 'make install' first (it makes the token signing key)"
  mkdir -p "$(dirname "$TOKEN_KEYS")"; chmod 0700 "$(dirname "$TOKEN_KEYS")"
  (umask 077; cd "$ROOT" && "$PYTHON" -m shared.identity keys --kid "local-$(date +%Y%m%d)" > "$TOKEN_KEYS") \
    || die "could not make the token signing key"
}

token_key() {  # signing_key | verification_keys, as one line of JSON
  python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))[sys.argv[2]]))' "$TOKEN_KEYS" "$1"
}

# shellcheck source=deploy/alive.sh
. "$ROOT/deploy/alive.sh"

nodes() { seq 1 "$KAFKA_BROKERS"; }
node_home() { if [ "$KAFKA_BROKERS" = 1 ]; then echo "$KAFKA_HOME"; else echo "$KAFKA_HOME/node-$1"; fi; }
node_pid_file() { echo "$(node_home "$1")/kafka.pid"; }
node_port() { echo $((KAFKA_PORT + 10 * ($1 - 1))); }
node_controller_port() { echo $((KAFKA_CONTROLLER_PORT + 10 * ($1 - 1))); }
node_tls_port() { echo $((KAFKA_TLS_PORT + 10 * ($1 - 1))); }
bootstrap_servers() {  # every node's client (or, with "tls", TLS) listener, comma-separated
  local n list=""
  for n in $(nodes); do
    list="$list${list:+,}127.0.0.1:$(if [ "${1:-}" = tls ]; then node_tls_port "$n"; else node_port "$n"; fi)"
  done
  echo "$list"
}
# The replication the registry's topics get (deploy/kafka_access.py reads these).
topic_replication() { echo "$KAFKA_BROKERS"; }
topic_min_insync() { if [ "$KAFKA_BROKERS" = 1 ]; then echo 1; else echo 2; fi; }
check_node() { case "${1:-}" in ''|*[!0-9]*) die "no Kafka node '${1:-}' (nodes: $(nodes | tr '\n' ' '))" ;; esac; [ "$1" -ge 1 ] && [ "$1" -le "$KAFKA_BROKERS" ] || die "no Kafka node $1 (nodes: $(nodes | tr '\n' ' '))"; }

node_running() { local f; f="$(node_pid_file "$1")"; [ -f "$f" ] && alive "$(cat "$f")" kafka.Kafka; }
kafka_running() { local n; for n in $(nodes); do node_running "$n" || return 1; done; }

# The node's server.properties from the template: one broker is its own quorum (formatted
# --standalone); a cluster's three nodes are a static quorum of three voters.
node_properties() {
  local n="$1" home; home="$(node_home "$1")"
  local admin_password; admin_password="$(cat "$KAFKA_CREDENTIALS/admin")"
  local quorum v voters=""
  if [ "$KAFKA_BROKERS" = 1 ]; then
    quorum="controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT"
  else
    for v in $(nodes); do voters="$voters${voters:+,}$v@127.0.0.1:$(node_controller_port "$v")"; done
    quorum="controller.quorum.voters=$voters"
  fi
  (umask 077; sed -e "s#@KAFKA_PORT@#$(node_port "$n")#g" -e "s#@KAFKA_CONTROLLER_PORT@#$(node_controller_port "$n")#g" \
      -e "s#@KAFKA_TLS_PORT@#$(node_tls_port "$n")#g" -e "s#@KAFKA_TLS_DIR@#$KAFKA_TLS_DIR#g" \
      -e "s#@KAFKA_ADMIN_PASSWORD@#$admin_password#g" -e "s#@KAFKA_NODE_ID@#$n#g" \
      -e "s#@KAFKA_QUORUM@#$quorum#g" -e "s#@REPLICATION_FACTOR@#$(topic_replication)#g" \
      -e "s#@MIN_INSYNC_REPLICAS@#$(topic_min_insync)#g" \
      -e "s#@KAFKA_DATA_DIR@#$home/data#g" "$ROOT/deploy/kafka/server.properties.template" \
      > "$home/server.properties")
}

start_node() {
  local n="$1" home; home="$(node_home "$1")"
  if node_running "$n"; then log "kafka node $n already running (pid $(cat "$(node_pid_file "$n")"))"; return; fi
  if port_open "$(node_port "$n")"; then die "port $(node_port "$n") is taken by another process: set KAFKA_PORT"; fi
  if port_open "$(node_tls_port "$n")"; then die "port $(node_tls_port "$n") is taken by another process: set KAFKA_TLS_PORT"; fi
  if port_open "$(node_controller_port "$n")"; then die "port $(node_controller_port "$n") is taken by another process: set KAFKA_CONTROLLER_PORT"; fi
  if [ -f "$home/data/meta.properties" ] && [ ! -s "$KAFKA_CREDENTIALS/admin" ]; then
    log "the broker's data predates its credentials: starting it afresh"
    rm -rf "$home/data"
  fi
  mkdir -p "$home/data" "$home/logs"
  node_properties "$n"
  local cp="$KAFKA_LIBS/*"
  if [ ! -f "$home/data/meta.properties" ]; then
    local cluster_id mode=()
    # Every node of a cluster formats with the same cluster id (made once, kept beside them).
    # An id starting with "-" was made before ids were kept from it, and no node could format
    # with it (the storage tool reads it as an option): a new one replaces it.
    if [ ! -s "$KAFKA_HOME/cluster.id" ] || [ "$(head -c 1 "$KAFKA_HOME/cluster.id")" = "-" ]; then
      python3 "$ROOT/deploy/kafka_cluster_id.py" > "$KAFKA_HOME/cluster.id"
    fi
    cluster_id="$(cat "$KAFKA_HOME/cluster.id")"
    [ "$KAFKA_BROKERS" = 1 ] && mode=(--standalone)
    log "formatting KRaft storage of node $n (cluster id $cluster_id)"
    java -cp "$cp" -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" \
      -Dkafka.logs.dir="$home/logs" kafka.tools.StorageTool format "${mode[@]}" -g \
      --add-scram "SCRAM-SHA-512=[name=admin,password=$(cat "$KAFKA_CREDENTIALS/admin")]" \
      -t "$cluster_id" -c "$home/server.properties" >"$home/logs/format.log" 2>&1 \
      || die "formatting Kafka storage failed: see $home/logs/format.log"
  fi
  log "starting kafka node $n on 127.0.0.1:$(node_port "$n")"
  nohup java -Xms512m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dkafka.logs.dir="$home/logs" -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" \
    -cp "$cp" kafka.Kafka "$home/server.properties" >"$home/logs/stdout.log" 2>&1 &
  echo $! > "$(node_pid_file "$n")"
}

start_kafka() {  # [node]: all nodes, or one
  need_java
  fetch_kafka
  make_credentials
  make_tls
  if [ -n "${1:-}" ]; then check_node "$1"; start_node "$1"; return; fi
  local n; for n in $(nodes); do start_node "$n"; done
}

stop_node() {
  local n="$1" f; f="$(node_pid_file "$1")"
  if node_running "$n"; then
    local pid; pid="$(cat "$f")"
    log "stopping kafka node $n (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 60); do alive "$pid" || break; sleep 0.5; done
    alive "$pid" && { log "kafka node $n did not stop in 30s: killing"; kill -KILL "$pid"; }
  fi
  rm -f "$f"
}

stop_kafka() {  # [node]: all nodes, or one
  if [ -n "${1:-}" ]; then check_node "$1"; stop_node "$1"; return; fi
  # A cluster's nodes stop together: one by one, the last would wait for a quorum that is gone.
  local n pids=()
  for n in $(nodes); do node_running "$n" && pids+=("$n")  && kill -TERM "$(cat "$(node_pid_file "$n")")"; done
  for n in "${pids[@]}"; do stop_node "$n"; done
  for n in $(nodes); do rm -f "$(node_pid_file "$n")"; done
}

kafka_ready() { local n; for n in $(nodes); do node_running "$n" && port_open "$(node_port "$n")" || return 1; done; }

# ---------------------------------------------------------------- PostgreSQL
pg_running() { [ -n "$PG_BIN" ] && [ -f "$PG_DATA/postmaster.pid" ] && as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

start_postgres() {
  find_pg_bin
  mkdir -p "$PG_HOME" "$PG_RUN"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$PG_HOME" "$PG_RUN"
    # The 'postgres' user must reach the work folder through every parent (/root is 0700).
    runuser -u postgres -- test -w "$PG_HOME" || die "the 'postgres' user (PostgreSQL refuses to run as root) cannot reach $PG_HOME: a parent folder shuts it out (/root is 0700, or a umask of 077): clone the repository elsewhere, or set POLLINATE_WORK_DIR to a folder it can reach"
  fi
  # The Unix socket is for the stack's owner only: other local users connect over TCP with a
  # password, like everyone else.
  chmod 0700 "$PG_RUN"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    log "initialising PostgreSQL cluster in $PG_DATA"
    local pwfile="$PG_HOME/.pwfile"
    printf '%s\n' "$PG_ADMIN_PASSWORD" > "$pwfile"
    [ "$(id -u)" = 0 ] && chown postgres: "$pwfile"
    as_pg_owner "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --pwfile="$pwfile" \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$PG_HOME/initdb.log" 2>&1 \
      || die "initdb failed: see $PG_HOME/initdb.log"
    rm -f "$pwfile"
  fi
  if pg_running; then
    log "postgres already running"
  else
    if port_open "$PG_PORT"; then
      local hint=""
      compgen -G "/etc/postgresql/*/main" >/dev/null && hint=" (a Debian PostgreSQL cluster is installed: 'systemctl stop postgresql' or 'pg_ctlcluster <version> main stop' frees it)"
      die "port $PG_PORT is taken by another process$hint: set PG_PORT"
    fi
    log "starting postgres on 127.0.0.1:$PG_PORT"
    as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$READY_TIMEOUT" start \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k '$PG_RUN' -c fsync=on $PG_SETTINGS" >/dev/null \
      || die "postgres did not start: see $PG_LOG"
  fi
  # Create the database and the per-service roles/schemas (idempotent).
  if ! as_pg_owner "$PG_BIN/psql" -h "$PG_RUN" -p "$PG_PORT" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
    as_pg_owner "$PG_BIN/psql" -h "$PG_RUN" -p "$PG_PORT" -U postgres -d postgres -q -c "CREATE DATABASE $PG_DB"
  fi
  as_pg_owner "$PG_BIN/psql" -h "$PG_RUN" -p "$PG_PORT" -U postgres -d "$PG_DB" -q -v ON_ERROR_STOP=1 \
    -f - < "$ROOT/deploy/postgres/init.sql" >/dev/null || die "applying deploy/postgres/init.sql failed"
}

stop_postgres() {
  [ -f "$PG_DATA/postmaster.pid" ] || return 0  # none of ours runs (and nothing to install for it)
  find_pg_bin
  if pg_running; then
    log "stopping postgres"
    as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
  fi
}

postgres_ready() { find_pg_bin; pg_running && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }

# ---------------------------------------------------------------- commands
wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  until kafka_ready && postgres_ready; do
    if [ -f "$(node_pid_file 1)" ] && ! node_running 1; then
      die "kafka exited during start-up: see $(node_home 1)/logs/server.log"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "stack not ready after ${READY_TIMEOUT}s: see $(node_home 1)/logs/server.log and $PG_LOG"
    sleep 0.5
  done
  provision_kafka
  make_token_keys
  log "ready: kafka $(bootstrap_servers), postgres 127.0.0.1:$PG_PORT/$PG_DB"
}

print_env() {
  cat <<ENV
export KAFKA_BOOTSTRAP_SERVERS=$(bootstrap_servers)
export KAFKA_BROKERS=$KAFKA_BROKERS
export KAFKA_TOPIC_REPLICATION_FACTOR=$(topic_replication)
export KAFKA_TOPIC_MIN_INSYNC_REPLICAS=$(topic_min_insync)
export KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT
export KAFKA_SASL_MECHANISM=SCRAM-SHA-512
export KAFKA_SASL_USERNAME=admin
export KAFKA_SASL_PASSWORD=$(cat "$KAFKA_CREDENTIALS/admin" 2>/dev/null)
export POLLINATE_KAFKA_CREDENTIALS=$(printf %q "$KAFKA_CREDENTIALS")
export POLLINATE_KAFKA_TLS_BOOTSTRAP=$(bootstrap_servers tls)
export POLLINATE_KAFKA_CA=$(printf %q "$KAFKA_TLS_DIR/ca.pem")
# The local stack is a developer's machine: services here accept the committed local defaults.
export DEVELOPMENT_MODE=true
# Tokens: every service verifies with the public set; onboarding (and tests, the demo and
# operators' python -m shared.identity issue) sign with the private key.
export TOKEN_VERIFICATION_KEYS='$( [ -s "$TOKEN_KEYS" ] && token_key verification_keys )'
export TOKEN_SIGNING_KEY='$( [ -s "$TOKEN_KEYS" ] && token_key signing_key )'
export POLLINATE_ADMIN_DATABASE_URL=postgresql://postgres:$PG_ADMIN_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB
ENV
}

client_config() {
  local principal="${1:-}" tls="${2:-}"
  [ -n "$principal" ] || die "usage: $0 client-config <principal> [--tls] (principals: $KAFKA_PRINCIPALS)"
  [ -s "$KAFKA_CREDENTIALS/$principal" ] || die "no Kafka principal '$principal' (principals: $KAFKA_PRINCIPALS)"
  if [ "$tls" = "--tls" ]; then
    printf 'bootstrap.servers=%s\nsecurity.protocol=sasl_ssl\nssl.ca.location=%s\n' "$(bootstrap_servers tls)" "$KAFKA_TLS_DIR/ca.pem"
  else
    printf 'bootstrap.servers=%s\nsecurity.protocol=sasl_plaintext\n' "$(bootstrap_servers)"
  fi
  printf 'sasl.mechanisms=SCRAM-SHA-512\nsasl.username=%s\nsasl.password=%s\n' "$principal" "$(cat "$KAFKA_CREDENTIALS/$principal")"
}

status() {
  local ok=0
  local n
  for n in $(nodes); do
    local name="kafka"; [ "$KAFKA_BROKERS" = 1 ] || name="kafka node $n"
    if node_running "$n" && port_open "$(node_port "$n")"; then echo "$name: ready on 127.0.0.1:$(node_port "$n") (pid $(cat "$(node_pid_file "$n")"))";
    elif node_running "$n"; then echo "$name: starting (pid $(cat "$(node_pid_file "$n")"))"; ok=1;
    else echo "$name: stopped"; ok=1; fi
  done
  if postgres_ready; then echo "postgres: ready on 127.0.0.1:$PG_PORT";
  else echo "postgres: stopped"; ok=1; fi
  return $ok
}

case "${1:-}" in
  start) start_postgres; start_kafka; wait_ready ;;
  stop) stop_kafka; stop_postgres ;;
  restart-kafka) stop_kafka "${2:-}"; start_kafka "${2:-}"; wait_ready ;;  # fault tests: a broker restart
  stop-kafka) stop_kafka "${2:-}" ;;  # fault tests: the broker down for as long as the test needs
  start-kafka) start_kafka "${2:-}"; wait_ready ;;
  kafka-pid) check_node "${2:-}"; node_running "$2" || die "kafka node $2 is not running"; cat "$(node_pid_file "$2")" ;;
  status) status ;;
  wait) find_pg_bin; wait_ready ;;
  env) print_env ;;
  client-config) client_config "${2:-}" "${3:-}" ;;
  reset) stop_kafka; stop_postgres; local_n=""; for local_n in $(nodes); do rm -rf "$(node_home "$local_n")/data" "$(node_home "$local_n")/logs"; done; rm -f "$KAFKA_HOME/cluster.id"; rm -rf "$PG_HOME" ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
