"""The rows an audit entry describes, checked against the trail (auditing/README.md,
"Rows as the trail recorded them").

The chain proves the entries intact; it says nothing of the tables they describe. So each
entry that creates or changes an audited row also records the row's material fields as
they are after the change, under ``data["after"]``::

    {"after": {"payments.cashtransaction": [{"id": 7, "status": "voided", ...}],
               "payments.commission": [{"id": 7, "status": "cancelled", ...}]}}

Verification then streams, in primary-key order, every current row and the state its
latest entry (by sequence) recorded, and merges the two: a row that differs from its
audited state, a row with no entry, and an audited row that is gone are findings. Both
streams come from one snapshot, so a payment recorded during the check is on both sides or
on neither.
"""

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, models, transaction

from auditing.chain import Violation, ViolationKind
from auditing.hashing import normalize_data

AFTER = "after"
STREAM_CHUNK_SIZE = 5000
# A row key in an entry is trusted only when it looks like one; a tampered entry with any
# other value is the chain's finding (its HMAC no longer holds), not a crash here.
_ROW_ID = r"^[0-9]{1,18}$"


@dataclass(frozen=True)
class AuditedTable:
    """A table whose rows verification checks against the trail: ``fields`` are the
    material columns (attribute names, ``agent_id`` for a foreign key)."""

    model: type[models.Model]
    fields: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.model._meta.label_lower

    @property
    def db_table(self) -> str:
        return self.model._meta.db_table


def row_state(row: models.Model, fields: Sequence[str]) -> dict[str, Any]:
    """A row's material fields as the trail records them: amounts with the column's scale
    (``"1500.00"`` even when the service was given ``1500``), times in UTC."""
    state: dict[str, Any] = {"id": row.pk}
    for name in fields:
        value = getattr(row, name)
        if isinstance(value, Decimal):
            value = _with_scale(value, _field(type(row), name))
        state[name] = value
    return normalize_data(state)


def _field(model: type[models.Model], attname: str) -> models.Field:
    return next(field for field in model._meta.concrete_fields if field.attname == attname)


def _with_scale(value: Decimal, field: models.Field) -> Decimal:
    # PostgreSQL's numeric has no negative zero: a count typed as "-0" is stored as 0.00.
    value = abs(value) if value.is_zero() else value
    return value.quantize(Decimal(1).scaleb(-field.decimal_places))


@dataclass(frozen=True)
class RowsChecked:
    table: str
    rows: int


@dataclass
class RowsReport:
    checked: list[RowsChecked]
    findings: list[Violation]


def rows_check(tables: Iterable[AuditedTable]) -> RowsReport:
    """Every current row of ``tables`` against the state its latest audit entry recorded."""
    report = RowsReport(checked=[], findings=[])
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            # One snapshot for both sides, so a payment recorded meanwhile is on both or on
            # neither; read-only, so it never conflicts with writers. (Inside a caller's
            # transaction, as in tests, that transaction's snapshot rules apply.)
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for table in tables:
            count = 0
            for finding in _merge(table, _current_rows(table), _audited_states(table)):
                if finding is None:
                    count += 1
                else:
                    report.findings.append(finding)
            report.checked.append(RowsChecked(table=table.db_table, rows=count))
    return report


def _merge(
    table: AuditedTable,
    current: Iterator[tuple[int, str | dict[str, Any]]],
    audited: Iterator[tuple[int, int, str]],
) -> Iterator[Violation | None]:
    """Both sides in key order. Yields None for each current row checked, and a finding for
    each difference."""
    row = next(current, None)
    state = next(audited, None)
    while row is not None or state is not None:
        if state is None or (row is not None and row[0] < state[0]):
            yield _not_audited(table, row[0])
            yield None
            row = next(current, None)
        elif row is None or state[0] < row[0]:
            yield _missing(table, state[0], sequence=state[1])
            state = next(audited, None)
        else:
            yield from _differences(table, row[0], row[1], sequence=state[1], recorded=state[2])
            yield None
            row, state = next(current, None), next(audited, None)


def _differences(
    table: AuditedTable,
    key: int,
    values: str | dict[str, Any],
    *,
    sequence: int,
    recorded: str,
) -> Iterator[Violation]:
    if values == recorded:
        return  # PostgreSQL printed both as JSONB text: equal text, equal state
    if isinstance(values, str):
        values = json.loads(values)
    try:
        audited = json.loads(recorded)
    except (ValueError, RecursionError):
        audited = {}  # a tampered entry (its HMAC no longer holds): the chain reports it
    if not isinstance(audited, dict):
        audited = {}  # a tampered entry: the chain reports it
    # A field the entry did not record (a field made material after it was written) is
    # not compared: the entry vouches only for what it holds.
    for name in table.fields:
        if name not in audited or audited[name] == values[name]:
            continue
        yield Violation(
            kind=ViolationKind.ROW_DIFFERS,
            sequence=sequence,
            detail=(
                f"{table.db_table} row {key}: {name} is {_shown(values[name])}, but audit "
                f"entry #{sequence} recorded {_shown(audited[name])}."
            ),
            expected=_shown(audited[name]),
            stored=_shown(values[name]),
            table=table.db_table,
            row=str(key),
            field=name,
        )


def _not_audited(table: AuditedTable, key: int) -> Violation:
    return Violation(
        kind=ViolationKind.ROW_NOT_AUDITED,
        sequence=None,
        detail=(
            f"{table.db_table} row {key} has no audit entry: it was written outside the "
            "application."
        ),
        table=table.db_table,
        row=str(key),
    )


def _missing(table: AuditedTable, key: int, *, sequence: int) -> Violation:
    return Violation(
        kind=ViolationKind.AUDITED_ROW_MISSING,
        sequence=sequence,
        detail=(
            f"{table.db_table} row {key}, last recorded by audit entry #{sequence}, is "
            "missing: it was deleted outside the application."
        ),
        table=table.db_table,
        row=str(key),
    )


def _shown(value: Any) -> str:
    return "empty" if value is None else json.dumps(value, ensure_ascii=False).strip('"')


def _current_rows(table: AuditedTable) -> Iterator[tuple[int, str | dict[str, Any]]]:
    """(row key, the row as its audit entry records it). PostgreSQL prints that state
    itself, as JSONB text like the recorded one, so an unchanged row costs one string
    comparison; SQLite (the demo) hands over values that Python puts in that form."""
    model = table.model
    fields = [_field(model, name) for name in table.fields]
    quote = connection.ops.quote_name
    pk = quote(model._meta.pk.column)
    if connection.vendor == "postgresql":
        pairs = ", ".join(f"'{field.attname}', {_as_recorded(field)}" for field in fields)
        columns = f"CAST(jsonb_build_object('id', {pk}, {pairs}) AS text)"
    else:
        columns = ", ".join(quote(field.column) for field in fields)
    sql = f"SELECT {pk}, {columns} FROM {quote(table.db_table)} ORDER BY {pk}"  # noqa: S608 - names from the model
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql)
        while batch := cursor.fetchmany(STREAM_CHUNK_SIZE):
            if connection.vendor == "postgresql":
                yield from batch
            else:
                for key, *values in batch:
                    yield key, _normalized(fields, values)


def _as_recorded(field: models.Field) -> str:
    """SQL for a column in the form ``row_state`` records it: amounts as text with the
    column's scale, times as UTC text with six fractional digits."""
    column = connection.ops.quote_name(field.column)
    if isinstance(field, models.DecimalField):
        return f"CAST({column} AS text)"
    if isinstance(field, models.DateTimeField):
        return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
    return column


def _normalized(fields: Sequence[models.Field], values: Sequence[Any]) -> dict[str, Any]:
    """The row as ``row_state`` records it. SQLite (the demo) reads amounts as numbers
    and times as naive UTC text; PostgreSQL as Decimal and aware datetimes."""
    state = {}
    for field, value in zip(fields, values, strict=True):
        if value is not None:
            if isinstance(field, models.DecimalField):
                value = _with_scale(Decimal(str(value)), field)
            elif isinstance(field, models.BooleanField):
                value = bool(value)
            elif isinstance(field, models.DateTimeField):
                if isinstance(value, str):
                    value = dt.datetime.fromisoformat(value)
                if value.tzinfo is None:
                    value = value.replace(tzinfo=dt.UTC)
        state[field.attname] = normalize_data(value)
    return state


_AUDITED_POSTGRESQL = (
    "SELECT DISTINCT ON (row_id) row_id, sequence, state FROM ("
    " SELECT CAST(s.value ->> 'id' AS bigint) AS row_id, e.sequence, CAST(s.value AS text) AS state"
    " FROM auditing_auditentry e"
    " CROSS JOIN LATERAL jsonb_array_elements("
    "  CASE WHEN jsonb_typeof(e.data -> 'after' -> %(label)s) = 'array'"
    "  THEN e.data -> 'after' -> %(label)s ELSE '[]'::jsonb END) AS s"
    " WHERE e.data -> 'after' ? %(label)s AND s.value ->> 'id' ~ %(row_id)s"
    ") AS states ORDER BY row_id, sequence DESC"
)
_AUDITED_SQLITE = (
    "SELECT CAST(json_extract(s.value, '$.id') AS INTEGER) AS row_id, e.sequence, s.value"
    " FROM auditing_auditentry e, json_each(e.data, '$.after.\"' || %(label)s || '\"') AS s"
    " WHERE json_valid(e.data) AND json_type(s.value, '$.id') = 'integer'"
    " ORDER BY row_id, e.sequence DESC"
)


def _audited_states(table: AuditedTable) -> Iterator[tuple[int, int, str]]:
    """(row key, sequence of its latest entry, the state it recorded as JSON text)."""
    postgresql = connection.vendor == "postgresql"
    sql = _AUDITED_POSTGRESQL if postgresql else _AUDITED_SQLITE
    params = {"label": table.label, "row_id": _ROW_ID}
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        previous = None
        while batch := cursor.fetchmany(STREAM_CHUNK_SIZE):
            for key, sequence, state in batch:
                if key == previous:
                    continue  # SQLite: an older state of the same row
                previous = key
                yield key, sequence, state
