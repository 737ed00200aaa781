"""An entry's data made canonical when it is written, and its HMAC from the ORM object.

The rules themselves live in auditing/chain.py and auditing/README.md."""

import datetime as dt
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.conf import settings

from auditing.chain import Entry, entry_hmac, entry_message, timestamp_format

format_timestamp = timestamp_format


def normalize_data(value: Any) -> Any:
    """Turn ``value`` into plain JSON that reads back from JSONB exactly as written.

    Decimals become strings (keeping their scale), datetimes UTC ISO-8601 strings.
    Floats are refused: money never travels as a float.
    """
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("audit data cannot contain NUL characters")
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return format_timestamp(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        normalized = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"audit data keys must be strings, not {type(key).__name__}")
            normalized[normalize_data(key)] = normalize_data(item)
        return normalized
    if isinstance(value, list | tuple):
        return [normalize_data(item) for item in value]
    raise TypeError(f"cannot store {type(value).__name__} in audit data")


def compute_entry_hash(entry) -> str:
    """The HMAC of an entry under its own key (``entry.key_id``), as auditing/chain.py
    computes it from the stored row."""
    message = entry_message(
        Entry(
            sequence=entry.sequence,
            timestamp=entry.timestamp,
            action=entry.action,
            actor_id=entry.actor_id,
            actor_name=entry.actor_name,
            subject_type=entry.subject_type,
            subject_id=entry.subject_id,
            data=entry.data,
            previous_hash=entry.previous_hash,
            current_hash="",
            key_id=entry.key_id,
        )
    )
    return entry_hmac(message, settings.AUDIT_CHAIN_KEYS[entry.key_id])
