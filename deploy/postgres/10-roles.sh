#!/bin/sh
# The cash office's two database roles and its database (README.md, "Database roles"):
#   the owner owns the database and, through migrate, its tables; it runs `migrate` and
#     `setup_database_roles`, nothing else. Not a superuser, cannot create roles or databases.
#   the application's role owns nothing; web, workers, beat and Flower connect as it, and
#     `setup_database_roles` (run by the owner after each migrate) grants it what they need.
#
# Who runs it:
#   - the postgres image, once, as its superuser, on an empty data volume
#     (mounted into /docker-entrypoint-initdb.d/ by docker-compose.yml);
#   - `make stack`, against the local PostgreSQL (scripts/stack_database.py);
#   - an operator, once, on a volume created before these roles existed (README.md).
# Running it again changes nothing, except that it sets the passwords it is given and hands
# the owner whatever in the database's public schema another role still owns (the tables
# an older setup created as the superuser).
#
# Environment (names: lowercase letters, digits and _):
#   CASH_OFFICE_DB               the database (default cash_office)
#   CASH_OFFICE_OWNER            the owner role (default cash_office_owner)
#   CASH_OFFICE_APP_ROLE         the application's role (default cash_office_app)
#   CASH_OFFICE_OWNER_PASSWORD   their passwords, read by psql from the environment, never
#   CASH_OFFICE_APP_PASSWORD     put on a command line; empty or unset: no password is set
#   POSTGRES_USER                the superuser psql connects as (default postgres);
#                                PGHOST, PGPORT, PGPASSWORD as libpq reads them
set -eu

db="${CASH_OFFICE_DB:-cash_office}"
owner="${CASH_OFFICE_OWNER:-cash_office_owner}"
app="${CASH_OFFICE_APP_ROLE:-cash_office_app}"
superuser="${POSTGRES_USER:-postgres}"
export CASH_OFFICE_OWNER_PASSWORD="${CASH_OFFICE_OWNER_PASSWORD:-}"
export CASH_OFFICE_APP_PASSWORD="${CASH_OFFICE_APP_PASSWORD:-}"

for name in "$db" "$owner" "$app"; do
    case "$name" in
        "" | [0-9]* | *[!a-z0-9_]*)
            echo "10-roles.sh: '$name' is not a plain name: use lowercase letters, digits and _." >&2
            exit 2 ;;
    esac
done
if [ "$owner" = "$app" ] || [ "$owner" = "$superuser" ] || [ "$app" = "$superuser" ]; then
    echo "10-roles.sh: the owner, the application's role and the superuser must be three roles." >&2
    exit 2
fi

psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "$superuser" --dbname postgres \
    --set=db="$db" --set=owner="$owner" --set=app="$app" <<'SQL'
\getenv owner_password CASH_OFFICE_OWNER_PASSWORD
\getenv app_password CASH_OFFICE_APP_PASSWORD
-- The passwords travel in ALTER ROLE statements: keep them out of the server's log, whatever
-- it is set to record (statements, slow ones, or the statement of an error).
SET log_statement = 'none';
SET log_min_duration_statement = -1;
SET log_min_error_statement = 'panic';

-- The two roles: they may log in, and nothing more than any other role.
SELECT format('CREATE ROLE %I', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('CREATE ROLE %I', :'app')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') \gexec
ALTER ROLE :"owner" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE :"app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
SELECT format('ALTER ROLE %I PASSWORD %L', :'owner', :'owner_password')
WHERE :'owner_password' <> '' \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'app', :'app_password')
WHERE :'app_password' <> '' \gexec

-- The database, owned by the owner; only the roles granted CONNECT reach it.
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
ALTER DATABASE :"db" OWNER TO :"owner";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"app";

\connect :db
-- PostgreSQL 15's public schema belongs to the database's owner; nobody else creates in it.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- Whatever another role still owns there becomes the owner's (tables first: their
-- sequences, indexes and row types follow them).
SELECT format('ALTER TABLE %I.%I OWNER TO %I', n.nspname, c.relname, :'owner')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND c.relowner <> :'owner'::regrole
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
ORDER BY c.oid \gexec
SELECT format('ALTER SEQUENCE %I.%I OWNER TO %I', n.nspname, c.relname, :'owner')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'S' AND c.relowner <> :'owner'::regrole
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i', 'e'))
ORDER BY c.oid \gexec
SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, :'owner')
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> :'owner'::regrole
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
ORDER BY p.oid \gexec
SQL
echo "10-roles.sh: database $db owned by $owner; the application's role $app owns nothing."
