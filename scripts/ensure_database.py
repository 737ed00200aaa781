"""Create the PostgreSQL database a URL names, when it is missing: `make bench` runs it for
BENCH_DATABASE_URL and BENCH_AUDIT_DATABASE_URL, so that the databases it uses are the ones
its URLs name.

    python scripts/ensure_database.py BENCH_DATABASE_URL [BENCH_AUDIT_DATABASE_URL ...]

Each argument names an environment variable holding a URL (the URL itself never goes on a
command line, where `ps` would show its password). The database is created, owned by the
URL's role, through the server's `postgres` database as that role, which must be allowed
to create databases. Exit codes: 0 done, 1 PostgreSQL refused, 2 a URL that does not fit.
"""

import os
import sys
import urllib.parse

import psycopg2
from psycopg2 import sql


def refuse(message: str, code: int) -> None:
    print(f"ensure_database.py: {message}", file=sys.stderr)
    raise SystemExit(code)


def ensure(variable: str) -> None:
    parts = urllib.parse.urlsplit(os.environ.get(variable, ""))
    database = urllib.parse.unquote(parts.path.lstrip("/"))
    if parts.scheme not in {"postgres", "postgresql", "pgsql"} or not database:
        refuse(f"{variable} must be postgres://role[:password]@host:port/database", 2)
    try:
        connection = psycopg2.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=urllib.parse.unquote(parts.username or "postgres"),
            password=urllib.parse.unquote(parts.password or "") or None,
            dbname="postgres",
        )
    except psycopg2.Error as error:
        refuse(f"cannot reach the server of {variable}: {str(error).strip()}", 1)
    connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
            if cursor.fetchone():
                print(f"Database {database} is there.")
                return
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            print(f"Database {database} created.")
    except psycopg2.Error as error:
        refuse(f"PostgreSQL refused to create {database}: {str(error).strip()}", 1)
    finally:
        connection.close()


def main(variables: list[str]) -> None:
    if not variables:
        refuse("name at least one environment variable holding a database URL", 2)
    for variable in variables:
        ensure(variable)


if __name__ == "__main__":
    main(sys.argv[1:])
