"""``check --deploy``: a rule of the money tables added NOT VALID by migration 0005 (rows
that broke it were already there) still leaves those rows unchecked until validated."""

from django.core import checks
from django.db import DatabaseError

from payments.database_rules import not_valid_constraints


@checks.register("payments", deploy=True)
def not_valid_constraints_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    try:
        pending = not_valid_constraints()
    except DatabaseError as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return [
            checks.Warning(
                f"Could not check that the payments rules are validated: {reason}",
                hint="Run this check against the migrated production database.",
                id="payments.W002",
            )
        ]
    if not pending:
        return []
    return [
        checks.Warning(
            "Rules of the payments tables are NOT VALID, so rows written before them are "
            "unchecked: " + ", ".join(f"{name} on {table}" for table, name in pending) + ".",
            hint="Correct the rows that break each rule (migration 0005 printed them), then "
            + " ".join(
                f"ALTER TABLE {table} VALIDATE CONSTRAINT {name};" for table, name in pending
            ),
            id="payments.W001",
        )
    ]
