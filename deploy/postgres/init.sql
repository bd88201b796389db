-- Per-service schemas and roles (least privilege). Idempotent: safe to run on every start.
-- Each service role owns exactly one schema and has no rights on any other schema.
-- Used by deploy/local-stack.sh and by docker-compose (/docker-entrypoint-initdb.d).
-- Passwords are local-development defaults (<service>_svc); production sets its own.
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

-- The one place that says what a service's database footprint is: tests call it for scratch schemas.
CREATE OR REPLACE FUNCTION platform_admin.provision_service(service text, password text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    role_name text := service || '_svc';
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
        EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT',
                       role_name, password);
    END IF;
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', service, role_name);
    EXECUTE format('ALTER SCHEMA %I OWNER TO %I', service, role_name);
    EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', service);
    EXECUTE format('ALTER ROLE %I SET search_path = %I', role_name, service);
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), role_name);
    EXECUTE format('REVOKE CREATE, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$$;
REVOKE ALL ON FUNCTION platform_admin.provision_service(text, text) FROM PUBLIC;

SELECT platform_admin.provision_service(svc, svc || '_svc')
FROM unnest(ARRAY['onboarding', 'deals', 'attribution', 'incentives']) AS svc;
