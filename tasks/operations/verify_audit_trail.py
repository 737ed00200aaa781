"""verify_audit_trail: check the hash chain by position, keep the run, sign what is
intact, alert on tampering.

Whatever its options, every run checks the signed checkpoints against the chain and every
entry from the newest good checkpoint to the head, so no edited timestamp can steer it.
The guide's period (or --full) chooses what else is checked. A run that finds the chain
intact signs its head as a new checkpoint and keeps it outside the database.
"""

import datetime as dt
import enum
import logging
import re
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.utils import timezone

from auditing.chain import Checkpoint, Violation, ViolationKind, checkpoints_check
from auditing.checkpoints import checkpoint_sources
from auditing.enforcement import append_only_enforcement_problems
from auditing.models import VerificationRun
from auditing.rows import RowsChecked, rows_check
from auditing.selectors import (
    ChainHead,
    audit_chain_head,
    audit_hashes_at,
    checkpoint_acknowledged_references,
    checkpoint_row,
)
from auditing.services import (
    CheckpointWritten,
    checkpoint_sign_and_store,
    verification_run_checkpoint_attach,
    verification_run_fail,
    verification_run_finish,
    verification_run_start,
)
from auditing.verification import (
    CHAIN_START,
    VerificationResult,
    chain_verify_ranges,
    period_sequences,
    ranges_merge,
)
from mailing.addresses import InvalidEmailAddress
from mailing.selectors import EmailOutcomes, email_outcomes, staff_email_addresses
from payments.audited import AUDITED_TABLES
from tasks.audit_emails import auditors_report_queue, tampering_alert_queue
from tasks.inputs import (
    InvalidInput,
    email_address_checked,
    email_option,
    flag_option,
    no_unknown_arguments,
    quoted,
)
from tasks.results import OperationStatus, Trigger, omitted_when_none
from tasks.runner import Operation, OperationStopped

logger = logging.getLogger(__name__)

NAME = "verify_audit_trail"
DEFAULT_RANGE_DAYS = 30
EARLIEST_YEAR = 2000
# The command, the task's result and the alert show this many findings; the run in the
# admin and the alert's CSV attachment hold them all.
VIOLATIONS_SHOWN = 50

_DATE_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}")


# Options ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """``full``: the whole chain; otherwise local dates, the end date included (None: the
    defaults, resolved when the run starts)."""

    full: bool = False
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    alert_on_tampering: bool = False
    email: str | None = None


@dataclass(frozen=True)
class Period:
    """What a run checks besides the checkpoints and the tail: the whole chain, the entries
    written in ``start <= timestamp < end`` (local dates ``start_date`` to ``end_date``
    inclusive), or nothing more (``tail_only``, the hourly checkpoint)."""

    full: bool
    tail_only: bool = False
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def describe(self) -> str:
        if self.full:
            return "the entire chain"
        if self.tail_only:
            return "the entries since the last checkpoint"
        return f"{self.start_date} to {self.end_date}, end date included"


def options_parse(
    *,
    start_date: Any = None,
    end_date: Any = None,
    full: Any = False,
    alert_on_tampering: Any = False,
    email: Any = None,
    **unknown: Any,
) -> Options:
    """Check the task's arguments, in the command's order and with its sentences.

    Without --end-date the range ends when the run starts; without --start-date it starts
    30 days before the end date.
    """
    no_unknown_arguments(
        unknown,
        operation=NAME,
        known=("start_date", "end_date", "full", "alert_on_tampering", "email", "trigger"),
    )
    full = flag_option(full, option="full")
    alert_on_tampering = flag_option(alert_on_tampering, option="alert_on_tampering")
    if full:
        if start_date or end_date:
            raise InvalidInput(
                "--full checks the entire chain and cannot be combined with "
                "--start-date or --end-date."
            )
        start_day = end_day = None
    else:
        start_day = _date_parse(start_date, option="--start-date")
        end_day = _date_parse(end_date, option="--end-date")
        period = period_resolve(Options(start_date=start_day, end_date=end_day), now=timezone.now())
        if period.start_date > period.end_date:
            raise InvalidInput(
                f"The start date {period.start_date} is after the end date {period.end_date}."
            )
    return Options(
        full=full,
        start_date=start_day,
        end_date=end_day,
        alert_on_tampering=alert_on_tampering,
        email=_alert_address(email),
    )


def period_resolve(options: Options, *, now: dt.datetime) -> Period:
    if options.full:
        return Period(full=True)
    if options.end_date is None:
        end_date, end = timezone.localdate(now), now
    else:
        end_date, end = options.end_date, _local_midnight(options.end_date + dt.timedelta(days=1))
    start_date = options.start_date or end_date - dt.timedelta(days=DEFAULT_RANGE_DAYS)
    return Period(
        full=False,
        start_date=start_date,
        end_date=end_date,
        start=_local_midnight(start_date),
        end=end,
    )


def _date_parse(value: Any, *, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str) or not _DATE_FORMAT.fullmatch(value):
            raise ValueError(value)
        parsed = dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{option} {quoted(value)} is not a valid date; use YYYY-MM-DD."
        ) from None
    # Far-off years would overflow the date arithmetic; no audit entry is that old or new.
    latest_year = timezone.localdate().year + 1
    if not EARLIEST_YEAR <= parsed.year <= latest_year:
        raise InvalidInput(
            f"{option} {value} is out of range: use a year from {EARLIEST_YEAR} to {latest_year}."
        )
    return parsed


def _alert_address(value: Any) -> str | None:
    """An empty --email alerts nobody, as no --email. A bad address gets this command's
    sentence: the address error alone, without the other commands' "--email: " prefix."""
    if value == "":
        return None
    if not isinstance(value, str):
        return email_option(value)  # None, or its sentence for a value that is no address
    try:
        return email_address_checked(value)
    except InvalidEmailAddress as error:
        reason = str(error)
        raise InvalidInput(f"{reason[:1].upper()}{reason[1:]}.") from error


def _local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_default_timezone())


# Result -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViolationRow:
    """One finding, as the command and the task's result show it. ``sequence`` is None
    when no entry is at fault (enforcement switched off, a checkpoint file unreadable, a
    row with no entry); ``table``, ``row`` and ``field`` name what a row finding is about."""

    sequence: int | None
    timestamp: dt.datetime | None
    kind: ViolationKind
    expected: str
    stored: str
    detail: str
    table: str | None = omitted_when_none()
    row: str | None = omitted_when_none()
    field: str | None = omitted_when_none()

    @classmethod
    def of(cls, violation: Violation) -> "ViolationRow":
        return cls(
            sequence=violation.sequence,
            timestamp=violation.timestamp,
            kind=violation.kind,
            expected=violation.expected,
            stored=violation.stored,
            detail=violation.detail,
            table=violation.table or None,
            row=violation.row or None,
            field=violation.field or None,
        )


@dataclass(frozen=True)
class CheckpointShown:
    """A signed checkpoint: the last good one a run started from, or the one it wrote."""

    sequence: int
    head_hash: str
    signed_at: dt.datetime
    signature: str | None = omitted_when_none()
    written_to: tuple[str, ...] | None = omitted_when_none()
    not_written_to: tuple[str, ...] | None = omitted_when_none()

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> "CheckpointShown":
        return cls(
            sequence=checkpoint.sequence,
            head_hash=checkpoint.head_hash,
            signed_at=checkpoint.signed_at,
        )

    @classmethod
    def written(cls, written: CheckpointWritten) -> "CheckpointShown":
        return replace(
            cls.of(written.signed.checkpoint),
            signature=written.signed.signature,
            written_to=written.written_to,
            not_written_to=tuple(f"{where}: {why}" for where, why in written.failures),
        )


class AlertTo(enum.StrEnum):
    ADMINS = "admins"
    EMAIL = "email"


@dataclass(frozen=True)
class Alert:
    """The tampering alert: ``recipients`` empty when no administrator has an address."""

    to: AlertTo
    recipients: tuple[str, ...]
    email_id: int | None


@dataclass(frozen=True, kw_only=True)
class Result:
    """What a run checked and found. ``violations``: the first VIOLATIONS_SHOWN of
    ``issues``. ``message`` when tampering was found or a checkpoint could not be kept."""

    operation: str = NAME
    trigger: Trigger
    status: OperationStatus
    run_id: int
    full: bool
    range_start: dt.date | None
    range_end: dt.date | None
    time_zone: str
    ran_at: dt.datetime
    ranges: tuple[tuple[int, int], ...]
    entries_checked: int
    first_sequence: int | None
    last_sequence: int | None
    last_hash: str | None
    head_sequence: int | None
    head_hash: str | None
    checkpoints_checked: int
    last_good_checkpoint: CheckpointShown | None
    checkpoint: CheckpointShown | None
    # A full run's check of the cash tables against the trail: rows checked per table.
    rows_checked: tuple[RowsChecked, ...] | None = omitted_when_none()
    intact: bool
    issues: int
    violations: tuple[ViolationRow, ...]
    duration_ms: int
    alert: Alert | None = None
    emails: EmailOutcomes = EmailOutcomes()
    message: str | None = omitted_when_none()

    def __post_init__(self) -> None:
        if self.status == OperationStatus.TAMPERING and self.message is None:
            issues = f"{self.issues} issue" if self.issues == 1 else f"{self.issues} issues"
            object.__setattr__(self, "message", f"Tampering detected: {issues} in the audit trail.")


class VerificationIncomplete(OperationStopped):
    """The run could not complete. Its record says why, and the alert went out."""


# The run ----------------------------------------------------------------------------------

# How a run shows its progress, set by the command on a terminal (tasks/rendering): called
# with the number of entries to check, it gives a context manager of a callable told how
# many were read. Unset (Celery, cron, --json): only the summary.
ProgressDisplay = Callable[[int], AbstractContextManager[Callable[[int], None]]]
progress_display: ContextVar[ProgressDisplay | None] = ContextVar(
    "verification_progress_display", default=None
)


@dataclass(frozen=True)
class _Checked:
    result: VerificationResult
    violations: list[Violation]
    checkpoints_checked: int
    last_good: Checkpoint | None
    rows_checked: tuple[RowsChecked, ...] | None = None


def audit_trail_verify(*, options: Options, trigger: Trigger) -> Result:
    """Verify, store the run, sign an intact head, and alert when tampering is found.

    An alert goes to ``options.email`` when given, else to every administrator when
    ``options.alert_on_tampering``. The auditors (settings.AUDITOR_EMAILS) receive every
    run's outcome with the signed head.
    """
    return run_by_position(
        period=period_resolve(options, now=timezone.now()),
        trigger=trigger,
        alert_to=_alert_recipients(options),
        report_to_auditors=True,
    )


def run_by_position(
    *, period: Period, trigger: Trigger, alert_to: list[str] | None, report_to_auditors: bool
) -> Result:
    """One verification run. ``alert_to``: None alerts nobody, [] every administrator."""
    started_at = timezone.now()
    clock = time.monotonic()
    head = audit_chain_head()
    run = verification_run_start(
        started_at=started_at,
        trigger=trigger,
        full=period.full,
        range_start=period.start_date,
        range_end=period.end_date,
        head=head,
    )
    try:
        checked = _checks_by_position(period=period, head=head, now=started_at)
    except Exception as error:
        _run_could_not_complete(run=run, error=error, clock=clock, head=head, alert_to=alert_to)
        raise VerificationIncomplete(
            f"Audit trail verification could not complete (run #{run.pk}): "
            f"{type(error).__name__}: {error}"
        ) from error
    run = verification_run_finish(
        run=run,
        result=checked.result,
        violations=checked.violations,
        duration_ms=_elapsed_ms(clock),
        last_good_checkpoint=checkpoint_row(checkpoint=checked.last_good)
        if checked.last_good
        else None,
    )
    written = None
    if (
        run.intact
        and head
        and (not checked.last_good or checked.last_good.sequence < head.sequence)
    ):
        written = checkpoint_sign_and_store(head=head, signed_at=timezone.now())
        verification_run_checkpoint_attach(run=run, checkpoint=written.row)
    outcome = _result(
        run=run, period=period, trigger=trigger, checked=checked, head=head, written=written
    )
    _log(outcome, period=period)
    emails = []
    if report_to_auditors and settings.AUDITOR_EMAILS:
        emails.append(
            auditors_report_queue(
                run=run,
                recipients=list(settings.AUDITOR_EMAILS),
                head=head,
                checkpoint=written.signed if written else None,
                last_good=checked.last_good,
            )
        )
    if not run.intact and alert_to is not None:
        alert = _alert_send(run=run, recipients=alert_to, head=head, last_good=checked.last_good)
        outcome = replace(outcome, alert=alert)
        emails.append(alert.email_id)
    if emails:
        # After the blocks that queued them committed: queued, or already taken by a worker.
        outcome = replace(outcome, emails=email_outcomes(filter(None, emails)))
    return outcome


def _checks_by_position(*, period: Period, head: ChainHead | None, now: dt.datetime) -> _Checked:
    """Enforcement, then every checkpoint against the chain, then the entries: from the
    newest good checkpoint to the head, plus the period's (or every) sequence."""
    enforcement = [
        Violation(kind=ViolationKind.ENFORCEMENT_OFF, sequence=None, detail=problem)
        for problem in append_only_enforcement_problems()
    ]
    head_sequence = head.sequence if head else 0
    sources = list(checkpoint_sources())
    report = checkpoints_check(
        sources,
        trusted_public_keys=settings.AUDIT_TRUSTED_PUBLIC_KEYS,
        head_sequence=head_sequence,
        hashes_at=audit_hashes_at(
            sequences=[source.signed.checkpoint.sequence for source in sources if source.signed]
        ),
        acknowledged=checkpoint_acknowledged_references(),
    )
    ranges = []
    if head:
        # Entries appended after the run started are the next run's.
        tail_start = report.last_good.sequence + 1 if report.last_good else CHAIN_START
        ranges.append((tail_start, head_sequence))
        if period.full:
            ranges.append((CHAIN_START, head_sequence))
        elif not period.tail_only:
            in_period = period_sequences(
                start=period.start, end=period.end, head_sequence=head_sequence
            )
            if in_period:
                ranges.append(in_period)
    display = progress_display.get()
    if display is None:
        result = chain_verify_ranges(ranges, now=now)
    else:
        ranges = ranges_merge(ranges)
        with display(sum(end - max(start, 1) + 1 for start, end in ranges)) as advance:
            result = chain_verify_ranges(ranges, now=now, progress=advance)
    # The cash tables are read whole, so only a full run checks them against the trail.
    rows = rows_check(AUDITED_TABLES) if period.full else None
    return _Checked(
        result=result,
        violations=[
            *enforcement,
            *report.findings,
            *result.violations,
            *(rows.findings if rows else ()),
        ],
        checkpoints_checked=report.checked,
        last_good=report.last_good,
        rows_checked=tuple(rows.checked) if rows else None,
    )


def _result(
    *,
    run: VerificationRun,
    period: Period,
    trigger: Trigger,
    checked: _Checked,
    head: ChainHead | None,
    written: CheckpointWritten | None,
) -> Result:
    status = OperationStatus.OK if run.intact else OperationStatus.TAMPERING
    message = None
    if written and written.failures:
        status = OperationStatus.FAILED
        message = (
            "The audit trail is intact, but its checkpoint could not be kept in "
            + "; ".join(f"{where} ({why})" for where, why in written.failures)
            + "."
        )
    return Result(
        trigger=trigger,
        status=status,
        run_id=run.pk,
        full=period.full,
        range_start=period.start_date,
        range_end=period.end_date,
        time_zone=settings.TIME_ZONE,
        ran_at=run.started_at,
        ranges=tuple(tuple(pair) for pair in checked.result.ranges),
        entries_checked=run.entries_checked,
        first_sequence=run.first_sequence,
        last_sequence=run.last_sequence,
        last_hash=checked.result.head_hash,
        head_sequence=run.head_sequence,
        head_hash=run.head_hash or None,
        checkpoints_checked=checked.checkpoints_checked,
        last_good_checkpoint=CheckpointShown.of(checked.last_good) if checked.last_good else None,
        checkpoint=CheckpointShown.written(written) if written else None,
        rows_checked=checked.rows_checked,
        intact=run.intact,
        issues=run.issue_count,
        violations=tuple(
            ViolationRow.of(violation) for violation in checked.violations[:VIOLATIONS_SHOWN]
        ),
        duration_ms=run.duration_ms,
        message=message,
    )


def _log(outcome: Result, *, period: Period) -> None:
    if outcome.intact:
        logger.info(
            "Audit trail intact (%s run #%s): %s entries checked, %s; head #%s %s",
            outcome.trigger,
            outcome.run_id,
            outcome.entries_checked,
            period.describe(),
            outcome.head_sequence,
            outcome.head_hash,
        )
        return
    logger.error(
        "AUDIT TRAIL TAMPERING (%s run #%s): %s issue(s) in %s; head #%s %s: %s",
        outcome.trigger,
        outcome.run_id,
        outcome.issues,
        period.describe(),
        outcome.head_sequence,
        outcome.head_hash,
        "; ".join(f"#{row.sequence} {row.kind}" for row in outcome.violations),
    )


def _run_could_not_complete(
    *,
    run: VerificationRun,
    error: Exception,
    clock: float,
    head: ChainHead | None,
    alert_to: list[str] | None,
) -> None:
    """Finish the record as failed and send the alert, each as far as the fault allows: a
    database that went away keeps both from being written, and the log says so."""
    logger.error(
        "Audit trail verification run #%s could not complete: %s",
        run.pk,
        "".join(traceback.format_exception_only(error)).strip(),
    )
    try:
        verification_run_fail(
            run=run, error=f"{type(error).__name__}: {error}", duration_ms=_elapsed_ms(clock)
        )
        if alert_to is not None:
            _alert_send(run=run, recipients=alert_to, head=head, last_good=None)
    except Exception:
        logger.exception("Run #%s: its failure could not be recorded or alerted", run.pk)


def _alert_recipients(options: Options) -> list[str] | None:
    if options.email:
        return [options.email]
    return [] if options.alert_on_tampering else None


def _alert_send(
    *,
    run: VerificationRun,
    recipients: list[str],
    head: ChainHead | None,
    last_good: Checkpoint | None,
) -> Alert:
    """Email the alert to ``recipients``, or to every administrator when empty."""
    to = AlertTo.EMAIL if recipients else AlertTo.ADMINS
    addresses = recipients or staff_email_addresses()
    if not addresses:
        logger.error("Tampering alert for run #%s not sent: no administrator has an email", run.pk)
        return Alert(to=AlertTo.ADMINS, recipients=(), email_id=None)
    email_id = tampering_alert_queue(run=run, recipients=addresses, head=head, last_good=last_good)
    return Alert(to=to, recipients=tuple(addresses), email_id=email_id)


def _elapsed_ms(clock: float) -> int:
    return round((time.monotonic() - clock) * 1000)


OPERATION = Operation(name=NAME, parse=options_parse, run=audit_trail_verify)
