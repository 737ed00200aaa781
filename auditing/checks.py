"""``check --deploy``: the audit tables must still be append-only (auditing/enforcement.py)."""

from django.core import checks
from django.db import DatabaseError

from auditing.enforcement import append_only_enforcement_problems

ENFORCEMENT_HINT = (
    "Re-enable a disabled trigger with ALTER TABLE <table> ENABLE TRIGGER <name>. Recreate a "
    "missing trigger or a changed function from the SQL in auditing/migrations/"
    "0002_append_only_triggers.py and 0004_checkpoints_findings_key_ids.py (`manage.py "
    "migrate auditing` does not run a migration again once applied). Then find out who "
    "changed them, run `manage.py verify_audit_trail --full`, and give the application a "
    "role that cannot (`manage.py setup_database_roles`)."
)


@checks.register("auditing", deploy=True)
def append_only_enforcement_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    try:
        problems = append_only_enforcement_problems()
    except DatabaseError as error:
        # check --deploy must report, never crash, when it runs away from the database.
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return [
            checks.Warning(
                f"Could not check that the audit trail is append-only: {reason}",
                hint="Run this check against the migrated production database.",
                id="auditing.W002",
            )
        ]
    if not problems:
        return []
    return [
        checks.Warning(
            f"Append-only enforcement of the audit trail is off: {'; '.join(problems)}.",
            hint=ENFORCEMENT_HINT,
            id="auditing.W001",
        )
    ]
