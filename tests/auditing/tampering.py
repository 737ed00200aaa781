"""What an attacker with database access can do to the audit table, for the tests.

Everything here runs inside the test's transaction: ``DISABLE TRIGGER`` is DDL, which
PostgreSQL rolls back with the transaction (or savepoint) that ran it.
"""

import json
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction

from auditing.hashing import normalize_data

APPEND_ONLY_TRIGGER = "auditing_auditentry_no_update_delete"
COLUMNS = (
    "sequence",
    "timestamp",
    "action",
    "actor_id",
    "actor_name",
    "subject_type",
    "subject_id",
    "data",
    "previous_hash",
    "current_hash",
)


@contextmanager
def rolled_back():
    """Run the block in a savepoint that is always rolled back (one hypothesis example)."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def disable_append_only_trigger() -> None:
    with connection.cursor() as cursor:
        # ALTER TABLE refuses to run while deferred FK checks (actor_id) are pending.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE auditing_auditentry DISABLE TRIGGER {APPEND_ONLY_TRIGGER}")


def enable_append_only_trigger() -> None:
    """What a careful attacker does after tampering: verification reports a trigger left
    off as "append-only enforcement off"; with it back on, only the chain can tell."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE auditing_auditentry ENABLE TRIGGER {APPEND_ONLY_TRIGGER}")


def set_column(sequence: int, column: str, value: Any) -> None:
    """Overwrite one stored column of one entry with raw SQL (trigger must be disabled)."""
    if column not in COLUMNS:
        raise ValueError(f"unknown audit column {column!r}")
    placeholder = "%s"
    if column == "data":
        value, placeholder = json.dumps(normalize_data(value)), "%s::jsonb"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE auditing_auditentry SET {column} = {placeholder} WHERE sequence = %s",  # noqa: S608
            [value, sequence],
        )
        assert cursor.rowcount == 1


def delete_entries(*sequences: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM auditing_auditentry WHERE sequence = ANY(%s)", [list(sequences)]
        )
        assert cursor.rowcount == len(sequences)


def swap_entries(first: int, second: int) -> None:
    """Swap the whole contents of two rows: each row keeps its place but holds the other's."""
    parking = 0  # sequences start at 1 and the column refuses negatives
    set_column(first, "sequence", parking)
    set_column(second, "sequence", first)
    set_column(parking, "sequence", second)


def renumber_from(sequence: int, shift: int) -> None:
    """Move every entry from ``sequence`` on by ``shift``, highest first (primary key)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sequence FROM auditing_auditentry WHERE sequence >= %s ORDER BY sequence DESC",
            [sequence],
        )
        for (current,) in cursor.fetchall():
            set_column(current, "sequence", current + shift)
