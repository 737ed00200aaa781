"""The audit chain's rules without Django: a stored row decoded, its HMAC, the checks by
position, and the signed checkpoints.

The application's verification (auditing/verification.py) and the auditors' standalone
verifier (auditing/verifier.py, ``cash-audit-verify``) both run these functions on rows
read as text, so they agree by construction; auditing/README.md states the same rules in
words, for an auditor who writes a verifier of their own. Nothing here imports Django.
"""

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

GENESIS_HASH = "0" * 64
CHECKPOINT_FORMAT = "cash-office-audit-checkpoint/1"

# The columns a verifier reads, in this order, from the database or a dump.
ROW_COLUMNS = (
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
    "key_id",
)

# The same columns as SQL reading every value as PostgreSQL prints it: a malformed value
# (a timestamp of 'infinity', JSON nested thousands deep) reaches the checks as text.
COLUMNS_AS_TEXT = (
    "sequence, CAST(timestamp AS text), action, actor_id, actor_name, subject_type, "
    "subject_id, CAST(data AS text), previous_hash, current_hash, key_id"
)


class ViolationKind(StrEnum):
    """What a finding is. The values are stable: they are stored, exported and documented."""

    GAP = "gap"
    CONTENT_MISMATCH = "content_mismatch"
    BROKEN_LINK = "broken_link"
    UNDECODABLE = "undecodable"
    UNKNOWN_KEY = "unknown_key"
    TIMESTAMP_REGRESSION = "timestamp_regression"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    TRUNCATED = "truncated"
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"
    CHECKPOINT_INVALID = "checkpoint_invalid"
    ENFORCEMENT_OFF = "enforcement_off"
    # The rows the trail describes (auditing/rows.py), checked by a full verification.
    ROW_DIFFERS = "row_differs"
    ROW_NOT_AUDITED = "row_not_audited"
    AUDITED_ROW_MISSING = "audited_row_missing"


@dataclass(frozen=True)
class Violation:
    """One violation. ``sequence`` names the entry (None when no entry is at fault, as for
    switched-off enforcement); ``reference`` identifies a checkpoint finding so that an
    administrator's acknowledgement can name it; ``table``, ``row`` and ``field`` name
    what a row finding is about."""

    kind: ViolationKind
    sequence: int | None
    detail: str
    timestamp: dt.datetime | None = None
    expected: str = ""
    stored: str = ""
    reference: str = ""
    table: str = ""
    row: str = ""
    field: str = ""


# Rows -------------------------------------------------------------------------------------


@dataclass(slots=True)
class StoredRow:
    """An entry as stored, every column as read (the timestamp and ``data`` as text), so
    that a malformed value becomes a finding instead of an exception in a database driver.

    Not frozen: one is built per entry read, and a frozen dataclass's ``__init__`` (1.5 µs,
    an ``object.__setattr__`` per field) cost a sixth of a row's whole check; with slots it
    costs 0.2 µs. Nothing changes a row once read."""

    sequence: int
    timestamp: str | None
    action: str | None
    actor_id: int | None
    actor_name: str | None
    subject_type: str | None
    subject_id: str | None
    data: str | None
    previous_hash: str | None
    current_hash: str | None
    key_id: str | None


@dataclass(frozen=True)
class Entry:
    """A decoded entry: what the HMAC covers, plus the stored hash and key id."""

    sequence: int
    timestamp: dt.datetime
    action: str
    actor_id: int | None
    actor_name: str
    subject_type: str
    subject_id: str
    data: Any
    previous_hash: str
    current_hash: str
    key_id: str


class Undecodable(ValueError):
    """A stored row that cannot be read as an entry; the message says which column and why."""


def timestamp_parse(text: str) -> dt.datetime:
    """PostgreSQL's text form of a timestamptz (``2026-11-24 05:00:00.123456+00``) or ISO
    8601; 'infinity', BC dates, years past 9999 and a missing offset are refused."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise Undecodable(f"timestamp {text[:40]!r} is not a date and time") from None
    if value.tzinfo is None:
        raise Undecodable(f"timestamp {text[:40]!r} has no time zone offset")
    try:
        value.astimezone(dt.UTC)
    except OverflowError:
        raise Undecodable(f"timestamp {text[:40]!r} is out of range in UTC") from None
    return value


# PostgreSQL's text form of a timestamptz read in a session whose time zone is UTC, for
# years 1000 to 9999 (below, strftime's %Y writes fewer than four digits: the reference
# is asked). Its fraction has trailing zeros dropped, or is absent for whole seconds.
_PG_UTC_TIMESTAMP = re.compile(
    r"([1-9][0-9]{3}-[0-9]{2}-[0-9]{2}) ([0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,6}))?\+00"
)


def timestamp_text_canonical(text: str) -> tuple[str, dt.datetime] | None:
    """The hashed form of a timestamp read from PostgreSQL, and its value, built from the
    text itself (no ``astimezone`` and ``strftime`` per row); None when the text is not in
    that form (the reference, ``timestamp_parse`` and ``timestamp_format``, then decides)."""
    match = _PG_UTC_TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:  # 2026-02-30
        return None
    date, time, fraction = match.groups()
    return f"{date}T{time}.{(fraction or '').ljust(6, '0')}Z", value


def timestamp_format(value: dt.datetime) -> str:
    """The hashed form: UTC, always six fractional digits."""
    if value.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_decode(row: StoredRow) -> Entry:
    for name in ("timestamp", "action", "actor_name", "data", "previous_hash", "current_hash"):
        if getattr(row, name) is None:
            raise Undecodable(f"{name} is empty (NULL)")
    try:
        data = json.loads(row.data)
    except RecursionError:
        raise Undecodable("data is nested too deeply to be read") from None
    except ValueError as error:
        raise Undecodable(f"data is not JSON ({error})") from None
    return Entry(
        sequence=row.sequence,
        timestamp=timestamp_parse(row.timestamp),
        action=row.action,
        actor_id=row.actor_id,
        actor_name=row.actor_name,
        subject_type=row.subject_type or "",
        subject_id=row.subject_id or "",
        data=data,
        previous_hash=row.previous_hash,
        current_hash=row.current_hash,
        key_id=row.key_id or "",
    )


def canonical_bytes(fields: Mapping[str, Any]) -> bytes:
    """Sorted keys at every level, no spaces, UTF-8 as itself. Deep nesting raises
    Undecodable, never RecursionError."""
    try:
        return json.dumps(
            fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except RecursionError:
        raise Undecodable("data is nested too deeply to be hashed") from None
    except ValueError as error:  # UnicodeEncodeError (a lone surrogate) included
        raise Undecodable(f"cannot be serialized: {error}") from None


def canonical_bytes_fast(fields: Mapping[str, Any]) -> bytes | None:
    """``canonical_bytes`` through orjson (C), or None where orjson cannot promise the same
    bytes: the caller then asks the reference.

    orjson writes the same bytes for strings (the escapes, U+007F and U+2028 as themselves,
    code point order: UTF-8 sorts as code points do), integers, booleans and null. It
    refuses integers past 64 bits, nesting past 254 levels and lone surrogates (None here).
    Floats are the exception it does not refuse: it writes ``1e-05`` as ``0.00001`` and
    infinity as ``null``. The application never stores floats, so ChainChecker accepts a
    fast message only when its HMAC matches, and recomputes any other with the reference.
    """
    try:
        return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return None


def entry_message(entry: Entry) -> bytes:
    """M, the bytes the HMAC covers (auditing/README.md, "The hash")."""
    return canonical_bytes(
        {
            "sequence": entry.sequence,
            "timestamp": timestamp_format(entry.timestamp),
            "action": entry.action,
            "actor_id": entry.actor_id,
            "actor_name": entry.actor_name,
            "subject_type": entry.subject_type,
            "subject_id": entry.subject_id,
            "data": entry.data,
            "previous_hash": entry.previous_hash,
        }
    )


def _same_hash(one: str, other: str) -> bool:
    """Constant-time comparison that a stored value of any characters cannot crash."""
    return hmac.compare_digest(one.encode("utf-8", "replace"), other.encode("utf-8", "replace"))


def entry_hmac(message: bytes, key: str | bytes) -> str:
    # hmac.digest: OpenSSL's one-shot HMAC, without the HMAC object hmac.new builds.
    if isinstance(key, str):
        key = key.encode("utf-8")
    return hmac.digest(key, message, hashlib.sha256).hex()


# The checks by position ---------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """What the first entry of a range links to: the entry just before it, or the genesis
    (sequence 0, 64 zeros) for a range that starts the chain."""

    sequence: int
    current_hash: str
    timestamp: dt.datetime | None = None


GENESIS = Anchor(sequence=0, current_hash=GENESIS_HASH)


@dataclass
class ChainChecker:
    """Checks entries fed in sequence order, one at a time, in constant memory.

    ``keys`` maps a key id to its HMAC key; None checks everything but the HMACs (a
    verifier without the key). ``latest_allowed``: no entry may be stamped later.
    """

    anchor: Anchor
    keys: Mapping[str, str] | None
    latest_allowed: dt.datetime
    entries_checked: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    last_hash: str | None = None
    findings: list[Violation] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._expected_sequence = self.anchor.sequence + 1
        self._expected_previous = self.anchor.current_hash
        self._previous_timestamp = self.anchor.timestamp
        # Each key encoded once, not once a row.
        self._key_bytes = {key_id: key.encode("utf-8") for key_id, key in (self.keys or {}).items()}

    def feed(self, row: StoredRow) -> None:
        if self.first_sequence is None:
            self.first_sequence = row.sequence
        if self.keys is not None and self._fast_accept(row):
            return
        try:
            entry = row_decode(row)
        except Undecodable as error:
            entry, problem = None, str(error)
        self._check_position(row, entry)
        if entry is None:
            self._add(ViolationKind.UNDECODABLE, row, None, f"the entry cannot be read: {problem}")
        else:
            self._check_hmac(row, entry)
        # Link what can be linked, so one bad row is reported once, at that row.
        self._check_link(row, entry)
        if entry is not None:
            self._check_timestamp(row, entry)
        self._advance(row, timestamp=entry.timestamp if entry else None)

    def _fast_accept(self, row: StoredRow) -> bool:
        """True when the row passes every check, decided through orjson and the timestamp's
        text; False sends it to the reference checks, which then report its findings.

        It accepts a row only when the reference would: the HMAC is computed over
        ``canonical_bytes_fast``, whose bytes are the reference's for every value but a
        float, and for a float whose bytes differ the HMAC cannot match without the key
        (the entry then goes to the reference, which recomputes M the slow way). Entries
        the application wrote hold no floats, so an intact chain never leaves this path.
        """
        if (
            row.sequence != self._expected_sequence
            or row.previous_hash != self._expected_previous
            or row.timestamp is None
            or row.data is None
            or row.action is None
            or row.actor_name is None
            or row.current_hash is None
        ):
            return False
        key = self._key_bytes.get(row.key_id or "")
        timestamp = timestamp_text_canonical(row.timestamp)
        if key is None or timestamp is None:
            return False
        text, value = timestamp
        if value > self.latest_allowed or (
            self._previous_timestamp is not None and value < self._previous_timestamp
        ):
            return False
        try:
            data = orjson.loads(row.data)
        except orjson.JSONDecodeError:  # NaN, 1e400, a lone surrogate: the reference's call
            return False
        message = canonical_bytes_fast(
            {
                "sequence": row.sequence,
                "timestamp": text,
                "action": row.action,
                "actor_id": row.actor_id,
                "actor_name": row.actor_name,
                "subject_type": row.subject_type or "",
                "subject_id": row.subject_id or "",
                "data": data,
                "previous_hash": row.previous_hash,
            }
        )
        # A plain comparison: the reference's compare_digest guards no secret here (a
        # mismatch's finding prints the recomputed hash anyway).
        if message is None or entry_hmac(message, key) != row.current_hash:
            return False
        self._advance(row, timestamp=value)
        return True

    def _check_position(self, row: StoredRow, entry: Entry | None) -> None:
        expected = self._expected_sequence
        if row.sequence == expected:
            return
        if row.sequence < expected:
            detail = f"sequence {row.sequence} appears after {expected - 1}"
        elif row.sequence == expected + 1:
            detail = f"entry {expected} is missing"
        else:
            detail = f"entries {expected} to {row.sequence - 1} are missing"
        self._add(
            ViolationKind.GAP, row, entry, detail, expected=str(expected), stored=str(row.sequence)
        )

    def _check_timestamp(self, row: StoredRow, entry: Entry) -> None:
        previous = self._previous_timestamp
        if previous is not None and entry.timestamp < previous:
            self._add(
                ViolationKind.TIMESTAMP_REGRESSION,
                row,
                entry,
                "the entry is stamped earlier than the entry before it",
                expected=f"at or after {timestamp_format(previous)}",
                stored=timestamp_format(entry.timestamp),
            )
        if entry.timestamp > self.latest_allowed:
            self._add(
                ViolationKind.TIMESTAMP_IN_FUTURE,
                row,
                entry,
                "the entry is stamped in the future",
                expected=f"at or before {timestamp_format(self.latest_allowed)}",
                stored=timestamp_format(entry.timestamp),
            )

    def _check_hmac(self, row: StoredRow, entry: Entry) -> None:
        if self.keys is None:
            return
        key = self.keys.get(entry.key_id)
        if key is None:
            self._add(
                ViolationKind.UNKNOWN_KEY,
                row,
                entry,
                f"the entry names key id {entry.key_id[:40]!r}, which is not a known key",
                stored=entry.key_id[:64],
            )
            return
        try:
            recomputed = entry_hmac(entry_message(entry), key)
        except Undecodable as error:
            self._add(ViolationKind.UNDECODABLE, row, entry, f"the entry cannot be hashed: {error}")
            return
        if not _same_hash(recomputed, entry.current_hash):
            self._add(
                ViolationKind.CONTENT_MISMATCH,
                row,
                entry,
                "the entry's content does not match its stored hash",
                expected=recomputed,
                stored=entry.current_hash,
            )

    def _check_link(self, row: StoredRow, entry: Entry | None) -> None:
        if row.previous_hash != self._expected_previous:
            self._add(
                ViolationKind.BROKEN_LINK,
                row,
                entry,
                "previous_hash does not match the preceding entry's hash",
                expected=self._expected_previous,
                stored=row.previous_hash or "",
            )

    def _advance(self, row: StoredRow, *, timestamp: dt.datetime | None) -> None:
        # Link to the stored hash, so one altered entry is reported once, at that entry.
        self._expected_previous = row.current_hash or ""
        self._expected_sequence = row.sequence + 1
        if timestamp is not None:
            self._previous_timestamp = timestamp
        self.entries_checked += 1
        self.last_sequence = row.sequence
        self.last_hash = row.current_hash

    def _add(
        self,
        kind: ViolationKind,
        row: StoredRow,
        entry: Entry | None,
        detail: str,
        *,
        expected: str = "",
        stored: str = "",
    ) -> None:
        self.findings.append(
            Violation(
                kind=kind,
                sequence=row.sequence,
                timestamp=entry.timestamp if entry else None,
                detail=detail,
                expected=expected,
                stored=stored,
            )
        )


def rows_check(
    rows: Iterable[StoredRow],
    *,
    anchor: Anchor = GENESIS,
    keys: Mapping[str, str] | None,
    latest_allowed: dt.datetime,
) -> ChainChecker:
    checker = ChainChecker(anchor=anchor, keys=keys, latest_allowed=latest_allowed)
    for row in rows:
        checker.feed(row)
    return checker


# Checkpoints --------------------------------------------------------------------------------


class CheckpointUnreadable(ValueError):
    """A checkpoint file that is not a checkpoint; the message says why."""


@dataclass(frozen=True)
class Checkpoint:
    """The chain as a verification found it intact: its head and how many entries lead to it."""

    sequence: int
    head_hash: str
    entry_count: int
    signed_at: dt.datetime

    def message(self) -> bytes:
        """The bytes the Ed25519 signature covers (auditing/README.md, "Checkpoints")."""
        return canonical_bytes(
            {
                "format": CHECKPOINT_FORMAT,
                "sequence": self.sequence,
                "head_hash": self.head_hash,
                "entry_count": self.entry_count,
                "signed_at": timestamp_format(self.signed_at),
            }
        )

    @property
    def reference(self) -> str:
        """How findings and acknowledgements name this checkpoint."""
        return f"checkpoint {self.sequence} {self.head_hash}"


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    public_key: str
    signature: str

    def to_json(self) -> str:
        """The checkpoint file: the signed fields, the public key and the signature."""
        document = json.loads(self.checkpoint.message())
        document.update(public_key=self.public_key, signature=self.signature)
        return json.dumps(document, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> "SignedCheckpoint":
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            raise CheckpointUnreadable("not JSON") from None
        if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointUnreadable(f"not a {CHECKPOINT_FORMAT} document")
        try:
            checkpoint = Checkpoint(
                sequence=_positive_int(document["sequence"]),
                head_hash=_text(document["head_hash"]),
                entry_count=_positive_int(document["entry_count"]),
                signed_at=timestamp_parse(_text(document["signed_at"])),
            )
            return cls(
                checkpoint=checkpoint,
                public_key=_text(document["public_key"]),
                signature=_text(document["signature"]),
            )
        except KeyError as missing:
            raise CheckpointUnreadable(f"the field {missing} is missing") from None
        except Undecodable as error:
            raise CheckpointUnreadable(str(error)) from None


def _positive_int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise CheckpointUnreadable(f"{value!r:.40} is not a positive whole number")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise CheckpointUnreadable(f"{value!r:.40} is not text")
    return value


def _ed25519():
    # Imported here so that decoding rows needs only the standard library.
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519, InvalidSignature


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def public_key_of(signing_key: str) -> str:
    """The base64 raw public key of a base64 32-byte Ed25519 seed."""
    ed25519, _ = _ed25519()
    from cryptography.hazmat.primitives import serialization

    private = ed25519.Ed25519PrivateKey.from_private_bytes(_b64decode(signing_key))
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode("ascii")


def checkpoint_sign(checkpoint: Checkpoint, *, signing_key: str) -> SignedCheckpoint:
    ed25519, _ = _ed25519()
    private = ed25519.Ed25519PrivateKey.from_private_bytes(_b64decode(signing_key))
    signature = private.sign(checkpoint.message())
    return SignedCheckpoint(
        checkpoint=checkpoint,
        public_key=public_key_of(signing_key),
        signature=base64.b64encode(signature).decode("ascii"),
    )


def checkpoint_signature_problem(
    signed: SignedCheckpoint, *, trusted_public_keys: Iterable[str]
) -> str | None:
    """None when a trusted key signed it; else why not. The key written in the file only
    says which trusted key to try: a key the verifier does not already trust proves nothing."""
    if signed.public_key not in set(trusted_public_keys):
        return "it is signed by a key that is not trusted"
    ed25519, invalid_signature = _ed25519()
    try:
        public = ed25519.Ed25519PublicKey.from_public_bytes(_b64decode(signed.public_key))
        public.verify(_b64decode(signed.signature), signed.checkpoint.message())
    except (invalid_signature, ValueError, binascii.Error):
        return "its signature does not match its content"
    if signed.checkpoint.entry_count != signed.checkpoint.sequence:
        # An intact chain holds exactly `sequence` entries up to its head.
        return "its entry count differs from its sequence"
    return None


@dataclass(frozen=True)
class CheckpointSource:
    """One checkpoint as read from a sink: ``location`` says where (a file, a table row);
    ``signed`` is None when the document could not be read (``problem`` says why)."""

    location: str
    signed: SignedCheckpoint | None
    problem: str = ""


@dataclass(frozen=True)
class CheckpointReport:
    findings: tuple[Violation, ...]
    # The newest checkpoint that is signed by a trusted key and still matches the chain:
    # the chain up to it was intact when it was signed, so checks by position start there.
    last_good: Checkpoint | None
    checked: int


def checkpoints_check(
    sources: Iterable[CheckpointSource],
    *,
    trusted_public_keys: Iterable[str],
    head_sequence: int,
    hashes_at: Mapping[int, str],
    acknowledged: Iterable[str] = (),
) -> CheckpointReport:
    """Each checkpoint against the chain: the same hash at its sequence.

    ``hashes_at``: the stored ``current_hash`` of every entry at a checkpoint's sequence
    (absent: no such entry). A finding whose reference is in ``acknowledged`` (an
    administrator looked into it and said why) is not reported again.
    """
    trusted = tuple(trusted_public_keys)
    acknowledged = set(acknowledged)
    findings: list[Violation] = []
    good: list[Checkpoint] = []
    seen: set[tuple[int, str, str]] = set()
    checked = 0
    for source in sources:
        if source.signed is None:
            reference = f"checkpoint file {source.location}"
            if reference not in acknowledged:
                findings.append(
                    Violation(
                        kind=ViolationKind.CHECKPOINT_INVALID,
                        sequence=None,
                        detail=f"{source.location} cannot be read: {source.problem}",
                        reference=reference,
                    )
                )
            continue
        checkpoint = source.signed.checkpoint
        problem = checkpoint_signature_problem(source.signed, trusted_public_keys=trusted)
        if problem:
            reference = f"{checkpoint.reference} at {source.location}"
            if reference not in acknowledged:
                findings.append(
                    Violation(
                        kind=ViolationKind.CHECKPOINT_INVALID,
                        sequence=checkpoint.sequence,
                        detail=f"{source.location} is not a valid checkpoint: {problem}",
                        reference=reference,
                    )
                )
            continue
        identity = (
            checkpoint.sequence,
            checkpoint.head_hash,
            timestamp_format(checkpoint.signed_at),
        )
        if identity in seen:  # the same checkpoint kept by two sinks
            continue
        seen.add(identity)
        checked += 1
        finding = _checkpoint_against_chain(
            checkpoint, head_sequence=head_sequence, stored=hashes_at.get(checkpoint.sequence)
        )
        if finding is None:
            good.append(checkpoint)
        elif finding.reference not in acknowledged:
            findings.append(finding)
    last_good = max(good, key=lambda checkpoint: checkpoint.sequence, default=None)
    return CheckpointReport(findings=tuple(findings), last_good=last_good, checked=checked)


def _checkpoint_against_chain(
    checkpoint: Checkpoint, *, head_sequence: int, stored: str | None
) -> Violation | None:
    signed_on = f"the checkpoint signed at {timestamp_format(checkpoint.signed_at)}"
    if checkpoint.sequence > head_sequence:
        first_missing = head_sequence + 1
        return Violation(
            kind=ViolationKind.TRUNCATED,
            sequence=first_missing,
            detail=(
                f"the chain ends at {head_sequence or 'no entry'} but {signed_on} holds "
                f"entry {checkpoint.sequence}: entries {first_missing} to "
                f"{checkpoint.sequence} were removed from the end"
            ),
            expected=str(checkpoint.sequence),
            stored=str(head_sequence),
            reference=checkpoint.reference,
        )
    if stored is None:
        return Violation(
            kind=ViolationKind.CHECKPOINT_MISMATCH,
            sequence=checkpoint.sequence,
            detail=f"{signed_on} holds this entry, which is missing now",
            expected=checkpoint.head_hash,
            reference=checkpoint.reference,
        )
    if not _same_hash(stored, checkpoint.head_hash):
        return Violation(
            kind=ViolationKind.CHECKPOINT_MISMATCH,
            sequence=checkpoint.sequence,
            detail=(
                f"{signed_on} holds another hash for this entry: the chain was cut back and "
                "appended again, or rewritten"
            ),
            expected=checkpoint.head_hash,
            stored=stored,
            reference=checkpoint.reference,
        )
    return None
