"""``check --deploy``: the audit tables must still be append-only, and the application must
connect as a role that cannot make them otherwise (auditing/enforcement.py)."""

from django.core import checks
from django.db import DatabaseError

from auditing.enforcement import append_only_enforcement_problems, application_role_powers

ENFORCEMENT_HINT = (
    "Re-enable a disabled trigger with ALTER TABLE <table> ENABLE TRIGGER <name>. Recreate a "
    "missing trigger or a changed function from the SQL in auditing/migrations/"
    "0002_append_only_triggers.py and 0004_checkpoints_findings_key_ids.py (`manage.py "
    "migrate auditing` does not run a migration again once applied). Then find out who "
    "changed them, run `manage.py verify_audit_trail --full`, and give the application a "
    "role that cannot (`manage.py setup_database_roles`)."
)

ROLE_HINT = (
    "Connect the application (web, workers, beat, Flower, cron's commands) as a role that "
    "owns nothing: `manage.py setup_database_roles --app-role <name>`, run as the owner, "
    "creates it and grants what the application needs. Keep the owner's DATABASE_URL for "
    'migrate and that command only (README.md, "Database roles").'
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


@checks.register("auditing", deploy=True)
def application_role_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    try:
        powers = application_role_powers()
    except DatabaseError:
        return []  # auditing.W002 already says the database could not be read
    if powers is None:
        return []
    return [
        checks.Warning(
            f"The application connects to the database as {powers}: it may switch the audit "
            "trail's append-only triggers off, alter its tables and delete its entries.",
            hint=ROLE_HINT,
            id="auditing.W003",
        )
    ]
