"""Is the audit trail still append-only? The triggers of migrations 0002 and 0004, read back
from PostgreSQL's catalogue.

The triggers refuse UPDATE, DELETE and TRUNCATE, but whoever owns the tables can disable
them, drop them, or replace their function with one that refuses nothing, and nothing
would say so. Verification (``verify_audit_trail``) and ``check --deploy`` call
:func:`append_only_enforcement_problems` to say so.
"""

from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections, transaction

APPEND_ONLY_TABLES = ("auditing_auditentry", "auditing_checkpoint")
REFUSE_CHANGE_FUNCTION = "auditing_refuse_change"
# The function's body as migration 0002 installed it (tests/auditing/test_enforcement.py
# checks the migration still contains it, so the two cannot drift apart). Compared with
# whitespace normalized: how the SQL was indented is not a change.
REFUSE_CHANGE_BODY = """
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % is refused', TG_OP, TG_TABLE_NAME;
END;
"""

# pg_trigger.tgtype's bits (PostgreSQL's include/catalog/pg_trigger.h).
_ROW, _BEFORE, _INSERT, _DELETE, _UPDATE, _TRUNCATE, _INSTEAD = 1, 2, 4, 8, 16, 32, 64


@dataclass(frozen=True)
class _Expected:
    name: str
    tgtype: int


def expected_triggers(table: str) -> tuple[_Expected, ...]:
    """The two triggers every append-only table has: one per row for UPDATE and DELETE, one
    per statement for TRUNCATE, both BEFORE, both running ``auditing_refuse_change()``."""
    return (
        _Expected(f"{table}_no_update_delete", _ROW | _BEFORE | _UPDATE | _DELETE),
        _Expected(f"{table}_no_truncate", _BEFORE | _TRUNCATE),
    )


def _fires(tgtype: int) -> str:
    """``tgtype`` in words, e.g. "BEFORE UPDATE OR DELETE FOR EACH ROW"."""
    if tgtype & _INSTEAD:
        timing = "INSTEAD OF"
    else:
        timing = "BEFORE" if tgtype & _BEFORE else "AFTER"
    events = [
        event
        for bit, event in (
            (_INSERT, "INSERT"),
            (_UPDATE, "UPDATE"),
            (_DELETE, "DELETE"),
            (_TRUNCATE, "TRUNCATE"),
        )
        if tgtype & bit
    ]
    level = "ROW" if tgtype & _ROW else "STATEMENT"
    return f"{timing} {' OR '.join(events)} FOR EACH {level}"


def _normalized(source: str) -> str:
    return " ".join(source.split())


_TRIGGERS_SQL = """
SELECT t.tgname, t.tgenabled, t.tgtype, t.tgisinternal, t.tgqual IS NOT NULL,
       cardinality(t.tgattr::int2[]), t.tgfoid, p.proname, l.lanname, p.prosrc
FROM pg_trigger t
JOIN pg_proc p ON p.oid = t.tgfoid
JOIN pg_language l ON l.oid = p.prolang
WHERE t.tgrelid = %s
"""


def append_only_enforcement_problems(using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """One English sentence per way the audit tables are no longer append-only, each naming
    its table and trigger; empty when the triggers stand as the migrations installed them.

    SQLite (the demo's database) has no such triggers to check: the demo keeps no evidence
    worth guarding, and production refuses to run on anything but PostgreSQL.

    Raises ``DatabaseError`` when the catalogue cannot be read; a savepoint keeps the
    caller's transaction usable.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return []
    problems: list[str] = []
    # Functions by oid, with the triggers that run them: a replaced function is one
    # problem, however many triggers run it.
    functions: dict[int, tuple[str, str, str, list[str]]] = {}
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('session_replication_role')")
        (replication_role,) = cursor.fetchone()
        if replication_role == "replica":
            problems.append(
                "session_replication_role is 'replica' for the application's connections "
                "(set for the database or its role): the append-only triggers do not fire "
                "there, so nothing refuses changes to the audit tables"
            )
        for table in APPEND_ONLY_TABLES:
            cursor.execute("SELECT to_regclass(%s)::oid", [table])
            (table_oid,) = cursor.fetchone()
            if table_oid is None:
                problems.append(
                    f"{table}: the table does not exist, so nothing keeps it append-only"
                )
                continue
            cursor.execute(_TRIGGERS_SQL, [table_oid])
            rows = cursor.fetchall()
            triggers = {row[0]: row for row in rows if not row[3]}
            for expected in expected_triggers(table):
                row = triggers.get(expected.name)
                if row is None:
                    problems.append(f"{table}: trigger {expected.name} is missing")
                    continue
                problems.extend(_trigger_problems(table, expected, row))
                _, _, _, _, _, _, function_oid, function, language, source = row
                functions.setdefault(function_oid, (function, language, source, []))[3].append(
                    expected.name
                )
            if any(row[3] and row[1] == "D" for row in rows):
                problems.append(
                    f"{table}: its foreign-key triggers are disabled too, as "
                    f"ALTER TABLE {table} DISABLE TRIGGER ALL does"
                )
    for function, language, source, run_by in functions.values():
        if function != REFUSE_CHANGE_FUNCTION:
            continue  # reported for each trigger that runs it
        if language != "plpgsql" or _normalized(source) != _normalized(REFUSE_CHANGE_BODY):
            problems.append(
                f"function {function}(), which triggers {', '.join(run_by)} run, is not the "
                "one migration 0002 installed: it may no longer refuse anything"
            )
    return problems


def _trigger_problems(table: str, expected: _Expected, row: tuple) -> list[str]:
    name, enabled, tgtype, _, has_condition, columns, _, function, _, _ = row
    problems = []
    if enabled == "D":
        problems.append(f"{table}: trigger {name} is disabled")
    elif enabled == "R":
        problems.append(
            f"{table}: trigger {name} fires only for replication (ENABLE REPLICA TRIGGER), "
            "never for the application"
        )
    if function != REFUSE_CHANGE_FUNCTION:
        problems.append(
            f"{table}: trigger {name} runs {function}() instead of {REFUSE_CHANGE_FUNCTION}()"
        )
    if tgtype != expected.tgtype:
        problems.append(
            f"{table}: trigger {name} fires {_fires(tgtype)} instead of {_fires(expected.tgtype)}"
        )
    if has_condition:
        problems.append(f"{table}: trigger {name} has a WHEN condition that can skip it")
    if columns:
        problems.append(
            f"{table}: trigger {name} fires only for updates of some columns (UPDATE OF)"
        )
    return problems


def application_role_powers(using: str = DEFAULT_DB_ALIAS) -> str | None:
    """Why the role the application connects as could switch the append-only triggers off,
    in words: it is a superuser, or it owns an audit table (or belongs to the role that
    does). None when it cannot, and on SQLite (see above).

    Raises ``DatabaseError`` when the catalogue cannot be read; a savepoint keeps the
    caller's transaction usable.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        user, superuser = cursor.fetchone()
        if superuser:
            return f"{user}, a superuser"
        cursor.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner) "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS t(name, position) "
            "JOIN pg_class c ON c.oid = to_regclass(t.name) "
            "WHERE pg_has_role(current_user, c.relowner, 'MEMBER') ORDER BY t.position",
            [list(APPEND_ONLY_TABLES)],
        )
        owned = cursor.fetchall()
    if not owned:
        return None
    tables = ", ".join(table for table, _ in owned)
    owners = sorted({owner for _, owner in owned} - {user})
    if owners:
        return f"{user}, a member of {', '.join(owners)}, which owns {tables}"
    return f"{user}, which owns {tables}"
