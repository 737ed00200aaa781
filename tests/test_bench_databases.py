"""`make bench` uses the databases its URLs name, creating them when missing
(scripts/ensure_database.py), and never prints a URL, which may hold a password."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2

from tests.test_stack import make

ROOT = Path(__file__).resolve().parents[1]
SERVER = "postgres://postgres@127.0.0.1:5432"


def ensure_database(*variables: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own script
        [sys.executable, "scripts/ensure_database.py", *variables],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def database_exists(name: str) -> bool:
    connection = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            return cursor.fetchone() is not None
    finally:
        connection.close()


def drop_database(name: str) -> None:
    connection = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        connection.close()


def test_the_database_a_url_names_is_created_once():
    name = f"cash_office_bench_t{uuid.uuid4().hex[:10]}"
    env = {"BENCH_DATABASE_URL": f"{SERVER}/{name}"}
    try:
        first = ensure_database("BENCH_DATABASE_URL", env=env)
        second = ensure_database("BENCH_DATABASE_URL", env=env)

        assert first.returncode == 0, first.stderr
        assert first.stdout == f"Database {name} created.\n"
        assert second.returncode == 0, second.stderr
        assert second.stdout == f"Database {name} is there.\n"
        assert database_exists(name)
    finally:
        drop_database(name)


def test_a_variable_without_a_database_url_exits_2_and_creates_nothing():
    outcome = ensure_database("BENCH_DATABASE_URL", env={"BENCH_DATABASE_URL": "redis://x/1"})

    assert outcome.returncode == 2
    assert outcome.stderr == (
        "ensure_database.py: BENCH_DATABASE_URL must be "
        "postgres://role[:password]@host:port/database\n"
    )


def test_make_bench_uses_the_databases_its_urls_name_and_prints_no_url():
    bench, audit = f"{SERVER}/some_bench", "postgres://someone:secret@127.0.0.1:5432/other_bench"

    dry = make("-n", "bench", f"BENCH_DATABASE_URL={bench}", f"BENCH_AUDIT_DATABASE_URL={audit}")

    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    [ensure] = [i for i, line in enumerate(lines) if "scripts/ensure_database.py" in line]
    assert lines[ensure].endswith("ensure_database.py BENCH_DATABASE_URL BENCH_AUDIT_DATABASE_URL")
    migrations = [i for i, line in enumerate(lines) if "manage.py migrate" in line]
    assert [lines[i].split()[0] for i in migrations] == [
        'DATABASE_URL="$BENCH_DATABASE_URL"',
        'DATABASE_URL="$BENCH_AUDIT_DATABASE_URL"',
    ]
    assert ensure < migrations[0]
    assert "some_bench" not in dry.stdout
    assert "secret" not in dry.stdout
