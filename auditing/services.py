from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, models, transaction
from django.utils import timezone

from auditing.hashing import compute_entry_hash, normalize_data
from auditing.models import GENESIS_HASH, AuditEntry

SYSTEM_ACTOR_NAME = "system"

# Arbitrary but fixed key for pg_advisory_xact_lock: "audit chain head".
CHAIN_LOCK_KEY = 0x4155444954


def _lock_chain_head() -> None:
    """Serialize appenders until the surrounding transaction ends.

    An advisory lock works on an empty table too, where there is no head row to lock.
    SQLite (demo only) serializes writers by itself.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])


def audit_entry_append(
    *,
    action: str,
    actor: AbstractBaseUser | None,
    subject: models.Model | None = None,
    data: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry to the chain, inside the caller's transaction if there is one.

    ``actor`` None means the system acted.
    """
    normalized = normalize_data(dict(data or {}))
    with transaction.atomic():
        _lock_chain_head()
        head = AuditEntry.objects.order_by("-sequence").values("sequence", "current_hash").first()
        entry = AuditEntry(
            sequence=head["sequence"] + 1 if head else 1,
            previous_hash=head["current_hash"] if head else GENESIS_HASH,
            timestamp=timezone.now(),
            action=action,
            actor=actor,
            actor_name=actor.get_username() if actor else SYSTEM_ACTOR_NAME,
            subject_type=subject._meta.label_lower if subject is not None else "",
            subject_id=str(subject.pk) if subject is not None else "",
            data=normalized,
        )
        entry.current_hash = compute_entry_hash(entry)
        entry.save(force_insert=True)
    return entry
