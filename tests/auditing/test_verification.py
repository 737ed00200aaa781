import datetime as dt

import pytest
import time_machine
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditing.hashing import compute_entry_hash, normalize_data
from auditing.models import GENESIS_HASH, AuditEntry
from auditing.services import audit_entry_append
from auditing.verification import (
    ViolationKind,
    chain_verify,
    chain_verify_ranges,
    period_sequences,
)
from tests.auditing import strategies
from tests.auditing.tampering import (
    COLUMNS,
    delete_entries,
    disable_append_only_trigger,
    renumber_from,
    rolled_back,
    set_column,
    swap_entries,
)

pytestmark = pytest.mark.django_db

DAY_1 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)


def _append_daily(count: int) -> list[AuditEntry]:
    """Append ``count`` entries, one a day from DAY_1 at 09:00 UTC."""
    entries = []
    for number in range(count):
        with time_machine.travel(DAY_1 + dt.timedelta(days=number), tick=False):
            entries.append(
                audit_entry_append(action="day.closed", actor=None, data={"day": number + 1})
            )
    return entries


def _kinds(result) -> list[tuple[ViolationKind, int]]:
    return [(violation.kind, violation.sequence) for violation in result.violations]


def chain_verify_period(*, start=None, end=None):
    """What a run checks for a period: its sequences, from the entry before to the one after."""
    head = AuditEntry.objects.order_by("-sequence").first()
    sequences = period_sequences(start=start, end=end, head_sequence=head.sequence)
    return chain_verify_ranges([sequences] if sequences else [])


def _reload(sequence: int) -> AuditEntry:
    return AuditEntry.objects.get(sequence=sequence)


# --- Intact chains --------------------------------------------------------------------


def test_empty_table_verifies_intact_with_no_entries():
    result = chain_verify()

    assert result.intact
    assert result.entries_checked == 0
    assert (result.first_sequence, result.last_sequence, result.head_hash) == (None, None, None)


def test_intact_chain_reports_its_extent_and_head():
    entries = _append_daily(5)

    result = chain_verify()

    assert result.intact, result.violations
    assert result.entries_checked == 5
    assert (result.first_sequence, result.last_sequence) == (1, 5)
    assert result.head_hash == entries[-1].current_hash


@pytest.mark.parametrize(
    ("start", "end", "checked"),
    [(2, None, 5), (4, None, 3), (6, None, 1), (3, 5, 3), (None, 4, 4), (2, 2, 1)],
)
def test_range_starting_mid_chain_raises_no_false_alarm(start, end, checked):
    entries = _append_daily(6)

    result = chain_verify(start_sequence=start, end_sequence=end)

    assert result.intact, result.violations
    assert result.entries_checked == checked
    assert result.first_sequence == (start or 1)
    assert result.last_sequence == (end or 6)
    assert result.head_hash == entries[result.last_sequence - 1].current_hash


def test_range_past_the_head_checks_nothing():
    _append_daily(3)

    result = chain_verify(start_sequence=10)

    assert result.intact
    assert result.entries_checked == 0


def test_period_verification_checks_the_entries_written_in_it_without_false_alarm():
    entries = _append_daily(6)

    # Start is inclusive and end exclusive: days 2, 3 and 4 (sequences 2..4), with the
    # entries just before (1) and just after (5) the period.
    result = chain_verify_period(start=entries[1].timestamp, end=entries[4].timestamp)

    assert result.intact, result.violations
    assert (result.entries_checked, result.first_sequence, result.last_sequence) == (5, 1, 5)
    assert result.head_hash == entries[4].current_hash


def test_period_verification_with_open_ends():
    entries = _append_daily(4)

    from_day_3 = chain_verify_period(start=DAY_1 + dt.timedelta(days=2))
    until_day_2 = chain_verify_period(end=DAY_1 + dt.timedelta(days=1, hours=1))
    everything = chain_verify_period()

    assert from_day_3.intact and until_day_2.intact and everything.intact
    assert (from_day_3.first_sequence, from_day_3.last_sequence) == (2, 4)
    assert (until_day_2.first_sequence, until_day_2.last_sequence) == (1, 3)
    assert everything.entries_checked == 4
    assert everything.head_hash == entries[-1].current_hash


def test_a_period_after_the_last_entry_checks_the_last_entry_only():
    _append_daily(3)

    result = chain_verify_period(start=DAY_1 + dt.timedelta(days=30))

    assert result.intact
    assert (result.entries_checked, result.first_sequence, result.last_sequence) == (1, 3, 3)


def test_a_period_whose_entries_were_all_deleted_shows_as_a_gap_between_its_neighbours():
    entries = _append_daily(6)
    disable_append_only_trigger()
    delete_entries(3, 4)

    result = chain_verify_period(start=entries[2].timestamp, end=entries[4].timestamp)

    assert _kinds(result) == [(ViolationKind.GAP, 5), (ViolationKind.BROKEN_LINK, 5)]


# --- Ranges still check their first link ----------------------------------------------


def _forge_link(sequence: int) -> str:
    """Give an entry a wrong previous_hash but a valid HMAC, so only its link is wrong."""
    forged_link = "f" * 64
    disable_append_only_trigger()
    set_column(sequence, "previous_hash", forged_link)
    set_column(sequence, "current_hash", compute_entry_hash(_reload(sequence)))
    return forged_link


def test_range_whose_first_entry_has_a_bad_link_to_the_entry_before_is_reported():
    entries = _append_daily(5)
    forged_link = _forge_link(3)

    result = chain_verify(start_sequence=3, end_sequence=3)

    assert _kinds(result) == [(ViolationKind.BROKEN_LINK, 3)]
    violation = result.violations[0]
    assert violation.expected == entries[1].current_hash
    assert violation.stored == forged_link
    assert violation.timestamp == entries[2].timestamp


def test_period_whose_first_entry_has_a_bad_link_to_the_entry_before_is_reported():
    entries = _append_daily(5)
    _forge_link(3)

    result = chain_verify_period(start=entries[2].timestamp, end=entries[3].timestamp)

    # Entry 3's hash was recomputed, so the entry just after the period no longer links.
    assert _kinds(result) == [(ViolationKind.BROKEN_LINK, 3), (ViolationKind.BROKEN_LINK, 4)]
    assert result.violations[0].expected == entries[1].current_hash


def test_range_starting_just_after_a_deleted_entry_reports_the_gap():
    entries = _append_daily(5)
    disable_append_only_trigger()
    delete_entries(3)

    result = chain_verify(start_sequence=4)

    assert _kinds(result) == [(ViolationKind.GAP, 4), (ViolationKind.BROKEN_LINK, 4)]
    assert result.violations[1].expected == entries[1].current_hash


def test_range_starting_mid_chain_with_everything_before_it_deleted_is_reported():
    _append_daily(4)
    disable_append_only_trigger()
    delete_entries(1, 2)

    result = chain_verify(start_sequence=3)

    assert _kinds(result) == [(ViolationKind.GAP, 3), (ViolationKind.BROKEN_LINK, 3)]
    assert result.violations[1].expected == GENESIS_HASH


# --- Tampering ------------------------------------------------------------------------


def test_deleted_middle_entry_is_reported_as_a_gap_and_a_broken_link():
    entries = _append_daily(5)
    disable_append_only_trigger()
    delete_entries(3)

    result = chain_verify()

    assert _kinds(result) == [(ViolationKind.GAP, 4), (ViolationKind.BROKEN_LINK, 4)]
    gap, link = result.violations
    assert (gap.expected, gap.stored, gap.detail) == ("3", "4", "entry 3 is missing")
    assert (link.expected, link.stored) == (entries[1].current_hash, entries[2].current_hash)
    assert gap.timestamp == link.timestamp == entries[3].timestamp
    assert (result.entries_checked, result.last_sequence) == (4, 5)
    assert result.head_hash == entries[4].current_hash


def test_several_deleted_entries_are_reported_as_one_gap():
    _append_daily(6)
    disable_append_only_trigger()
    delete_entries(3, 4)

    result = chain_verify()

    assert _kinds(result) == [(ViolationKind.GAP, 5), (ViolationKind.BROKEN_LINK, 5)]
    assert result.violations[0].detail == "entries 3 to 4 are missing"


def test_deleted_first_entry_is_reported():
    entries = _append_daily(3)
    disable_append_only_trigger()
    delete_entries(1)

    result = chain_verify()

    assert _kinds(result) == [(ViolationKind.GAP, 2), (ViolationKind.BROKEN_LINK, 2)]
    assert (result.violations[1].expected, result.violations[1].stored) == (
        GENESIS_HASH,
        entries[0].current_hash,
    )


def test_modified_data_is_reported_at_that_entry_only():
    entries = _append_daily(5)
    disable_append_only_trigger()
    set_column(3, "data", {"day": 30})

    result = chain_verify()

    assert _kinds(result) == [(ViolationKind.CONTENT_MISMATCH, 3)]
    violation = result.violations[0]
    assert violation.expected == compute_entry_hash(_reload(3))
    assert violation.stored == entries[2].current_hash
    assert violation.timestamp == entries[2].timestamp


def test_swapped_entries_are_reported():
    entries = _append_daily(5)
    disable_append_only_trigger()
    swap_entries(2, 3)

    result = chain_verify()

    assert _kinds(result) == [
        (ViolationKind.CONTENT_MISMATCH, 2),
        (ViolationKind.BROKEN_LINK, 2),
        (ViolationKind.CONTENT_MISMATCH, 3),
        (ViolationKind.BROKEN_LINK, 3),
        (ViolationKind.TIMESTAMP_REGRESSION, 3),
        (ViolationKind.BROKEN_LINK, 4),
    ]
    assert _reload(2).data == {"day": 3}
    link_at_2 = result.violations[1]
    assert (link_at_2.expected, link_at_2.stored) == (
        entries[0].current_hash,
        entries[1].current_hash,
    )
    assert result.violations[0].timestamp == entries[2].timestamp


def test_forged_entry_appended_without_the_key_is_reported():
    entries = _append_daily(3)
    forged = AuditEntry.objects.create(
        sequence=4,
        timestamp=DAY_1 + dt.timedelta(days=3),
        action="transaction.voided",
        actor_name="system",
        data={"receipt_number": "R-1"},
        previous_hash=entries[-1].current_hash,
        current_hash="a" * 64,
    )

    result = chain_verify()

    assert _kinds(result) == [(ViolationKind.CONTENT_MISMATCH, 4)]
    violation = result.violations[0]
    assert (violation.expected, violation.stored) == (compute_entry_hash(forged), "a" * 64)
    assert violation.timestamp == forged.timestamp


def test_forged_entry_hashed_with_another_key_is_reported():
    entries = _append_daily(3)
    forged = AuditEntry(
        sequence=4,
        timestamp=DAY_1 + dt.timedelta(days=3),
        action="transaction.voided",
        actor_name="system",
        data={},
        previous_hash=entries[-1].current_hash,
    )
    with override_settings(AUDIT_CHAIN_KEYS={"1": "guessed-key"}):
        forged.current_hash = compute_entry_hash(forged)
    forged.save(force_insert=True)

    result = chain_verify()

    assert _kinds(result) == [(ViolationKind.CONTENT_MISMATCH, 4)]


def test_forged_entry_inserted_mid_chain_is_reported():
    entries = _append_daily(4)
    disable_append_only_trigger()
    renumber_from(3, shift=1)
    forged = AuditEntry.objects.create(
        sequence=3,
        timestamp=entries[1].timestamp + dt.timedelta(hours=1),
        action="transaction.voided",
        actor_name="system",
        data={},
        previous_hash=entries[1].current_hash,
        current_hash="b" * 64,
    )

    result = chain_verify()

    assert _kinds(result) == [
        (ViolationKind.CONTENT_MISMATCH, 3),
        (ViolationKind.CONTENT_MISMATCH, 4),
        (ViolationKind.BROKEN_LINK, 4),
        (ViolationKind.CONTENT_MISMATCH, 5),
    ]
    forged_report = result.violations[0]
    assert (forged_report.expected, forged_report.stored) == (compute_entry_hash(forged), "b" * 64)
    assert forged_report.timestamp == forged.timestamp
    assert result.entries_checked == 5


# --- Any single-field change, anywhere --------------------------------------------------


def _replacement(column: str, target: AuditEntry, entries: list[AuditEntry], users: list):
    """A strategy for a new stored value of ``column`` that differs from the target's."""
    if column == "sequence":
        taken = {entry.sequence for entry in entries}
        return st.integers(0, 2**63 - 1).filter(lambda value: value not in taken)
    if column == "timestamp":
        shift = st.integers(-(10**13), 10**13).filter(bool)
        return shift.map(lambda us: target.timestamp + dt.timedelta(microseconds=us))
    if column == "actor_id":
        return st.sampled_from([None, users[0].pk, users[1].pk]).filter(
            lambda value: value != target.actor_id
        )
    if column == "data":
        new_data = strategies.data_dicts | strategies.json_values
        # Conservative: True == 1 in Python, so a few genuine changes are skipped too.
        return new_data.filter(lambda value: normalize_data(value) != target.data)
    if column in ("previous_hash", "current_hash"):
        taken = {entry.current_hash for entry in entries} | {getattr(target, column)}
        return strategies.hex_hashes.filter(lambda value: value not in taken)
    max_length = AuditEntry._meta.get_field(column).max_length
    return strategies.texts(max_size=max_length).filter(
        lambda value: value != getattr(target, column)
    )


@pytest.mark.parametrize("column", COLUMNS)
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(specs=st.lists(strategies.appends, min_size=1, max_size=5), draw=st.data())
def test_changing_any_field_is_reported_at_that_entry(column, specs, draw, users):
    with rolled_back():
        entries = [audit_entry_append(**strategies.append_kwargs(spec, users)) for spec in specs]
        assert chain_verify().intact
        target = draw.draw(st.sampled_from(entries), label="target")
        new_value = draw.draw(_replacement(column, target, entries, users), label="new value")

        disable_append_only_trigger()
        set_column(target.sequence, column, new_value)
        result = chain_verify()

        reported_at = new_value if column == "sequence" else target.sequence
        assert (ViolationKind.CONTENT_MISMATCH, reported_at) in _kinds(result)
        if column != "sequence":
            # Nothing before the altered entry is blamed. (A moved entry leaves a gap at
            # its old place, which is rightly reported too.)
            assert result.violations[0].sequence == reported_at
