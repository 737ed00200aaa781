"""Reads of the audit trail and of its verification runs."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from auditing.chain import (
    COLUMNS_AS_TEXT,
    StoredRow,
    Undecodable,
    entry_hmac,
    entry_message,
    row_decode,
)
from auditing.chain import Checkpoint as ChainCheckpoint
from auditing.models import AuditEntry, Checkpoint


@dataclass(frozen=True)
class ChainHead:
    """The newest entry of the chain."""

    sequence: int
    current_hash: str


def audit_chain_head() -> ChainHead | None:
    head = AuditEntry.objects.order_by("-sequence").values("sequence", "current_hash").first()
    return ChainHead(**head) if head else None


def audit_entry_get(*, sequence: int) -> AuditEntry | None:
    return AuditEntry.objects.filter(sequence=sequence).first()


def audit_entry_exists(*, action: str, actor_name: str, **data: str) -> bool:
    """Whether an entry of ``action`` by ``actor_name`` records these values in its data
    (the index on action keeps this to that action's few entries)."""
    return AuditEntry.objects.filter(
        action=action,
        actor_name=actor_name,
        **{f"data__{key}": value for key, value in data.items()},
    ).exists()


def audit_hashes_at(*, sequences: Iterable[int]) -> dict[int, str]:
    """The stored hash of each entry at these sequences (an absent key: no such entry)."""
    wanted = sorted(set(sequences))
    hashes: dict[int, str] = {}
    for offset in range(0, len(wanted), 5000):
        hashes.update(
            AuditEntry.objects.filter(sequence__in=wanted[offset : offset + 5000]).values_list(
                "sequence", "current_hash"
            )
        )
    return hashes


CHECKPOINT_ACKNOWLEDGED = "audit.checkpoint_acknowledged"


def checkpoint_acknowledged_references() -> set[str]:
    """The checkpoint findings administrators acknowledged, from the trail itself.

    Only an acknowledgement whose HMAC holds counts: a row inserted by someone without the
    key acknowledges nothing. Rows are read as text and decoded by auditing/chain.py, so a
    forged row that cannot even be read (data nested thousands deep) is skipped, not fatal.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {COLUMNS_AS_TEXT} FROM auditing_auditentry WHERE action = %s",  # noqa: S608
            [CHECKPOINT_ACKNOWLEDGED],
        )
        rows = [StoredRow(*values) for values in cursor.fetchall()]
    references = set()
    for row in rows:
        try:
            entry = row_decode(row)
            key = settings.AUDIT_CHAIN_KEYS.get(entry.key_id)
            authentic = key is not None and entry_hmac(entry_message(entry), key) == (
                entry.current_hash
            )
        except Undecodable:
            continue
        reference = entry.data.get("reference") if isinstance(entry.data, dict) else None
        if authentic and isinstance(reference, str):
            references.add(reference)
    return references


def checkpoint_row(*, checkpoint: ChainCheckpoint) -> Checkpoint | None:
    """The database's copy of a checkpoint, when it still has one."""
    return Checkpoint.objects.filter(
        sequence=checkpoint.sequence,
        head_hash=checkpoint.head_hash,
        signed_at=checkpoint.signed_at,
    ).first()
