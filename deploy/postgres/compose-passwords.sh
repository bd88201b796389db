#!/usr/bin/env bash
# Compose only (runs after init.sql in /docker-entrypoint-initdb.d): every service role gets the
# password its environment variable holds, instead of the local development default.
#   <SERVICE>_DB_PASSWORD        the runtime role <service>_svc
#   <SERVICE>_DB_OWNER_PASSWORD  the schema owner <service>_owner (the migration step)
set -euo pipefail
set_password() {  # role, password: psql quotes both (variables are read from stdin's script)
  psql -v ON_ERROR_STOP=1 -q --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v role="$1" -v password="$2" <<'SQL'
ALTER ROLE :"role" PASSWORD :'password';
SQL
}
for service in onboarding deals attribution incentives notifications programme; do
  runtime="${service^^}_DB_PASSWORD"
  owner="${service^^}_DB_OWNER_PASSWORD"
  : "${!runtime:?set $runtime}" "${!owner:?set $owner}"
  set_password "${service}_svc" "${!runtime}"
  set_password "${service}_owner" "${!owner}"
done
