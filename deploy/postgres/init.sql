-- Per-service schemas and roles (least privilege). Idempotent: safe to run on every start.
-- Each service role owns exactly one schema and has no rights on any other schema.
-- Used by deploy/local-stack.sh and by docker-compose (/docker-entrypoint-initdb.d).
-- Passwords are local-development defaults (<service>_svc, <service>_owner); production sets its own.
SET client_min_messages = warning;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
-- Service roles reach the platform's database only (each is granted CONNECT on it below);
-- the maintenance and template databases are closed to them.
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;
CREATE SCHEMA IF NOT EXISTS platform_admin;
REVOKE ALL ON SCHEMA platform_admin FROM PUBLIC;

-- Statement statistics for operators (round trips per event, slow statements); the server
-- loads the library (shared_preload_libraries). Only the admin reads them.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;

-- The one place that says what a service's database footprint is: tests call it for scratch
-- schemas. Two roles a service:
--   <service>_owner  owns the schema and everything in it; migrations run as it
--                    (`python -m services.<service> migrate`), never the running service;
--   <service>_svc    what the running service connects as: it reads and writes rows of its own
--                    schema and nothing else. It cannot create, alter or drop anything, so it
--                    cannot disable the append-only triggers that guard the ledgers.
CREATE OR REPLACE FUNCTION platform_admin.provision_service(
    service text, runtime_password text, owner_password text
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    runtime_role text := service || '_svc';
    owner_role text := service || '_owner';
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = runtime_role) THEN
        EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT',
                       runtime_role, runtime_password);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = owner_role) THEN
        EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT',
                       owner_role, owner_password);
    END IF;
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', service, owner_role);
    EXECUTE format('ALTER SCHEMA %I OWNER TO %I', service, owner_role);
    -- Before the split the runtime role owned the schema's tables: they pass to the owner.
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = service AND c.relowner = runtime_role::regrole) THEN
        EXECUTE format('REASSIGN OWNED BY %I TO %I', runtime_role, owner_role);
    END IF;
    EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', service);
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM %I', service, runtime_role);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', service, runtime_role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I',
                   service, runtime_role);
    EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO %I',
                   service, runtime_role);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I '
                   'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I',
                   owner_role, service, runtime_role);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I '
                   'GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %I',
                   owner_role, service, runtime_role);
    EXECUTE format('ALTER ROLE %I SET search_path = %I', runtime_role, service);
    EXECUTE format('ALTER ROLE %I SET search_path = %I', owner_role, service);
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), runtime_role);
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), owner_role);
    EXECUTE format('REVOKE CREATE, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$$;
REVOKE ALL ON FUNCTION platform_admin.provision_service(text, text, text) FROM PUBLIC;
DROP FUNCTION IF EXISTS platform_admin.provision_service(text, text);

SELECT platform_admin.provision_service(svc, svc || '_svc', svc || '_owner')
FROM unnest(ARRAY['onboarding', 'deals', 'attribution', 'incentives', 'notifications', 'programme']) AS svc;
