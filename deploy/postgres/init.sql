-- Per-service schemas and roles (least privilege). Idempotent: safe to run on every start.
-- Each service role owns exactly one schema and has no rights on any other.
-- Used by deploy/local-stack.sh and by docker-compose (docker-entrypoint-initdb.d).
-- Passwords here are local-development defaults; production sets them through its secret store.
REVOKE ALL ON SCHEMA public FROM PUBLIC;

DO $$
DECLARE
    svc text;
BEGIN
    FOREACH svc IN ARRAY ARRAY['onboarding', 'deals', 'attribution', 'incentives'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = svc || '_svc') THEN
            EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L NOSUPERUSER NOCREATEDB NOCREATEROLE',
                           svc || '_svc', svc || '_svc');
        END IF;
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', svc, svc || '_svc');
        EXECUTE format('ALTER SCHEMA %I OWNER TO %I', svc, svc || '_svc');
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', svc);
        EXECUTE format('ALTER ROLE %I SET search_path = %I', svc || '_svc', svc);
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), svc || '_svc');
    END LOOP;
    EXECUTE format('REVOKE CREATE, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$$;
