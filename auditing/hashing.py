"""The canonical serialization and HMAC of an audit entry, documented in auditing/README.md."""

import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.conf import settings

HASHED_FIELDS = (
    "sequence",
    "timestamp",
    "action",
    "actor_id",
    "actor_name",
    "subject_type",
    "subject_id",
    "data",
    "previous_hash",
)


def format_timestamp(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def canonical_bytes(fields: Mapping[str, Any]) -> bytes:
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def hashed_payload(entry) -> dict[str, Any]:
    return {
        "sequence": entry.sequence,
        "timestamp": format_timestamp(entry.timestamp),
        "action": entry.action,
        "actor_id": entry.actor_id,
        "actor_name": entry.actor_name,
        "subject_type": entry.subject_type,
        "subject_id": entry.subject_id,
        "data": entry.data,
        "previous_hash": entry.previous_hash,
    }


def compute_entry_hash(entry) -> str:
    key = settings.AUDIT_CHAIN_KEY.encode("utf-8")
    return hmac.new(key, canonical_bytes(hashed_payload(entry)), hashlib.sha256).hexdigest()
