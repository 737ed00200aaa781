"""Throwaway databases and roles on the local PostgreSQL, for the tests that run the real
role set-up (deploy/postgres/10-roles.sh, `make stack`): unique names, connections as any
role (trust authentication on 127.0.0.1), everything dropped afterwards, even on failure."""

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
from django.conf import settings
from psycopg2 import sql


@dataclass(frozen=True)
class Names:
    database: str
    owner: str
    app: str


def unique_names(prefix: str) -> Names:
    tag = uuid.uuid4().hex[:10]
    return Names(f"{prefix}_db_{tag}", f"{prefix}_owner_{tag}", f"{prefix}_app_{tag}")


def server() -> dict:
    """Host, port and superuser of the suite's own database server."""
    db = settings.DATABASES["default"]
    return {"host": db["HOST"] or "127.0.0.1", "port": int(db["PORT"] or 5432), "user": db["USER"]}


def connect(database: str, user: str | None = None):
    """A connection in autocommit, as ``user`` (default: the superuser)."""
    params = server()
    connection = psycopg2.connect(
        dbname=database, host=params["host"], port=params["port"], user=user or params["user"]
    )
    connection.autocommit = True
    return connection


def query(database: str, statement, params=None, *, user: str | None = None) -> list[tuple]:
    with contextlib.closing(connect(database, user)) as connection, connection.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []


@contextlib.contextmanager
def dropped_afterwards(names: Names) -> Iterator[Names]:
    """Drop the database, then the roles (what they still own or were granted elsewhere
    first), whatever the test did."""
    try:
        yield names
    finally:
        query(
            "postgres",
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(names.database)
            ),
        )
        for role in (names.app, names.owner):
            if query("postgres", "SELECT 1 FROM pg_roles WHERE rolname = %s", [role]):
                query("postgres", sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                query("postgres", sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
