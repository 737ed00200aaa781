from auditing.models import AuditEntry
from payments.audited import states_after
from payments.models import (
    Agent,
    CashSession,
    CashTransaction,
    Commission,
    DailyCounter,
    SystemConfiguration,
)

WATCHED_MODELS = (
    SystemConfiguration,
    Agent,
    CashSession,
    CashTransaction,
    Commission,
    DailyCounter,
    AuditEntry,
)


def database_snapshot() -> dict[str, list[dict]]:
    """Every row a cash operation could touch, audit trail included."""
    return {
        model._meta.label: list(model.objects.order_by("pk").values()) for model in WATCHED_MODELS
    }


def assert_audited(entry: AuditEntry, *, action: str, actor, subject) -> None:
    """``actor`` None means the entry must name the system."""
    assert entry.action == action
    assert entry.actor_id == (actor.pk if actor is not None else None)
    assert entry.actor_name == (actor.get_username() if actor is not None else "system")
    assert (entry.subject_type, entry.subject_id) == (subject._meta.label_lower, str(subject.pk))


def audited_data(entry: AuditEntry, *rows) -> dict:
    """The entry's data without the rows' states it records (``data["after"]``), once
    those are checked to be exactly ``rows`` as the database holds them now."""
    data = dict(entry.data)
    stored = [type(row).objects.get(pk=row.pk) for row in rows]
    assert data.pop("after") == states_after(*stored)
    return data
