"""``setup_database_roles``: the application's role may read and add to the audit trail, and
cannot change it even when the owner has switched the append-only triggers off; it may add and
change money rows but never delete them, and it owns nothing, so it can neither switch the
triggers off nor alter a table. ``check --deploy`` warns when the application connects as a
role that could (auditing.W003).

The role logs in over its own connection (trust authentication on 127.0.0.1), so the data
it sees must be committed: these tests are transactional, and drop their roles afterwards.
"""

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest
from django.conf import settings
from django.core import checks
from django.db import connection, transaction
from psycopg2 import errors, sql

from auditing.checks import application_role_check
from auditing.enforcement import APPEND_ONLY_TABLES
from auditing.models import AuditEntry
from auditing.services import audit_entry_append
from payments.models import CashSession, CashTransaction, Commission
from tests.commands import command_run
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
COMMAND = "setup_database_roles"
UPDATES = {
    "auditing_auditentry": "UPDATE auditing_auditentry SET action = 'rewritten' WHERE sequence = 2",
    "auditing_checkpoint": "UPDATE auditing_checkpoint SET id = id",
}


def _owner_sql(statement: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def _role_exists(name: str) -> bool:
    return bool(_owner_sql("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]))


def _triggers(switch: str) -> None:
    """As the owner, committed: what an owner can do and the application's role cannot."""
    for table in APPEND_ONLY_TABLES:
        _owner_sql(f"ALTER TABLE {table} {switch} TRIGGER USER")


@pytest.fixture
def role_name(transactional_db) -> Iterator[str]:
    """A role name no other test run uses; the role, its grants and the triggers' state are
    put back afterwards."""
    name = f"test_app_{uuid.uuid4().hex[:12]}"
    yield name
    try:
        _owner_sql("RESET ROLE")
        _triggers("ENABLE")
        _owner_sql("REVOKE UPDATE ON auditing_auditentry FROM PUBLIC")
        _owner_sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    finally:  # roles outlive the test database: never leave one behind
        if _role_exists(name):
            _owner_sql(f'REASSIGN OWNED BY "{name}" TO current_user')
            _owner_sql(f'DROP OWNED BY "{name}"')
            _owner_sql(f'DROP ROLE "{name}"')


@pytest.fixture
def connect_as() -> Iterator[Callable[[str], "psycopg2.extensions.connection"]]:
    """Open a connection to the test database as another role, closed afterwards."""
    opened = []

    def connect(role: str):
        settings = connection.settings_dict
        app = psycopg2.connect(
            dbname=settings["NAME"],
            host=settings["HOST"] or "127.0.0.1",
            port=settings["PORT"] or 5432,
            user=role,
        )
        app.autocommit = True  # each refused statement on its own
        opened.append(app)
        return app

    yield connect
    for app in opened:
        app.close()


def _refused(app, statement: str, message: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege, match=message), app.cursor() as cursor:
        cursor.execute(statement)


def _entry_copy_sql() -> sql.Composed:
    """Insert a copy of the newest entry as the next one, whatever the table's columns: the
    role's INSERT is what is tested, not the chain."""
    columns = [
        row[0]
        for row in _owner_sql(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'auditing_auditentry' ORDER BY ordinal_position"
        )
    ]
    # Linked to the newest entry, with a hash of its own (hashes are unique).
    changed = {
        "sequence": sql.SQL("sequence + 1"),
        "previous_hash": sql.SQL("current_hash"),
        "current_hash": sql.SQL("md5(random()::text) || md5(random()::text)"),
    }
    values = [changed.get(column, sql.Identifier(column)) for column in columns]
    return sql.SQL(
        "INSERT INTO auditing_auditentry ({}) SELECT {} FROM auditing_auditentry "
        "ORDER BY sequence DESC LIMIT 1"
    ).format(sql.SQL(", ").join(map(sql.Identifier, columns)), sql.SQL(", ").join(values))


def test_the_app_role_cannot_change_the_trail_even_with_the_triggers_off(role_name, connect_as):
    for n in range(3):
        audit_entry_append(action="chain.grew", actor=None, data={"n": n})
    run = command_run(COMMAND, "--app-role", role_name)
    _triggers("DISABLE")
    # The owner could now rewrite the trail (shown in a transaction rolled back).
    with transaction.atomic():
        assert AuditEntry.objects.filter(sequence=2).update(action="rewritten") == 1
        transaction.set_rollback(True)

    app = connect_as(role_name)
    with app.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM auditing_auditentry")
        assert cursor.fetchone() == (3,)
        cursor.execute(_entry_copy_sql())
        assert cursor.rowcount == 1
        cursor.execute("SELECT count(*) FROM auditing_checkpoint")
        # Adding a checkpoint: the privilege, and its id sequence.
        cursor.execute("INSERT INTO auditing_checkpoint SELECT * FROM auditing_checkpoint LIMIT 0")
        cursor.execute("SELECT nextval(pg_get_serial_sequence('auditing_checkpoint', 'id'))")
    assert AuditEntry.objects.count() == 4

    for table, update in UPDATES.items():
        denied = f"permission denied for table {table}"
        _refused(app, update, denied)
        _refused(app, f"DELETE FROM {table}", denied)  # noqa: S608 - constant names
        _refused(app, f"TRUNCATE {table}", denied)
        _refused(app, f"ALTER TABLE {table} ENABLE TRIGGER USER", f"must be owner of table {table}")
        _refused(app, f"DROP TABLE {table}", f"must be owner of table {table}")
    assert AuditEntry.objects.count() == 4
    assert set(AuditEntry.objects.values_list("action", flat=True)) == {"chain.grew"}
    assert f"created role {role_name} (LOGIN, no password)" in run.stdout


def test_the_app_role_reads_and_writes_every_other_table(role_name, connect_as):
    command_run(COMMAND, "--app-role", role_name)

    app = connect_as(role_name)
    with app.cursor() as cursor:
        for table, column in (
            ("payments_agent", "id"),
            ("auditing_verificationrun", "id"),
            ("django_session", "session_key"),
        ):
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - constant names
            cursor.execute(f"UPDATE {table} SET {column} = {column}")  # noqa: S608
            cursor.execute(f"DELETE FROM {table} WHERE false")  # noqa: S608


def test_running_again_changes_nothing_and_sets_the_password_from_the_environment(
    role_name, monkeypatch
):
    monkeypatch.setenv("CASH_APP_DB_PASSWORD", "s3cret-pw")
    first = command_run(COMMAND, "--app-role", role_name, "--password-env", "CASH_APP_DB_PASSWORD")
    second = command_run(COMMAND, "--app-role", role_name, "--password-env", "CASH_APP_DB_PASSWORD")

    assert f"created role {role_name} (LOGIN, password from $CASH_APP_DB_PASSWORD)" in first.stdout
    assert (
        f"role {role_name} exists: LOGIN, password set from $CASH_APP_DB_PASSWORD" in second.stdout
    )
    for run in (first, second):
        assert "s3cret-pw" not in run.stdout + run.stderr
        assert "granted SELECT, INSERT on auditing_auditentry" in run.stdout
        assert "revoked UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES on auditing_checkpoint" in (
            run.stdout
        )
        assert run.stdout.splitlines()[-1].startswith(f"Role {role_name} is set up")
    [(can_login, stored)] = _owner_sql(
        "SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = %s", [role_name]
    )
    assert can_login
    # Hashed before it was sent: the server (and its statement log) never saw it in clear.
    assert stored.startswith(("SCRAM-SHA-256$", "md5"))
    # One line per action, the same actions the second time.
    assert len(first.stdout.splitlines()) == len(second.stdout.splitlines())


def test_dry_run_prints_the_sql_and_changes_nothing(role_name, monkeypatch):
    monkeypatch.setenv("CASH_APP_DB_PASSWORD", "s3cret-pw")

    run = command_run(
        COMMAND, "--app-role", role_name, "--password-env", "CASH_APP_DB_PASSWORD", "--dry-run"
    )

    lines = run.stdout.splitlines()
    assert lines[0] == (
        f'CREATE ROLE "{role_name}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
        "PASSWORD <the password in $CASH_APP_DB_PASSWORD>;"
    )
    assert (
        'REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON TABLE "public".'
        f'"auditing_auditentry" FROM "{role_name}";'
    ) in lines
    assert (
        f'GRANT SELECT, INSERT ON TABLE "public"."auditing_checkpoint" TO "{role_name}";' in lines
    )
    assert lines[-1] == "Dry run: nothing was changed."
    assert "s3cret-pw" not in run.stdout
    assert not _role_exists(role_name)


@pytest.mark.parametrize("name", ["App", "1app", "app;drop role postgres", "a" * 64, ""])
def test_a_bad_role_name_exits_2_and_writes_nothing(name):
    run = command_run(COMMAND, "--app-role", name, expect_exit=2)

    assert "is not a plain role name" in run.stderr
    assert run.stdout == ""


def test_a_password_variable_that_is_not_set_exits_2(role_name, monkeypatch):
    monkeypatch.delenv("CASH_APP_DB_PASSWORD", raising=False)

    run = command_run(
        COMMAND, "--app-role", role_name, "--password-env", "CASH_APP_DB_PASSWORD", expect_exit=2
    )

    assert "--password-env names CASH_APP_DB_PASSWORD, which is not set or empty" in run.stderr
    assert not _role_exists(role_name)


def test_the_owner_itself_is_refused():
    [(owner,)] = _owner_sql("SELECT current_user")

    run = command_run(COMMAND, "--app-role", owner, expect_exit=2)

    assert "which owns the tables and may switch the triggers off" in run.stderr


@pytest.mark.parametrize(
    ("make_unsafe", "message"),
    [
        ('CREATE ROLE "{role}" LOGIN SUPERUSER', "is a superuser or may create roles"),
        ('CREATE ROLE "{role}" LOGIN CREATEROLE', "is a superuser or may create roles"),
        ('CREATE ROLE "{role}" LOGIN IN ROLE current_user', "which owns the audit tables"),
    ],
    ids=["superuser", "createrole", "member-of-the-owner"],
)
def test_a_role_that_could_give_itself_the_owners_rights_is_refused(
    role_name, make_unsafe, message
):
    [(owner,)] = _owner_sql("SELECT current_user")
    _owner_sql(make_unsafe.format(role=role_name).replace("current_user", f'"{owner}"'))

    run = command_run(COMMAND, "--app-role", role_name, expect_exit=2)

    assert message in run.stderr
    assert not _owner_sql(
        "SELECT 1 FROM information_schema.role_table_grants WHERE grantee = %s", [role_name]
    )


def test_a_privilege_held_through_public_is_refused_and_nothing_is_changed(role_name):
    _owner_sql("GRANT UPDATE ON auditing_auditentry TO PUBLIC")

    run = command_run(COMMAND, "--app-role", role_name, expect_exit=1)

    assert (
        f"Role {role_name} would still hold UPDATE on auditing_auditentry, through PUBLIC or a "
        "role it belongs to" in run.stderr
    )
    assert not _role_exists(role_name)


def test_from_the_shell_a_bad_name_is_one_line_and_exit_code_2():
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "manage.py", COMMAND, "--app-role", "Bad-Name"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "CommandError: --app-role 'Bad-Name' is not a plain role name: use lowercase letters, "
        "digits and _, starting with a letter or _ (at most 63)."
    ]


def test_help_says_to_run_it_as_the_owner_after_each_migrate_and_gives_the_exit_codes():
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "manage.py", COMMAND, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "Run it as the role that owns the tables" in text
    assert "again after each migrate" in text
    assert "--password-env VAR" in text
    assert "2 bad arguments" in text


def test_the_money_tables_are_the_payments_models_tables():
    """Named in settings, so that auditing need not import payments; held to the models here."""
    assert settings.MONEY_TABLES == tuple(
        model._meta.db_table for model in (CashSession, CashTransaction, Commission)
    )


# What a role that owns nothing is refused, whatever rows there are: each statement, the
# error PostgreSQL gives.
POWERLESS = {
    "ALTER TABLE auditing_auditentry DISABLE TRIGGER ALL": "must be owner of table",
    "ALTER TABLE auditing_auditentry DISABLE TRIGGER USER": "must be owner of table",
    "DROP TRIGGER auditing_auditentry_no_update_delete ON auditing_auditentry": (
        "must be owner of relation auditing_auditentry"
    ),
    "CREATE OR REPLACE FUNCTION auditing_refuse_change() RETURNS trigger LANGUAGE plpgsql "
    "AS 'BEGIN RETURN NULL; END'": "must be owner of function|permission denied for schema",
    "DELETE FROM auditing_auditentry": "permission denied for table auditing_auditentry",
    "TRUNCATE auditing_auditentry": "permission denied for table auditing_auditentry",
    "UPDATE auditing_auditentry SET action = 'rewritten'": "permission denied for table",
    "DELETE FROM auditing_checkpoint": "permission denied for table auditing_checkpoint",
    "ALTER TABLE payments_commission ADD COLUMN sneaky integer": "must be owner of table",
    "ALTER TABLE payments_commission DROP CONSTRAINT IF EXISTS x": "must be owner of table",
    "DELETE FROM payments_cashtransaction": "permission denied for table payments_cashtrans",
    "DELETE FROM payments_cashsession": "permission denied for table payments_cashsession",
    "DELETE FROM payments_commission": "permission denied for table payments_commission",
    "TRUNCATE payments_cashsession CASCADE": "permission denied for table payments_cashsession",
    "CREATE TRIGGER t BEFORE DELETE ON payments_commission FOR EACH ROW EXECUTE FUNCTION "
    "auditing_refuse_change()": "permission denied for table|must be owner",
    "SET session_replication_role = replica": 'permission denied to set parameter "session_rep',
    "CREATE TABLE sneaky (id integer)": "permission denied for schema public",
    "DROP TABLE payments_commission": "must be owner of table payments_commission",
}


def test_the_app_role_owns_nothing_and_is_refused_every_way_around_the_trail(role_name, connect_as):
    audit_entry_append(action="chain.grew", actor=None, data={"n": 1})
    command_run(COMMAND, "--app-role", role_name)
    app = connect_as(role_name)

    for statement, message in POWERLESS.items():
        with pytest.raises(errors.InsufficientPrivilege, match=message), app.cursor() as cursor:
            cursor.execute(statement)
    # What the application does to money rows it may still do.
    with app.cursor() as cursor:
        for table in settings.MONEY_TABLES:
            cursor.execute(f"UPDATE {table} SET id = id")  # noqa: S608 - constant names
    assert not _owner_sql(
        "SELECT c.relname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
        "WHERE r.rolname = %s",
        [role_name],
    )
    [(superuser, create_role, create_db)] = _owner_sql(
        "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = %s",
        [role_name],
    )
    assert not (superuser or create_role or create_db)
    assert AuditEntry.objects.count() == 1
    assert application_role_check(None) != []  # this test's own connection: a superuser


def test_a_role_granted_delete_on_the_money_tables_loses_it_when_run_again(role_name):
    _owner_sql(f'CREATE ROLE "{role_name}" LOGIN')
    _owner_sql(f'GRANT SELECT, DELETE, TRUNCATE ON payments_commission TO "{role_name}"')

    run = command_run(COMMAND, "--app-role", role_name)

    assert "revoked DELETE, TRUNCATE, TRIGGER, REFERENCES on payments_commission" in run.stdout
    assert "granted SELECT, INSERT, UPDATE on payments_cashsession" in run.stdout
    assert "revoked CREATE on schema public" in run.stdout
    assert _owner_sql(
        "SELECT has_table_privilege(%s, 'payments_commission', 'DELETE'), "
        "has_table_privilege(%s, 'payments_commission', 'TRUNCATE'), "
        "has_table_privilege(%s, 'payments_commission', 'UPDATE')",
        [role_name] * 3,
    ) == [(False, False, True)]
    assert run.stdout.splitlines()[-1] == (
        f"Role {role_name} is set up: it may only read and add to auditing_auditentry, "
        "auditing_checkpoint, and never delete rows of payments_cashsession, "
        "payments_cashtransaction, payments_commission. Run this again after each migrate."
    )


@pytest.mark.parametrize(
    ("grant", "held"),
    [
        (
            "GRANT DELETE ON payments_cashtransaction TO PUBLIC",
            "DELETE on payments_cashtransaction",
        ),
        ("GRANT CREATE ON SCHEMA public TO PUBLIC", "CREATE on schema public"),
    ],
    ids=["delete-on-money", "create-on-schema"],
)
def test_a_power_held_through_public_is_refused_and_nothing_is_changed(role_name, grant, held):
    _owner_sql(grant)
    try:
        run = command_run(COMMAND, "--app-role", role_name, expect_exit=1)
    finally:
        _owner_sql(grant.replace("GRANT", "REVOKE").replace(" TO ", " FROM "))

    assert f"Role {role_name} would still hold {held}, through PUBLIC" in run.stderr
    assert not _role_exists(role_name)


def test_the_application_runs_as_the_app_role_records_a_payment_and_verifies_the_trail(
    role_name, tmp_path
):
    """The application's own services, in a process of its own connected as the role."""
    agent = AgentFactory()
    command_run(COMMAND, "--app-role", role_name)
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_ENV": "test",
        "DATABASE_URL": (
            f"postgres://{role_name}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        ),
        "AUDIT_CHECKPOINT_SINKS": f"file://{tmp_path}",
    }
    script = (
        "from decimal import Decimal\n"
        "from django.db import connection\n"
        "from payments.models import Agent\n"
        "from payments.services import session_open, transaction_record\n"
        f"agent = Agent.objects.get(pk={agent.pk})\n"
        "session = session_open(agent=agent, opening_balance=Decimal('10000'), actor=agent.user)\n"
        "transaction_record(session=session, payer_reference='NIF-0001', "
        "tax_amount=Decimal('5000'), amount_tendered=Decimal('5000'), actor=agent.user)\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('SELECT current_user')\n"
        "    print(cursor.fetchone()[0])\n"
    )

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(  # noqa: S603 - our own manage.py
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    recorded = manage("shell", "-v", "0", "-c", script)
    verified = manage("verify_audit_trail")

    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout.split() == [role_name]
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert CashTransaction.objects.filter(session__agent=agent).count() == 1
    assert set(AuditEntry.objects.values_list("action", flat=True)) >= {"session.opened"}
    # The checkpoint the run signed was added as the role too.
    assert _owner_sql("SELECT count(*) FROM auditing_checkpoint") == [(1,)]


# --- check --deploy: the role the application connects as (auditing.W003) ----------------


def _as_role(role: str) -> list[checks.CheckMessage]:
    """The check, run on this test's connection switched to ``role`` (RESET by role_name)."""
    _owner_sql(f'SET ROLE "{role}"')
    try:
        return application_role_check(None)
    finally:
        _owner_sql("RESET ROLE")


def test_check_deploy_warns_when_the_application_connects_as_a_superuser():
    [(user,)] = _owner_sql("SELECT current_user")

    [warning] = application_role_check(None)

    assert warning.id == "auditing.W003"
    assert warning.level == checks.WARNING
    assert warning.msg == (
        f"The application connects to the database as {user}, a superuser: it may switch the "
        "audit trail's append-only triggers off, alter its tables and delete its entries."
    )
    assert "setup_database_roles --app-role" in warning.hint


def test_check_deploy_warns_when_the_application_owns_an_audit_table(role_name):
    _owner_sql(f'CREATE ROLE "{role_name}" LOGIN')
    _owner_sql(f'ALTER TABLE auditing_checkpoint OWNER TO "{role_name}"')

    [warning] = _as_role(role_name)

    assert warning.id == "auditing.W003"
    assert warning.msg.startswith(
        f"The application connects to the database as {role_name}, which owns "
        "auditing_checkpoint: it may switch"
    )


def test_check_deploy_warns_when_the_application_belongs_to_the_owner(role_name):
    [(owner,)] = _owner_sql("SELECT current_user")
    _owner_sql(f'CREATE ROLE "{role_name}" LOGIN IN ROLE "{owner}"')

    [warning] = _as_role(role_name)

    assert warning.msg.startswith(
        f"The application connects to the database as {role_name}, a member of {owner}, "
        "which owns auditing_auditentry, auditing_checkpoint: "
    )


def test_check_deploy_is_quiet_for_the_role_setup_database_roles_made(role_name):
    command_run(COMMAND, "--app-role", role_name)

    assert _as_role(role_name) == []
    assert [m.id for m in checks.run_checks(include_deployment_checks=True)].count(
        "auditing.W003"
    ) == 1  # back on this test's superuser connection


@pytest.mark.parametrize(
    ("existing", "password", "message"),
    [
        (None, False, "does not exist"),
        ("NOLOGIN", False, "may not log in"),
        ("LOGIN", True, "exists"),
    ],
    ids=["missing", "nologin", "password"],
)
def test_an_owner_that_may_not_manage_roles_asks_for_the_role_to_be_made_first(
    role_name, monkeypatch, existing, password, message
):
    """Compose's and the stack's owner is no superuser and cannot create roles: the init
    script makes the application's role, and this command only grants."""
    owner = f"{role_name}_owner"
    monkeypatch.setenv("CASH_APP_DB_PASSWORD", "s3cret-pw")
    if existing:
        _owner_sql(f'CREATE ROLE "{role_name}" {existing}')
    _owner_sql(f'CREATE ROLE "{owner}"')
    try:
        _owner_sql(f'SET ROLE "{owner}"')
        run = command_run(
            COMMAND,
            "--app-role",
            role_name,
            *(["--password-env", "CASH_APP_DB_PASSWORD"] if password else []),
            expect_exit=1,
        )
    finally:
        _owner_sql("RESET ROLE")
        _owner_sql(f'DROP ROLE "{owner}"')

    assert (
        f"Role {role_name} {message}, and {owner} may not create or alter roles: as a superuser"
        in run.stderr
    )
    assert "deploy/postgres/10-roles.sh" in run.stderr


def test_a_role_that_may_already_log_in_is_left_as_it_is_and_only_granted(role_name):
    """What the stack's and compose's migrate do, as an owner that may not alter roles."""
    _owner_sql(f'CREATE ROLE "{role_name}" LOGIN')

    run = command_run(COMMAND, "--app-role", role_name, "--dry-run")

    assert run.stdout.splitlines()[0].startswith("GRANT CONNECT ON DATABASE")
