"""verify_audit_trail's (and audit_checkpoint's) text output, rendered from typed results:
what was checked by sequence, the checkpoints, the first findings with their kinds in words,
and what a run could not keep."""

import datetime as dt
from dataclasses import replace
from io import StringIO

import pytest
from django.core.management.base import OutputWrapper
from django.core.management.color import no_style
from django.utils import timezone

from auditing.chain import ViolationKind
from mailing.selectors import EmailOutcomes
from tasks.operations.verify_audit_trail import (
    Alert,
    AlertTo,
    CheckpointShown,
    Result,
    ViolationRow,
)
from tasks.rendering.verify_audit_trail import ranges_text, verification_render
from tasks.results import OperationStatus, Trigger

HASH_A = "a" * 64
HASH_B = "b" * 64
SIGNED_AT = dt.datetime(2026, 5, 19, 7, 0, tzinfo=dt.UTC)  # 10:00 in Antananarivo


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.TIME_ZONE = "Indian/Antananarivo"
    settings.SITE_URL = "https://cash.example.com"


def intact(**changes) -> Result:
    result = Result(
        trigger=Trigger.MANUAL,
        status=OperationStatus.OK,
        run_id=7,
        full=False,
        range_start=dt.date(2026, 4, 20),
        range_end=dt.date(2026, 5, 20),
        time_zone="Indian/Antananarivo",
        ran_at=SIGNED_AT,
        ranges=((1, 120), (4000, 4211)),
        entries_checked=332,
        first_sequence=1,
        last_sequence=4211,
        last_hash=HASH_A,
        head_sequence=4211,
        head_hash=HASH_A,
        checkpoints_checked=3,
        last_good_checkpoint=CheckpointShown(sequence=3999, head_hash=HASH_B, signed_at=SIGNED_AT),
        checkpoint=CheckpointShown(
            sequence=4211,
            head_hash=HASH_A,
            signed_at=SIGNED_AT,
            signature="SIG",
            written_to=("/var/lib/cash-office/checkpoints",),
            not_written_to=(),
        ),
        intact=True,
        issues=0,
        violations=(),
        duration_ms=1234,
    )
    return replace(result, **changes)


def row(sequence: int | None, kind: ViolationKind = ViolationKind.CONTENT_MISMATCH, **fields):
    values = {
        "timestamp": SIGNED_AT,
        "expected": HASH_A,
        "stored": HASH_B,
        "detail": "the entry's content does not match its stored hash",
    }
    return ViolationRow(sequence=sequence, kind=kind, **{**values, **fields})


def tampered(violations: tuple[ViolationRow, ...], issues: int, **changes) -> Result:
    return intact(
        status=OperationStatus.TAMPERING,
        intact=False,
        issues=issues,
        violations=violations,
        checkpoint=None,
        **changes,
    )


def rendered(result: Result) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    verification_render(result, out=OutputWrapper(out), err=OutputWrapper(err), style=no_style())
    return out.getvalue(), err.getvalue()


def test_an_intact_run_says_what_it_checked_by_sequence_and_where_its_checkpoint_went():
    out, err = rendered(intact())

    assert out == (
        "Range: 2026-04-20 to 2026-05-20 (Indian/Antananarivo, end date included)\n"
        "Checked by sequence: 1-120, 4000-4211 (332 entries)\n"
        "Checkpoints checked: 3\n"
        f"Last good checkpoint: #3999  {HASH_B} (signed 2026-05-19 10:00:00)\n"
        f"Head of the chain: #4211  {HASH_A}\n"
        "Time taken: 1.23 s\n"
        "Audit trail intact (run #7).\n"
        "Checkpoint #4211 signed and written to /var/lib/cash-office/checkpoints.\n"
    )
    assert err == ""


def test_a_head_that_has_not_moved_is_not_signed_again():
    checkpoint = CheckpointShown(sequence=4211, head_hash=HASH_A, signed_at=SIGNED_AT)

    out, _ = rendered(intact(last_good_checkpoint=checkpoint, checkpoint=None))

    assert "Head unchanged since checkpoint #4211: no new checkpoint.\n" in out
    assert "signed and written" not in out


def test_a_checkpoint_no_sink_could_keep_is_an_error_on_stderr():
    checkpoint = replace(
        intact().checkpoint,
        written_to=(),
        not_written_to=("/var/lib/cash-office/checkpoints: [Errno 28] No space left on device",),
    )

    out, err = rendered(intact(status=OperationStatus.FAILED, checkpoint=checkpoint))

    assert "Audit trail intact (run #7).\n" in out
    assert err == (
        "Checkpoint #4211 not written to /var/lib/cash-office/checkpoints: "
        "[Errno 28] No space left on device.\n"
    )


def test_without_any_sink_the_output_says_only_the_database_keeps_the_checkpoint():
    checkpoint = replace(intact().checkpoint, written_to=(), not_written_to=())

    out, _ = rendered(intact(checkpoint=checkpoint))

    assert "Checkpoint #4211 signed; no checkpoint sink is configured" in out


def test_the_hourly_checkpoint_run_names_its_range():
    out, _ = rendered(intact(range_start=None, range_end=None, ranges=((4000, 4211),)))

    assert out.startswith(
        "Range: the entries since the last checkpoint\n"
        "Checked by sequence: 4000-4211 (332 entries)\n"
    )


def test_an_empty_chain_has_nothing_to_verify():
    empty = intact(
        ranges=(),
        entries_checked=0,
        head_sequence=None,
        head_hash=None,
        checkpoints_checked=0,
        last_good_checkpoint=None,
        checkpoint=None,
    )

    out, _ = rendered(empty)

    assert "No audit entries checked.\n" in out
    assert "Last good checkpoint: none\n" in out
    assert "Head of the chain" not in out
    assert "Nothing to verify (run #7).\n" in out


def test_tampering_lists_the_first_findings_in_words_and_points_to_the_run_for_the_rest():
    shown = (
        row(6),
        row(
            None,
            ViolationKind.ENFORCEMENT_OFF,
            timestamp=None,
            expected="",
            stored="",
            detail="auditing_auditentry: trigger t is disabled",
        ),
        row(
            9,
            ViolationKind.UNDECODABLE,
            timestamp=None,
            expected="",
            stored="",
            detail="the entry cannot be read: timestamp 'infinity' is not a date and time",
        ),
        *(row(n) for n in range(10, 57)),
    )
    assert len(shown) == 50

    out, _ = rendered(tampered(shown, issues=1000))

    assert "TAMPERING DETECTED: 1000 issues (run #7).\n" in out
    assert (
        "  Entry #6 at 2026-05-19 10:00:00: content mismatch (the entry was changed)\n"
        f"      expected: {HASH_A}\n"
        f"      stored:   {HASH_B}\n"
        "      the entry's content does not match its stored hash\n"
        "  No entry: append-only enforcement off\n"
        "      auditing_auditentry: trigger t is disabled\n"
        "  Entry #9 at unknown time: unreadable entry\n"
        "      the entry cannot be read: timestamp 'infinity' is not a date and time\n"
    ) in out
    assert out.count("content mismatch (the entry was changed)") == 48
    assert (
        "  ... and 950 more: see run #7 in the admin, "
        "https://cash.example.com/admin/auditing/verificationrun/7/change/\n"
    ) in out
    assert "No alert sent (use --alert-on-tampering or --email).\n" in out


def test_every_kind_of_finding_has_words():
    violations = tuple(row(n, kind) for n, kind in enumerate(ViolationKind, start=1))

    out, _ = rendered(tampered(violations, issues=len(violations)))

    for kind in ViolationKind:
        assert f": {kind.value}\n" not in out
    assert "gap in the sequence (entries are missing)" in out
    assert "checkpoint no longer matches the chain" in out
    assert "... and" not in out


def test_the_alert_line_says_to_whom_and_what_became_of_it():
    alert = Alert(to=AlertTo.ADMINS, recipients=("ana@example.com", "zoe@example.com"), email_id=3)

    out, _ = rendered(tampered((row(6),), issues=1, alert=alert, emails=EmailOutcomes(queued=1)))

    assert out.endswith("Alert to ana@example.com, zoe@example.com: queued (1).\n")


@pytest.mark.parametrize(
    ("ranges", "text"),
    [(((1, 120), (4000, 4211)), "1-120, 4000-4211"), (((5, 5),), "5"), ((), "")],
)
def test_ranges_are_written_as_sequences(ranges, text):
    assert ranges_text(ranges) == text


def test_times_are_shown_in_the_time_zone():
    midnight = dt.datetime(2026, 5, 1, tzinfo=timezone.get_default_timezone())

    out, _ = rendered(tampered((row(6, timestamp=midnight),), issues=1))

    assert "Entry #6 at 2026-05-01 00:00:00" in out
