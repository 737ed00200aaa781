"""Audit chains built in memory with auditing/chain.py alone: rows as a verifier reads them
(timestamp and data as PostgreSQL prints them), for tests that need no database."""

import base64
import datetime as dt
import json
from typing import Any

from auditing.chain import (
    GENESIS_HASH,
    Checkpoint,
    CheckpointSource,
    Entry,
    StoredRow,
    checkpoint_sign,
    entry_hmac,
    entry_message,
    public_key_of,
)

KEY_ID = "1"
KEY = "the-in-memory-chain-key-of-the-tests-0123456789"
KEYS = {KEY_ID: KEY}
# A fixed Ed25519 seed, so a failing example replays with the same signatures.
SIGNING_KEY = base64.b64encode(bytes(range(32))).decode("ascii")
PUBLIC_KEY = public_key_of(SIGNING_KEY)
START = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)
# Later than any timestamp the tests write: no entry is "in the future" unless a test says so.
FAR_FUTURE = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)


def pg_timestamp(value: dt.datetime) -> str:
    """A timestamptz as ``CAST(timestamp AS text)`` prints it in UTC."""
    text = value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(".")
    return f"{text}+00"


def row_signed(
    *,
    sequence: int,
    previous_hash: str,
    timestamp: dt.datetime,
    action: str = "day.closed",
    actor_id: int | None = None,
    actor_name: str = "system",
    subject_type: str = "",
    subject_id: str = "",
    data: Any = None,
    key_id: str = KEY_ID,
    key: str = KEY,
) -> StoredRow:
    """One entry as the application writes it: its HMAC under ``key``."""
    data = {} if data is None else data
    entry = Entry(
        sequence=sequence,
        timestamp=timestamp,
        action=action,
        actor_id=actor_id,
        actor_name=actor_name,
        subject_type=subject_type,
        subject_id=subject_id,
        data=data,
        previous_hash=previous_hash,
        current_hash="",
        key_id=key_id,
    )
    return StoredRow(
        sequence=sequence,
        timestamp=pg_timestamp(timestamp),
        action=action,
        actor_id=actor_id,
        actor_name=actor_name,
        subject_type=subject_type,
        subject_id=subject_id,
        # JSONB's text form: spaces after separators, which the hash does not see.
        data=json.dumps(data, ensure_ascii=False),
        previous_hash=previous_hash,
        current_hash=entry_hmac(entry_message(entry), key),
        key_id=key_id,
    )


def chain_build(count: int, *, start: dt.datetime = START) -> list[StoredRow]:
    """``count`` entries one minute apart, with a little of everything in them."""
    rows: list[StoredRow] = []
    for index in range(count):
        rows.append(
            row_signed(
                sequence=index + 1,
                previous_hash=rows[-1].current_hash if rows else GENESIS_HASH,
                timestamp=start + dt.timedelta(minutes=index),
                actor_id=None if index % 3 == 0 else 7,
                actor_name="system" if index % 3 == 0 else "agent007",
                subject_type="" if index % 2 else "payments.cashsession",
                subject_id="" if index % 2 else str(index),
                data={"day": index + 1, "amount": f"{index * 100}.50", "note": 'é, "quoted"\n'},
            )
        )
    return rows


def checkpoint_at(
    rows: list[StoredRow],
    sequence: int,
    *,
    signed_at: dt.datetime = START,
    signing_key: str = SIGNING_KEY,
    location: str = "memory",
) -> CheckpointSource:
    """The checkpoint a verification would have signed with the chain intact up to ``sequence``."""
    checkpoint = Checkpoint(
        sequence=sequence,
        head_hash=rows[sequence - 1].current_hash,
        entry_count=sequence,
        signed_at=signed_at,
    )
    return CheckpointSource(
        location=location, signed=checkpoint_sign(checkpoint, signing_key=signing_key)
    )
