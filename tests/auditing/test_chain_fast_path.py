"""The fast path of verification (orjson, the timestamp's text, auditing/chain.py) against
the reference it stands in for (plain json, strftime): the same bytes of M wherever it
answers, and the same findings for any chain, intact or edited."""

import dataclasses
import datetime as dt
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from auditing.chain import (
    GENESIS,
    ChainChecker,
    canonical_bytes,
    canonical_bytes_fast,
    timestamp_format,
    timestamp_parse,
    timestamp_text_canonical,
)
from tests.auditing.memory_chain import FAR_FUTURE, KEYS, START, pg_timestamp, row_signed
from tests.auditing.strategies import texts

# Every character a JSONB string can hold: any code point but NUL and lone surrogates,
# control characters, U+007F and U+2028 included.
any_texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
integers = st.integers(-(2**63), 2**64 - 1)
# What the application stores: no floats (amounts are strings), 64-bit integers.
trail_values = st.recursive(
    st.none() | st.booleans() | integers | any_texts,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_texts, children, max_size=4)
    ),
    max_leaves=16,
)
# What a tampered or hand-written row may hold besides: floats (1e-05 is where orjson and
# json part ways) and integers past 64 bits (orjson reads them as floats).
stored_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_texts,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(any_texts, children, max_size=3)
    ),
    max_leaves=10,
)
aware_times = st.datetimes(
    min_value=dt.datetime(1, 1, 2),  # noqa: DTZ001 - hypothesis takes naive bounds
    max_value=dt.datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=st.just(dt.UTC),
)


def _message(fields: dict) -> dict:
    return {
        "sequence": 1,
        "timestamp": "2026-04-01T09:00:00.000000Z",
        "action": "x",
        "actor_id": None,
        "actor_name": "system",
        "subject_type": "",
        "subject_id": "",
        "previous_hash": GENESIS.current_hash,
        **fields,
    }


@settings(max_examples=1000, deadline=None)
@given(data=trail_values, action=any_texts, actor_id=st.none() | integers)
def test_the_fast_canonical_form_is_the_reference_for_every_value_the_trail_holds(
    data, action, actor_id
):
    fields = _message({"data": data, "action": action, "actor_id": actor_id})

    assert canonical_bytes_fast(fields) == canonical_bytes(fields)


@settings(max_examples=1000, deadline=None)
@given(data=stored_values)
def test_the_fast_canonical_form_is_the_reference_or_declines(data):
    """Where orjson could write other bytes it either refuses (None) or differs only on a
    float, which ChainChecker never accepts unless the HMAC matches (next tests)."""
    fields = _message({"data": data})

    fast = canonical_bytes_fast(fields)

    assert fast is None or fast == canonical_bytes(fields) or _has_float(data)


def _has_float(value) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, list):
        return any(map(_has_float, value))
    if isinstance(value, dict):
        return any(map(_has_float, value.values()))
    return False


def test_the_known_float_difference_is_declined_by_the_hmac_not_hidden():
    fields = _message({"data": {"rate": 1e-05}})

    assert canonical_bytes(fields) != canonical_bytes_fast(fields)  # 1e-05 against 0.00001


@settings(max_examples=1000, deadline=None)
@given(value=aware_times)
def test_the_timestamp_from_postgresql_text_is_the_reference(value):
    text = pg_timestamp(value)

    fast = timestamp_text_canonical(text)

    if value.year < 1000:  # strftime's %Y writes fewer digits: the reference decides
        assert fast is None
    else:
        assert fast == (timestamp_format(timestamp_parse(text)), timestamp_parse(text))


@given(text=texts(max_size=40))
def test_any_other_timestamp_text_goes_to_the_reference(text):
    fast = timestamp_text_canonical(text)

    if fast is not None:
        assert fast == (timestamp_format(timestamp_parse(text)), timestamp_parse(text))


class ReferenceChecker(ChainChecker):
    """The checks as they were before the fast path: every row through row_decode,
    json.dumps and strftime."""

    def _fast_accept(self, row) -> bool:
        return False


def _chain(datas: list, times: list[dt.datetime]) -> list:
    rows = []
    for index, (data, moment) in enumerate(zip(datas, times, strict=True)):
        rows.append(
            row_signed(
                sequence=index + 1,
                previous_hash=rows[-1].current_hash if rows else GENESIS.current_hash,
                timestamp=moment,
                data=data,
            )
        )
    return rows


COLUMNS_EDITED = ("timestamp", "data", "action", "previous_hash", "current_hash", "sequence")
edits = {
    "timestamp": aware_times.map(pg_timestamp) | texts(max_size=30),
    "data": stored_values.map(json.dumps) | texts(max_size=20),
    "action": texts(max_size=10) | st.none(),
    "previous_hash": st.text("0123456789abcdef", min_size=64, max_size=64),
    "current_hash": st.text("0123456789abcdef", min_size=64, max_size=64),
    "sequence": st.integers(0, 12),
}


@settings(max_examples=500, deadline=None)
@given(
    datas=st.lists(stored_values, min_size=1, max_size=8),
    data=st.data(),
    keyed=st.booleans(),
)
def test_the_fast_path_and_the_reference_give_the_same_findings(datas, data, keyed):
    times = [START + dt.timedelta(minutes=index) for index in range(len(datas))]
    rows = _chain(datas, times)
    for _ in range(data.draw(st.integers(0, 2), label="edits")):
        index = data.draw(st.integers(0, len(rows) - 1), label="entry edited")
        column = data.draw(st.sampled_from(COLUMNS_EDITED), label="column")
        new = data.draw(edits[column], label=f"new {column}")
        rows[index] = dataclasses.replace(rows[index], **{column: new})
    keys = KEYS if keyed else None
    latest = data.draw(st.sampled_from([FAR_FUTURE, START + dt.timedelta(minutes=3)]))

    checkers = []
    for kind in (ChainChecker, ReferenceChecker):
        checker = kind(anchor=GENESIS, keys=keys, latest_allowed=latest)
        for row in rows:
            checker.feed(row)
        checkers.append(checker)
    fast, reference = checkers

    assert fast.findings == reference.findings
    assert (fast.entries_checked, fast.last_sequence, fast.last_hash) == (
        reference.entries_checked,
        reference.last_sequence,
        reference.last_hash,
    )
