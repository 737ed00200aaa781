"""verify_audit_trail: check the hash chain over a range, keep the run, alert on tampering.

Every run is stored as a VerificationRun with the chain's head it saw, so a later run can
see that the newest entries were cut off, which the chain alone cannot show.
"""

import datetime as dt
import enum
import logging
import re
import time
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from auditing.models import VerificationRun
from auditing.selectors import audit_chain_head, verification_run_highest_head
from auditing.services import verification_run_finish, verification_run_start
from auditing.verification import (
    Violation,
    ViolationKind,
    chain_truncation_check,
    chain_verify,
    chain_verify_period,
)
from mailing.addresses import InvalidEmailAddress
from mailing.selectors import EmailOutcomes, email_outcomes, staff_email_addresses
from mailing.services import email_queue
from tasks.inputs import (
    InvalidInput,
    email_address_checked,
    email_option,
    flag_option,
    no_unknown_arguments,
    quoted,
)
from tasks.results import OperationStatus, Trigger, omitted_when_none
from tasks.runner import Operation

logger = logging.getLogger(__name__)

NAME = "verify_audit_trail"
DEFAULT_RANGE_DAYS = 30
EARLIEST_YEAR = 2000
ALERT_TEMPLATE = "auditing/email/tampering_alert"

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
    """Which entries a run checks: the whole chain, or those written in
    ``start <= timestamp < end``, from local dates ``start_date`` to ``end_date`` inclusive."""

    full: bool
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def describe(self) -> str:
        if self.full:
            return "the entire chain"
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
    """One finding, as stored with the run. A truncation names the earlier run that saw
    the longer chain."""

    sequence: int
    timestamp: dt.datetime | None
    kind: ViolationKind
    expected: str
    stored: str
    detail: str
    seen_run: int | None = omitted_when_none()
    seen_at: dt.datetime | None = omitted_when_none()

    @classmethod
    def of(cls, violation: Violation) -> "ViolationRow":
        return cls(
            sequence=violation.sequence,
            timestamp=violation.timestamp,
            kind=violation.kind,
            expected=violation.expected,
            stored=violation.stored,
            detail=violation.detail,
            seen_run=violation.seen_run,
            seen_at=violation.seen_at,
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
    """What a run checked and found. ``message`` only when tampering was found."""

    operation: str = NAME
    trigger: Trigger
    status: OperationStatus
    run_id: int
    full: bool
    range_start: dt.date | None
    range_end: dt.date | None
    time_zone: str
    ran_at: dt.datetime
    entries_checked: int
    first_sequence: int | None
    last_sequence: int | None
    last_hash: str | None
    head_sequence: int | None
    head_hash: str | None
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


# The run ----------------------------------------------------------------------------------


def audit_trail_verify(*, options: Options, trigger: Trigger) -> Result:
    """Verify the range, store the run, and alert when tampering is found.

    An alert goes to ``options.email`` when given, else to every administrator when
    ``options.alert_on_tampering``.
    """
    started_at = timezone.now()
    period = period_resolve(options, now=started_at)
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
    if period.full:
        # Up to the head seen at the start: entries appended meanwhile are the next run's.
        result = chain_verify(end_sequence=head.sequence if head else None)
    else:
        result = chain_verify_period(start=period.start, end=period.end)
    violations = list(result.violations)
    truncation = chain_truncation_check(
        head_sequence=run.head_sequence, recorded=verification_run_highest_head(excluding=run)
    )
    if truncation:
        violations.append(truncation)
    run = verification_run_finish(
        run=run,
        result=result,
        violations=violations,
        duration_ms=round((time.monotonic() - clock) * 1000),
    )
    outcome = Result(
        trigger=trigger,
        status=OperationStatus.OK if run.intact else OperationStatus.TAMPERING,
        run_id=run.pk,
        full=period.full,
        range_start=period.start_date,
        range_end=period.end_date,
        time_zone=settings.TIME_ZONE,
        ran_at=run.started_at,
        entries_checked=run.entries_checked,
        first_sequence=run.first_sequence,
        last_sequence=run.last_sequence,
        last_hash=result.head_hash,
        head_sequence=run.head_sequence,
        head_hash=run.head_hash or None,
        intact=run.intact,
        issues=len(violations),
        violations=tuple(ViolationRow.of(violation) for violation in violations),
        duration_ms=run.duration_ms,
    )
    if run.intact:
        logger.info(
            "Audit trail intact (%s run #%s): %s entries checked, %s",
            trigger,
            run.pk,
            run.entries_checked,
            period.describe(),
        )
        return outcome

    logger.error(
        "AUDIT TRAIL TAMPERING (%s run #%s): %s issue(s) in %s: %s",
        trigger,
        run.pk,
        len(violations),
        period.describe(),
        "; ".join(f"#{violation.sequence} {violation.kind}" for violation in violations),
    )
    if not (options.email or options.alert_on_tampering):
        return outcome
    alert = _alert_send(
        run=run, outcome=outcome, recipients=[options.email] if options.email else None
    )
    return replace(
        outcome,
        alert=alert,
        # After the block that queued it committed: queued, or already taken by a worker.
        emails=email_outcomes(filter(None, [alert.email_id])),
    )


def _alert_send(*, run: VerificationRun, outcome: Result, recipients: list[str] | None) -> Alert:
    """Email the alert to ``recipients``, or to every administrator when None."""
    to = AlertTo.ADMINS if recipients is None else AlertTo.EMAIL
    addresses = staff_email_addresses() if recipients is None else recipients
    if not addresses:
        logger.error("Tampering alert for run #%s not sent: no administrator has an email", run.pk)
        return Alert(to=AlertTo.ADMINS, recipients=(), email_id=None)
    with transaction.atomic():
        message = email_queue(
            purpose="tampering_alert",
            recipients=addresses,
            template=ALERT_TEMPLATE,
            context={
                "run": run,
                "issue_count": outcome.issues,
                "violations": outcome.violations,
                "time_zone": outcome.time_zone,
            },
            about=f"verification run #{run.pk}",
            subject_object=run,
        )
    return Alert(to=to, recipients=tuple(addresses), email_id=message.pk)


OPERATION = Operation(name=NAME, parse=options_parse, run=audit_trail_verify)
