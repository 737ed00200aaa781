"""Switched-off enforcement is noticed: the triggers that keep the audit tables append-only
are read back from PostgreSQL's catalogue, by verification and by ``check --deploy``.

Each attack is DDL inside the test's transaction, which PostgreSQL rolls back with it.
"""

import importlib
from io import StringIO

import pytest
from django.core import checks
from django.core.management import call_command
from django.db import DatabaseError, OperationalError, connection

from auditing import checks as auditing_checks
from auditing.enforcement import (
    APPEND_ONLY_TABLES,
    REFUSE_CHANGE_BODY,
    append_only_enforcement_problems,
)
from auditing.models import AuditEntry
from auditing.services import audit_entry_append

pytestmark = pytest.mark.django_db

ENTRY_TRIGGERS = ("auditing_auditentry_no_update_delete", "auditing_auditentry_no_truncate")
ALL_TRIGGERS = [
    (table, f"{table}_{kind}")
    for table in APPEND_ONLY_TABLES
    for kind in ("no_update_delete", "no_truncate")
]
NO_OP = """
CREATE OR REPLACE FUNCTION auditing_refuse_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;  -- NEW is null for a DELETE: it would skip it
    RETURN NEW;
END $$ LANGUAGE plpgsql
"""


def _sql(*statements: str) -> None:
    with connection.cursor() as cursor:
        # ALTER TABLE refuses to run while deferred FK checks (actor_id) are pending.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for statement in statements:
            cursor.execute(statement)


def _normalized(text: str) -> str:
    return " ".join(text.split())


def _deploy_messages() -> list[checks.CheckMessage]:
    return [
        message
        for message in checks.run_checks(include_deployment_checks=True)
        # auditing.W003 (the tests connect as a superuser): tests/auditing/test_database_roles.py
        if message.id and message.id.startswith("auditing.") and message.id != "auditing.W003"
    ]


def test_the_expected_body_is_the_one_migration_0002_installs():
    migration = importlib.import_module("auditing.migrations.0002_append_only_triggers")

    assert _normalized(REFUSE_CHANGE_BODY) in _normalized(migration.INSTALL)


def test_a_migrated_database_is_append_only():
    assert append_only_enforcement_problems() == []
    assert _deploy_messages() == []


@pytest.mark.parametrize(("table", "trigger"), ALL_TRIGGERS)
def test_a_disabled_trigger_is_reported(table, trigger):
    _sql(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")

    assert append_only_enforcement_problems() == [f"{table}: trigger {trigger} is disabled"]


def test_all_triggers_of_the_table_disabled_are_reported_foreign_keys_too():
    _sql("ALTER TABLE auditing_auditentry DISABLE TRIGGER ALL")

    assert append_only_enforcement_problems() == [
        "auditing_auditentry: trigger auditing_auditentry_no_update_delete is disabled",
        "auditing_auditentry: trigger auditing_auditentry_no_truncate is disabled",
        "auditing_auditentry: its foreign-key triggers are disabled too, as "
        "ALTER TABLE auditing_auditentry DISABLE TRIGGER ALL does",
    ]


def test_user_triggers_disabled_are_reported_each():
    _sql("ALTER TABLE auditing_checkpoint DISABLE TRIGGER USER")

    assert append_only_enforcement_problems() == [
        "auditing_checkpoint: trigger auditing_checkpoint_no_update_delete is disabled",
        "auditing_checkpoint: trigger auditing_checkpoint_no_truncate is disabled",
    ]


def test_a_trigger_enabled_for_replication_only_is_reported():
    trigger = "auditing_auditentry_no_update_delete"
    _sql(f"ALTER TABLE auditing_auditentry ENABLE REPLICA TRIGGER {trigger}")

    assert append_only_enforcement_problems() == [
        f"auditing_auditentry: trigger {trigger} fires only for replication "
        "(ENABLE REPLICA TRIGGER), never for the application"
    ]


def test_a_trigger_enabled_always_still_counts_as_enforcing():
    _sql("ALTER TABLE auditing_auditentry ENABLE ALWAYS TRIGGER auditing_auditentry_no_truncate")

    assert append_only_enforcement_problems() == []


def test_the_function_replaced_by_a_no_op_lets_changes_through_and_is_reported():
    audit_entry_append(action="chain.grew", actor=None, data={"n": 1})
    audit_entry_append(action="chain.grew", actor=None, data={"n": 2})
    _sql(NO_OP)

    # The no-op is real: the ORM now changes and deletes entries.
    assert AuditEntry.objects.filter(sequence=1).update(action="rewritten") == 1
    assert AuditEntry.objects.get(sequence=1).action == "rewritten"
    AuditEntry.objects.filter(sequence=2).delete()
    assert not AuditEntry.objects.filter(sequence=2).exists()

    assert append_only_enforcement_problems() == [
        "function auditing_refuse_change(), which triggers "
        "auditing_auditentry_no_update_delete, auditing_auditentry_no_truncate, "
        "auditing_checkpoint_no_update_delete, auditing_checkpoint_no_truncate run, is not "
        "the one migration 0002 installed: it may no longer refuse anything"
    ]


def test_the_same_function_reindented_is_not_a_change():
    indented = REFUSE_CHANGE_BODY.replace("\n    ", "\n\t\t")
    _sql(
        "CREATE OR REPLACE FUNCTION auditing_refuse_change() RETURNS trigger AS "
        f"$$ {indented} $$ LANGUAGE plpgsql"
    )

    assert append_only_enforcement_problems() == []


@pytest.mark.parametrize(("table", "trigger"), ALL_TRIGGERS)
def test_a_dropped_trigger_is_reported(table, trigger):
    _sql(f"DROP TRIGGER {trigger} ON {table}")

    assert append_only_enforcement_problems() == [f"{table}: trigger {trigger} is missing"]


def _recreate(definition: str) -> None:
    trigger = "auditing_auditentry_no_update_delete"
    _sql(
        f"DROP TRIGGER {trigger} ON auditing_auditentry",
        f"CREATE TRIGGER {trigger} {definition}",
    )


def test_a_trigger_recreated_with_a_condition_that_never_holds_is_reported():
    audit_entry_append(action="chain.grew", actor=None)
    _recreate(
        "BEFORE UPDATE OR DELETE ON auditing_auditentry FOR EACH ROW WHEN (false) "
        "EXECUTE FUNCTION auditing_refuse_change()"
    )
    assert AuditEntry.objects.filter(sequence=1).update(action="rewritten") == 1

    assert append_only_enforcement_problems() == [
        "auditing_auditentry: trigger auditing_auditentry_no_update_delete has a WHEN "
        "condition that can skip it"
    ]


def test_a_trigger_recreated_for_other_events_is_reported():
    _recreate(
        "AFTER INSERT ON auditing_auditentry FOR EACH STATEMENT "
        "EXECUTE FUNCTION auditing_refuse_change()"
    )

    assert append_only_enforcement_problems() == [
        "auditing_auditentry: trigger auditing_auditentry_no_update_delete fires AFTER INSERT "
        "FOR EACH STATEMENT instead of BEFORE UPDATE OR DELETE FOR EACH ROW"
    ]


def test_a_trigger_recreated_for_some_columns_only_is_reported():
    _recreate(
        "BEFORE UPDATE OF action OR DELETE ON auditing_auditentry FOR EACH ROW "
        "EXECUTE FUNCTION auditing_refuse_change()"
    )

    assert append_only_enforcement_problems() == [
        "auditing_auditentry: trigger auditing_auditentry_no_update_delete fires only for "
        "updates of some columns (UPDATE OF)"
    ]


def test_a_trigger_pointed_at_another_function_is_reported():
    _sql(
        "CREATE FUNCTION audit_let_through() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$ "
        "LANGUAGE plpgsql"
    )
    _recreate(
        "BEFORE UPDATE OR DELETE ON auditing_auditentry FOR EACH ROW "
        "EXECUTE FUNCTION audit_let_through()"
    )

    assert append_only_enforcement_problems() == [
        "auditing_auditentry: trigger auditing_auditentry_no_update_delete runs "
        "audit_let_through() instead of auditing_refuse_change()"
    ]


def test_a_missing_table_is_reported():
    _sql("ALTER TABLE auditing_checkpoint RENAME TO auditing_checkpoint_elsewhere")

    assert append_only_enforcement_problems() == [
        "auditing_checkpoint: the table does not exist, so nothing keeps it append-only"
    ]


def test_replica_mode_for_the_session_is_reported():
    _sql("SET LOCAL session_replication_role = replica")

    [problem] = append_only_enforcement_problems()

    assert problem.startswith(
        "session_replication_role is 'replica' for the application's connections"
    )


def test_sqlite_has_nothing_to_check(monkeypatch):
    """The demo's database: no triggers, and production refuses anything but PostgreSQL."""
    monkeypatch.setattr(connection, "vendor", "sqlite")

    assert append_only_enforcement_problems() == []


def test_a_failed_read_leaves_the_callers_transaction_usable(monkeypatch):
    monkeypatch.setattr("auditing.enforcement._TRIGGERS_SQL", "SELECT * FROM no_such_table")

    with pytest.raises(DatabaseError):
        append_only_enforcement_problems()

    assert AuditEntry.objects.count() == 0


# --- check --deploy ---------------------------------------------------------------------


def test_check_deploy_warns_when_enforcement_is_off():
    _sql(f"ALTER TABLE auditing_auditentry DISABLE TRIGGER {ENTRY_TRIGGERS[0]}")
    _sql(NO_OP)

    [warning] = _deploy_messages()

    assert warning.id == "auditing.W001"
    assert warning.level == checks.WARNING
    assert warning.msg == (
        "Append-only enforcement of the audit trail is off: "
        f"auditing_auditentry: trigger {ENTRY_TRIGGERS[0]} is disabled; "
        "function auditing_refuse_change(), which triggers "
        "auditing_auditentry_no_update_delete, auditing_auditentry_no_truncate, "
        "auditing_checkpoint_no_update_delete, auditing_checkpoint_no_truncate run, is not "
        "the one migration 0002 installed: it may no longer refuse anything."
    )
    assert "ENABLE TRIGGER" in warning.hint
    assert "0002_append_only_triggers.py" in warning.hint


def test_the_check_command_shows_the_warning():
    _sql(f"ALTER TABLE auditing_auditentry DISABLE TRIGGER {ENTRY_TRIGGERS[1]}")
    out, err = StringIO(), StringIO()

    call_command("check", deploy=True, stdout=out, stderr=err)

    shown = out.getvalue() + err.getvalue()
    assert "auditing.W001" in shown
    assert f"trigger {ENTRY_TRIGGERS[1]} is disabled" in shown


def test_a_plain_check_does_not_read_the_database():
    _sql(f"ALTER TABLE auditing_auditentry DISABLE TRIGGER {ENTRY_TRIGGERS[0]}")

    assert [m for m in checks.run_checks() if (m.id or "").startswith("auditing.")] == []


def test_check_deploy_warns_when_it_cannot_read_the_catalogue(monkeypatch):
    def database_gone(*args, **kwargs):
        raise OperationalError('connection to server at "db" failed\nmore')

    monkeypatch.setattr(auditing_checks, "append_only_enforcement_problems", database_gone)

    [warning] = auditing_checks.append_only_enforcement_check(None)

    assert warning.id == "auditing.W002"
    assert warning.msg == (
        'Could not check that the audit trail is append-only: connection to server at "db" failed'
    )
