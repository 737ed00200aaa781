"""verify_audit_trail's (and audit_checkpoint's) text output: the range, what was checked
by sequence, the checkpoints, the verdict, the first findings and what became of the
alert."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

from django.conf import settings
from django.core.management.base import OutputWrapper
from django.core.management.color import Style
from django.urls import reverse
from django.utils import timezone
from tqdm import tqdm

from auditing.models import VerificationFinding
from tasks.operations.verify_audit_trail import (
    CheckpointShown,
    Result,
    ViolationRow,
    progress_display,
)
from tasks.rendering.emails import email_outcomes_text


@contextmanager
def verification_progress(out: OutputWrapper) -> Iterator[None]:
    """While it lasts, a verification run shows a progress bar on ``out``, with its rate and
    the time left, when ``out`` is a terminal; under cron (not a terminal) nothing but the
    summary is written.

    tqdm rather than rich: one small package without dependencies, whose bar is one line
    rewritten in place, where rich would bring its console and pygments for a single bar.
    """
    if not out.isatty():
        yield
        return
    token = progress_display.set(partial(_progress_bar, out))
    try:
        yield
    finally:
        progress_display.reset(token)


@contextmanager
def _progress_bar(out: OutputWrapper, total: int) -> Iterator[Callable[[int], None]]:
    with tqdm(
        total=total,
        file=_Unterminated(out),
        desc="Checking the chain",
        unit=" entries",
        unit_scale=True,
        mininterval=0.5,
        # Cleared when done: the summary follows on a clean line.
        leave=False,
    ) as bar:
        yield bar.update


class _Unterminated:
    """``out`` without the line ending OutputWrapper adds to each write: tqdm redraws its
    line with carriage returns."""

    def __init__(self, out: OutputWrapper) -> None:
        self._out = out

    def write(self, text: str) -> None:
        self._out.write(text, ending="")

    def flush(self) -> None:
        self._out.flush()


def verification_render(
    result: Result, *, out: OutputWrapper, err: OutputWrapper, style: Style
) -> None:
    out.write(f"Range: {_range_text(result)}")
    if result.ranges:
        out.write(f"Checked by sequence: {ranges_text(result.ranges)} ({_entries(result)})")
    else:
        out.write("No audit entries checked.")
    out.write(f"Checkpoints checked: {result.checkpoints_checked}")
    if result.rows_checked is not None:
        counts = ", ".join(f"{checked.table} {checked.rows}" for checked in result.rows_checked)
        out.write(f"Rows checked against their audit entries: {counts}")
    if result.last_good_checkpoint:
        out.write(f"Last good checkpoint: {_checkpoint_text(result.last_good_checkpoint)}")
    else:
        out.write("Last good checkpoint: none")
    if result.head_sequence:
        out.write(f"Head of the chain: #{result.head_sequence}  {result.head_hash}")
    out.write(f"Time taken: {result.duration_ms / 1000:.2f} s")
    if result.intact:
        verdict = "Audit trail intact" if result.head_sequence else "Nothing to verify"
        out.write(style.SUCCESS(f"{verdict} (run #{result.run_id})."))
        _checkpoint_render(result, out=out, err=err, style=style)
        return
    issues = f"{result.issues} issue" + ("" if result.issues == 1 else "s")
    out.write(style.ERROR(f"TAMPERING DETECTED: {issues} (run #{result.run_id})."))
    for row in result.violations:
        _violation_render(row, out=out, style=style)
    if result.issues > len(result.violations):
        link = settings.SITE_URL + reverse(
            "admin:auditing_verificationrun_change", args=[result.run_id]
        )
        out.write(
            f"  ... and {result.issues - len(result.violations)} more: "
            f"see run #{result.run_id} in the admin, {link}"
        )
    _alert_render(result, out=out, err=err, style=style)


def ranges_text(ranges: tuple[tuple[int, int], ...]) -> str:
    """``1-120, 4000-4211``; a range of one entry is its number alone."""
    return ", ".join(str(first) if first == last else f"{first}-{last}" for first, last in ranges)


def _range_text(result: Result) -> str:
    if result.full:
        return "the entire audit trail"
    if result.range_start is None:
        return "the entries since the last checkpoint"
    return f"{result.range_start} to {result.range_end} ({result.time_zone}, end date included)"


def _entries(result: Result) -> str:
    return f"{result.entries_checked} entr" + ("y" if result.entries_checked == 1 else "ies")


def _checkpoint_text(checkpoint: CheckpointShown) -> str:
    signed_at = f"{timezone.localtime(checkpoint.signed_at):%Y-%m-%d %H:%M:%S}"
    return f"#{checkpoint.sequence}  {checkpoint.head_hash} (signed {signed_at})"


def _checkpoint_render(
    result: Result, *, out: OutputWrapper, err: OutputWrapper, style: Style
) -> None:
    """What became of the head this intact run saw: signed and kept where, or unchanged."""
    checkpoint = result.checkpoint
    if checkpoint is None:
        last_good = result.last_good_checkpoint
        if last_good and last_good.sequence == result.head_sequence:
            out.write(f"Head unchanged since checkpoint #{last_good.sequence}: no new checkpoint.")
        return
    if checkpoint.written_to:
        out.write(
            f"Checkpoint #{checkpoint.sequence} signed and written to "
            f"{', '.join(checkpoint.written_to)}."
        )
    elif not checkpoint.not_written_to:
        out.write(
            f"Checkpoint #{checkpoint.sequence} signed; no checkpoint sink is configured, "
            "so only the database keeps it."
        )
    for failure in checkpoint.not_written_to or ():
        err.write(style.ERROR(f"Checkpoint #{checkpoint.sequence} not written to {failure}."))


def _violation_render(row: ViolationRow, *, out: OutputWrapper, style: Style) -> None:
    label = VerificationFinding.KIND_LABELS[row.kind]
    if row.table:
        where = f"{row.table} row {row.row}" + (f", field {row.field}" if row.field else "")
    elif row.sequence is None:
        where = "No entry"
    elif row.timestamp:
        where = f"Entry #{row.sequence} at {timezone.localtime(row.timestamp):%Y-%m-%d %H:%M:%S}"
    else:
        where = f"Entry #{row.sequence} at unknown time"
    out.write(style.ERROR(f"  {where}: {label}"))
    if row.expected:
        out.write(f"      expected: {row.expected}")
    if row.stored:
        out.write(f"      stored:   {row.stored}")
    out.write(f"      {row.detail}")


def _alert_render(result: Result, *, out: OutputWrapper, err: OutputWrapper, style: Style) -> None:
    alert = result.alert
    if alert is None:
        out.write("No alert sent (use --alert-on-tampering or --email).")
        return
    if not alert.recipients:
        err.write(
            style.WARNING(
                "No alert sent: no active administrator has an email address. "
                "Use --email to alert someone."
            )
        )
        return
    line = f"Alert to {', '.join(alert.recipients)}: {email_outcomes_text(result.emails)}."
    if result.emails.failed:
        err.write(style.WARNING(line))
    else:
        out.write(line)
