"""`make stack`'s database: the owner role, the application's role and the database owned by
the owner, created when missing by deploy/postgres/10-roles.sh (the script compose's `db`
runs on its first start), with the names read from the stack's two URLs.

    python scripts/stack_database.py              # create or update them; safe to run again
    python scripts/stack_database.py --app-role   # print the application's role

Environment:
    STACK_OWNER_DATABASE_URL  the owner: migrate and setup_database_roles
    STACK_DATABASE_URL        the application's role: web, workers, beat and Flower
    STACK_SUPERUSER           the local superuser psql connects as (default postgres)

Both URLs name the same server and database and two different roles, neither of them the
superuser. A password in a URL becomes its role's password (the local PostgreSQL trusts
127.0.0.1, so none is needed there); it reaches psql through the environment only.
Exit codes: 0 done, 1 PostgreSQL refused, 2 a URL that does not fit.
"""

import os
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INIT_SCRIPT = ROOT / "deploy" / "postgres" / "10-roles.sh"


def refuse(message: str) -> None:
    print(f"stack_database.py: {message}", file=sys.stderr)
    raise SystemExit(2)


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    database: str
    user: str
    password: str


def target(variable: str) -> Target:
    url = os.environ.get(variable, "")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"} or not parts.username:
        refuse(f"{variable} must be postgres://role[:password]@host:port/database")
    database = urllib.parse.unquote(parts.path.lstrip("/"))
    if not database:
        refuse(f"{variable} names no database")
    return Target(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        database=database,
        user=urllib.parse.unquote(parts.username),
        password=urllib.parse.unquote(parts.password or ""),
    )


def main(arguments: list[str]) -> int:
    owner = target("STACK_OWNER_DATABASE_URL")
    app = target("STACK_DATABASE_URL")
    superuser = os.environ.get("STACK_SUPERUSER") or "postgres"
    if (owner.host, owner.port, owner.database) != (app.host, app.port, app.database):
        refuse(
            "STACK_OWNER_DATABASE_URL and STACK_DATABASE_URL must name the same server and "
            f"database, not {owner.host}:{owner.port}/{owner.database} and "
            f"{app.host}:{app.port}/{app.database}"
        )
    if len({owner.user, app.user, superuser}) != 3:
        refuse(
            f"The owner ({owner.user}), the application's role ({app.user}) and the superuser "
            f"({superuser}) must be three roles: the application must not own its tables."
        )
    if arguments == ["--app-role"]:
        print(app.user)
        return 0
    if arguments:
        refuse(f"usage: {sys.argv[0]} [--app-role]")
    result = subprocess.run(  # noqa: S603 - our own script, names passed in the environment
        ["/bin/sh", str(INIT_SCRIPT)],
        env={
            **os.environ,
            "PGHOST": owner.host,
            "PGPORT": str(owner.port),
            "POSTGRES_USER": superuser,
            "CASH_OFFICE_DB": owner.database,
            "CASH_OFFICE_OWNER": owner.user,
            "CASH_OFFICE_OWNER_PASSWORD": owner.password,
            "CASH_OFFICE_APP_ROLE": app.user,
            "CASH_OFFICE_APP_PASSWORD": app.password,
        },
        check=False,
    )
    return 0 if result.returncode == 0 else (2 if result.returncode == 2 else 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
