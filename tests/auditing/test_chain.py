import datetime as dt
import json
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection, transaction
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditing.hashing import compute_entry_hash, format_timestamp, normalize_data
from auditing.models import GENESIS_HASH, AuditEntry
from auditing.services import SYSTEM_ACTOR_NAME, audit_entry_append
from auditing.verification import chain_verify
from tests.auditing.strategies import append_kwargs, appends, data_dicts
from tests.auditing.tampering import rolled_back
from tests.factories import AgentFactory, UserFactory

pytestmark = pytest.mark.django_db

ANTANANARIVO = ZoneInfo("Indian/Antananarivo")

hypothesis_settings = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _reload(entry: AuditEntry) -> AuditEntry:
    return AuditEntry.objects.get(sequence=entry.sequence)


# --- Linking -------------------------------------------------------------------------


def test_first_entry_has_sequence_one_and_links_to_genesis():
    entry = audit_entry_append(action="chain.started", actor=None)

    stored = _reload(entry)
    assert stored.sequence == 1
    assert stored.previous_hash == GENESIS_HASH == "0" * 64
    assert stored.current_hash == compute_entry_hash(stored)


def test_entries_get_gapless_sequences_each_linked_to_the_one_before():
    for number in range(10):
        audit_entry_append(action="chain.grew", actor=None, data={"n": number})

    entries = list(AuditEntry.objects.order_by("sequence"))
    assert [entry.sequence for entry in entries] == list(range(1, 11))
    assert [entry.data["n"] for entry in entries] == list(range(10))
    previous_hashes = [GENESIS_HASH] + [entry.current_hash for entry in entries[:-1]]
    assert [entry.previous_hash for entry in entries] == previous_hashes


def test_append_rolled_back_with_the_callers_transaction_leaves_no_gap():
    audit_entry_append(action="kept", actor=None)
    with transaction.atomic():
        audit_entry_append(action="rolled.back", actor=None)
        transaction.set_rollback(True)
    last = audit_entry_append(action="kept.again", actor=None)

    assert list(AuditEntry.objects.values_list("sequence", "action")) == [
        (1, "kept"),
        (2, "kept.again"),
    ]
    assert last.previous_hash == AuditEntry.objects.get(sequence=1).current_hash
    assert chain_verify().intact


def test_entry_names_the_acting_user_and_the_subject():
    agent = AgentFactory()
    entry = audit_entry_append(action="agent.checked", actor=agent.user, subject=agent)

    stored = _reload(entry)
    assert stored.actor_id == agent.user.pk
    assert stored.actor_name == agent.user.username
    assert stored.subject_type == "payments.agent"
    assert stored.subject_id == str(agent.pk)


def test_entry_without_actor_names_the_system():
    entry = audit_entry_append(action="nightly.job", actor=None)

    stored = _reload(entry)
    assert stored.actor_id is None
    assert stored.actor_name == SYSTEM_ACTOR_NAME == "system"
    assert (stored.subject_type, stored.subject_id) == ("", "")
    assert stored.data == {}


@hypothesis_settings
@given(specs=st.lists(appends, max_size=8))
def test_any_sequence_of_appends_verifies_intact(specs, users):
    with rolled_back():
        for spec in specs:
            audit_entry_append(**append_kwargs(spec, users))

        result = chain_verify()

        assert result.intact, result.violations
        assert result.entries_checked == len(specs)
        assert list(AuditEntry.objects.values_list("sequence", flat=True)) == list(
            range(1, len(specs) + 1)
        )


# --- What PostgreSQL gives back re-hashes identically --------------------------------


@pytest.mark.parametrize(
    ("data", "stored_data"),
    [
        pytest.param({"amount": Decimal("10.50")}, {"amount": "10.50"}, id="decimal-scale"),
        pytest.param({"amount": Decimal("1E+3")}, {"amount": "1E+3"}, id="decimal-exponent"),
        pytest.param({"amount": Decimal("-0.00")}, {"amount": "-0.00"}, id="decimal-neg-zero"),
        pytest.param({"big": 2**70, "neg": -(2**65)}, {"big": 2**70, "neg": -(2**65)}, id="bigint"),
        pytest.param(
            {"payer": 'Rakotonirina Ñandú — 漢字 🙂 \u2028 "quoted" \\ tab\t'},
            {"payer": 'Rakotonirina Ñandú — 漢字 🙂 \u2028 "quoted" \\ tab\t'},
            id="unicode",
        ),
        pytest.param(
            {"flags": (True, False, None, 0, 1, ""), "nested": [{"b": [], "a": {}}]},
            {"flags": [True, False, None, 0, 1, ""], "nested": [{"b": [], "a": {}}]},
            id="scalars-and-nesting",
        ),
        pytest.param(
            {"when": dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=ANTANANARIVO)},
            {"when": "2026-01-02T00:04:05.000006Z"},
            id="datetime-in-data",
        ),
        pytest.param({"day": dt.date(2026, 2, 28)}, {"day": "2026-02-28"}, id="date-in-data"),
    ],
)
def test_entry_read_back_from_postgres_rehashes_identically(data, stored_data):
    entry = audit_entry_append(action="round.trip", actor=None, data=data)

    stored = _reload(entry)
    assert stored.data == stored_data
    assert compute_entry_hash(stored) == stored.current_hash == entry.current_hash


def test_jsonb_reordering_the_keys_does_not_change_the_hash():
    data = {"zzzz": 1, "a": {"yy": 2, "x": 3}, "mm": [{"long key": 1, "k": 2}]}
    entry = audit_entry_append(action="round.trip", actor=None, data=data)

    with connection.cursor() as cursor:
        cursor.execute("SELECT data::text FROM auditing_auditentry WHERE sequence = %s", [1])
        (stored_text,) = cursor.fetchone()
    # JSONB really did reorder the keys (shortest first), so the hash must not depend on order.
    assert list(json.loads(stored_text)) != list(data)
    stored = _reload(entry)
    assert compute_entry_hash(stored) == stored.current_hash


@pytest.mark.parametrize(
    "moment",
    [
        dt.datetime(2026, 3, 1, 12, 0, 0, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 31, 23, 30, 0, 123456, tzinfo=ANTANANARIVO),
    ],
    ids=str,
)
def test_microsecond_timestamp_read_back_rehashes_identically(moment):
    with time_machine.travel(moment, tick=False):
        entry = audit_entry_append(action="clock.read", actor=None)

    stored = _reload(entry)
    assert stored.timestamp == moment
    assert format_timestamp(stored.timestamp) == format_timestamp(moment)
    assert compute_entry_hash(stored) == stored.current_hash == entry.current_hash


@hypothesis_settings
@given(data=data_dicts)
def test_any_data_read_back_from_postgres_rehashes_identically(data, users):
    with rolled_back():
        entry = audit_entry_append(action="round.trip", actor=users[0], subject=users[1], data=data)

        stored = _reload(entry)
        assert stored.data == normalize_data(data)
        assert compute_entry_hash(stored) == stored.current_hash == entry.current_hash


# --- What the canonical form refuses --------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"amount": 10.5},
        {"amounts": [Decimal("1.00"), 2.0]},
        {"nested": {"deeper": {"rate": 0.1}}},
        {"nan": float("nan")},
    ],
    ids=["top-level", "in-list", "nested", "nan"],
)
def test_floats_are_refused_and_nothing_is_appended(data):
    with pytest.raises(TypeError, match="float"):
        normalize_data(data)
    with pytest.raises(TypeError, match="float"):
        audit_entry_append(action="money.as.float", actor=None, data=data)
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    "data",
    [{"payer": "abc\x00def"}, {"bad\x00key": 1}, {"list": ["ok", ["\x00"]]}],
    ids=["value", "key", "nested"],
)
def test_nul_characters_are_refused_and_nothing_is_appended(data):
    with pytest.raises(ValueError, match="NUL"):
        normalize_data(data)
    with pytest.raises(ValueError, match="NUL"):
        audit_entry_append(action="nul.in.data", actor=None, data=data)
    assert not AuditEntry.objects.exists()


def test_non_string_keys_are_refused():
    with pytest.raises(TypeError, match="keys must be strings"):
        normalize_data({1: "one"})


def test_naive_timestamps_are_refused():
    naive = dt.datetime(2026, 3, 1, 12, 0)  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        normalize_data({"when": naive})
    entry = AuditEntry(
        sequence=1,
        timestamp=naive,
        action="naive",
        actor_name="system",
        data={},
        previous_hash=GENESIS_HASH,
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_entry_hash(entry)


def test_the_same_instant_in_any_time_zone_hashes_the_same():
    utc = dt.datetime(2026, 3, 1, 9, 0, 0, 500, tzinfo=dt.UTC)
    local = utc.astimezone(ANTANANARIVO)
    assert format_timestamp(local) == format_timestamp(utc) == "2026-03-01T09:00:00.000500Z"


def test_the_hash_depends_on_the_chain_key():
    entry = audit_entry_append(action="keyed", actor=UserFactory())
    with override_settings(AUDIT_CHAIN_KEYS={"1": "another-key"}):
        assert compute_entry_hash(_reload(entry)) != entry.current_hash
