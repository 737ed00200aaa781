"""Runs of verify_audit_trail: check a range of the chain, keep the result, alert on tampering.

Every run is stored as a VerificationRun. Each run also records the chain's head, so a later
run can see that the newest entries were cut off, which the chain alone cannot show.
"""

import datetime as dt
import logging
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.translation import gettext, ngettext

from auditing.models import AuditEntry, VerificationRun
from auditing.verification import (
    VerificationResult,
    Violation,
    ViolationKind,
    chain_verify,
    chain_verify_period,
)
from mailing.addresses import email_address_validate
from mailing.selectors import email_outcomes, staff_email_addresses
from mailing.services import email_queue

logger = logging.getLogger(__name__)

EARLIEST_YEAR = 2000
OPERATION = "verify_audit_trail"
DEFAULT_RANGE_DAYS = 30
TRUNCATED = "truncated"
ALERT_TEMPLATE = "auditing/email/tampering_alert"

_DATE_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}")
# The earlier run a truncation detail names: "run #12 on 2026-05-19 10:00".
_SEEN_ON = re.compile(r"run #(?P<run>\d+) on (?P<when>\d{4}-\d{2}-\d{2} \d{2}:\d{2})")


class InvalidVerificationRange(ValueError):
    pass


@dataclass(frozen=True)
class VerificationRange:
    """Which entries a run checks. ``full``: the whole chain; otherwise the entries written
    in ``start <= timestamp < end``, from local dates ``start_date`` to ``end_date`` inclusive.
    """

    full: bool
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def describe(self) -> str:
        if self.full:
            return "the entire chain"
        return f"{self.start_date} to {self.end_date}, end date included"


def verification_range_resolve(
    *, start_date: str | None, end_date: str | None, full: bool, now: dt.datetime | None = None
) -> VerificationRange:
    """Turn the command's options into a range, or raise InvalidVerificationRange.

    Dates are local (TIME_ZONE) and the end date is included. Without --end-date the range
    ends now; without --start-date it starts 30 days before the end date.
    """
    if full:
        if start_date or end_date:
            raise InvalidVerificationRange(
                "--full checks the entire chain and cannot be combined with "
                "--start-date or --end-date."
            )
        return VerificationRange(full=True)
    now = now or timezone.now()
    today = timezone.localdate(now)
    start_day = _date_parse(start_date, option="--start-date")
    end_day = _date_parse(end_date, option="--end-date")
    if end_day is None:
        end_day, end = today, now
    else:
        end = _local_midnight(end_day + dt.timedelta(days=1))
    if start_day is None:
        start_day = end_day - dt.timedelta(days=DEFAULT_RANGE_DAYS)
    if start_day > end_day:
        raise InvalidVerificationRange(
            f"The start date {start_day} is after the end date {end_day}."
        )
    return VerificationRange(
        full=False,
        start_date=start_day,
        end_date=end_day,
        start=_local_midnight(start_day),
        end=end,
    )


def verification_run_perform(
    *,
    start_date: str | None,
    end_date: str | None,
    full: bool,
    alert_on_tampering: bool,
    email: str | None,
    trigger: str,
) -> dict[str, Any]:
    """Verify the range, store the run, and alert when tampering is found.

    An alert goes to ``email`` when given, else to every administrator when
    ``alert_on_tampering``. Bad dates or a bad address raise ValueError before anything runs.
    """
    started_at = timezone.now()
    period = verification_range_resolve(
        start_date=start_date, end_date=end_date, full=full, now=started_at
    )
    alert_address = email_address_validate(email) if email else None
    clock = time.monotonic()

    head = AuditEntry.objects.order_by("-sequence").values("sequence", "current_hash").first()
    head_sequence = head["sequence"] if head else None
    run = VerificationRun.objects.create(
        started_at=started_at,
        trigger=trigger,
        full=period.full,
        range_start=period.start_date,
        range_end=period.end_date,
        head_sequence=head_sequence,
        head_hash=head["current_hash"] if head else "",
    )
    if period.full:
        # Up to the head seen at the start: entries appended meanwhile are the next run's.
        result = chain_verify(end_sequence=head_sequence)
    else:
        result = chain_verify_period(start=period.start, end=period.end)
    violations = [_violation_row(violation) for violation in result.violations]
    truncation = _truncation_check(run=run, head_sequence=head_sequence)
    if truncation:
        violations.append(truncation)

    run.finished_at = timezone.now()
    run.entries_checked = result.entries_checked
    run.first_sequence = result.first_sequence
    run.last_sequence = result.last_sequence
    run.intact = not violations
    run.violations = violations
    run.duration_ms = round((time.monotonic() - clock) * 1000)
    run.save()

    summary = _summary(run=run, period=period, result=result)
    if run.intact:
        logger.info(
            "Audit trail intact (%s run #%s): %s entries checked, %s",
            trigger,
            run.pk,
            run.entries_checked,
            period.describe(),
        )
        return summary

    logger.error(
        "AUDIT TRAIL TAMPERING (%s run #%s): %s issue(s) in %s: %s",
        trigger,
        run.pk,
        len(violations),
        period.describe(),
        "; ".join(f"#{row['sequence']} {row['kind']}" for row in violations),
    )
    summary["message"] = f"Tampering detected: {_issues(len(violations))} in the audit trail."
    if alert_address or alert_on_tampering:
        summary["alert"] = _alert_send(
            run=run, period=period, recipients=[alert_address] if alert_address else None
        )
        # After the block that queued it: outside a transaction the mail has gone by now.
        summary["emails"] = asdict(email_outcomes(filter(None, [summary["alert"]["email_id"]])))
    return summary


def _date_parse(value: str | None, *, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        if not _DATE_FORMAT.fullmatch(value):
            raise ValueError(value)
        parsed = dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidVerificationRange(
            f"{option} {value!r} is not a valid date; use YYYY-MM-DD."
        ) from None
    # Far-off years would overflow the date arithmetic; no audit entry is that old or new.
    if not EARLIEST_YEAR <= parsed.year <= timezone.localdate().year + 1:
        raise InvalidVerificationRange(
            f"{option} {value} is out of range: use a year from {EARLIEST_YEAR} to "
            f"{timezone.localdate().year + 1}."
        )
    return parsed


def _local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_default_timezone())


def _violation_row(violation: Violation) -> dict[str, Any]:
    row = violation.as_dict()
    if violation.timestamp is not None:
        row["timestamp"] = timezone.localtime(violation.timestamp).isoformat()
    return row


def _truncation_check(*, run: VerificationRun, head_sequence: int | None) -> dict[str, Any] | None:
    """Compare the head with the highest one an earlier run recorded.

    Lower now: the newest entries were removed. Same height but another hash at the
    recorded head: entries were removed and the chain appended again from there.
    """
    recorded = (
        VerificationRun.objects.exclude(pk=run.pk)
        .filter(head_sequence__isnull=False)
        .order_by("-head_sequence", "-started_at")
        .first()
    )
    if recorded is None:
        return None
    seen_on = f"run #{recorded.pk} on {timezone.localtime(recorded.started_at):%Y-%m-%d %H:%M}"
    current = head_sequence or 0
    if recorded.head_sequence > current:
        first_missing = current + 1
        missing = (
            f"entry {first_missing} is"
            if first_missing == recorded.head_sequence
            else f"entries {first_missing} to {recorded.head_sequence} are"
        )
        return {
            "sequence": first_missing,
            "timestamp": None,
            "kind": TRUNCATED,
            "expected": str(recorded.head_sequence),
            "stored": str(current),
            "detail": (
                f"the chain ends at {current or 'no entry'} but {seen_on} saw it end at "
                f"{recorded.head_sequence}: {missing} missing from the end"
            ),
        }
    entry = (
        AuditEntry.objects.filter(sequence=recorded.head_sequence)
        .values("timestamp", "current_hash")
        .first()
    )
    if entry is None or entry["current_hash"] == recorded.head_hash:
        # A missing entry is a gap: a run whose range covers it reports it.
        return None
    return {
        "sequence": recorded.head_sequence,
        "timestamp": timezone.localtime(entry["timestamp"]).isoformat(),
        "kind": TRUNCATED,
        "expected": recorded.head_hash,
        "stored": entry["current_hash"],
        "detail": (
            f"{seen_on} recorded another hash for this entry, then the head: the chain "
            "was cut back and appended again"
        ),
    }


def _summary(
    *, run: VerificationRun, period: VerificationRange, result: VerificationResult
) -> dict[str, Any]:
    return {
        "operation": OPERATION,
        "trigger": run.trigger,
        "status": "ok" if run.intact else "tampering",
        "run_id": run.pk,
        "full": period.full,
        "range_start": period.start_date.isoformat() if period.start_date else None,
        "range_end": period.end_date.isoformat() if period.end_date else None,
        "time_zone": settings.TIME_ZONE,
        "ran_at": timezone.localtime(run.started_at).isoformat(),
        "entries_checked": run.entries_checked,
        "first_sequence": run.first_sequence,
        "last_sequence": run.last_sequence,
        "last_hash": result.head_hash,
        "head_sequence": run.head_sequence,
        "head_hash": run.head_hash or None,
        "intact": run.intact,
        "issues": len(run.violations),
        "violations": run.violations,
        "duration_ms": run.duration_ms,
        "alert": None,
        "emails": asdict(email_outcomes([])),
    }


def _alert_send(
    *, run: VerificationRun, period: VerificationRange, recipients: list[str] | None
) -> dict[str, Any]:
    """Email the alert to ``recipients``, or to every administrator when None."""
    to_admins = recipients is None
    addresses = staff_email_addresses() if to_admins else recipients
    if not addresses:
        logger.error("Tampering alert for run #%s not sent: no administrator has an email", run.pk)
        return {"to": "admins", "recipients": [], "email_id": None}
    violations = [
        {
            **row,
            "timestamp": dt.datetime.fromisoformat(row["timestamp"]) if row["timestamp"] else None,
            "detail": _violation_text_lazy(row),
        }
        for row in run.violations
    ]
    with transaction.atomic():
        message = email_queue(
            purpose="tampering_alert",
            recipients=addresses,
            subject=_alert_subject_lazy(
                day=timezone.localdate(run.started_at), count=len(violations)
            ),
            template=ALERT_TEMPLATE,
            context={
                "run": run,
                "range": _range_text_lazy(period),
                "issue_count": len(violations),
                "violations": violations,
                "time_zone": settings.TIME_ZONE,
            },
            about=f"verification run #{run.pk}",
            subject_object=run,
        )
    return {
        "to": "admins" if to_admins else "email",
        "recipients": addresses,
        "email_id": message.pk,
    }


def _issues(count: int) -> str:
    return f"{count} issue" if count == 1 else f"{count} issues"


# The alert's texts, translated when email_queue renders it (in the email language).
def _alert_subject(*, day: dt.date, count: int) -> str:
    return ngettext(
        "[ALERT] Audit trail tampering detected on %(day)s — %(count)s issue",
        "[ALERT] Audit trail tampering detected on %(day)s — %(count)s issues",
        count,
    ) % {"day": day.isoformat(), "count": count}


def _range_text(period: VerificationRange) -> str:
    if period.full:
        return gettext("the entire chain")
    return gettext("%(start)s to %(end)s, end date included") % {
        "start": period.start_date,
        "end": period.end_date,
    }


def _violation_text(row: dict[str, Any]) -> str:
    """What the stored detail says, in the email language, from the row's own fields."""
    kind, expected, stored = row["kind"], row["expected"], row["stored"]
    if kind == ViolationKind.CONTENT_MISMATCH:
        return gettext("the entry's content does not match its stored hash")
    if kind == ViolationKind.BROKEN_LINK:
        return gettext("previous_hash does not match the preceding entry's hash")
    if kind == ViolationKind.GAP:
        expected_number, found = int(expected), int(stored)
        if found < expected_number:
            return gettext("sequence %(found)s appears after %(previous)s") % {
                "found": found,
                "previous": expected_number - 1,
            }
        if found == expected_number + 1:
            return gettext("entry %(number)s is missing") % {"number": expected_number}
        return gettext("entries %(first)s to %(last)s are missing") % {
            "first": expected_number,
            "last": found - 1,
        }
    seen = _SEEN_ON.search(row["detail"]) if kind == TRUNCATED else None
    if seen and expected.isdigit():
        return gettext(
            "the chain ends at entry %(stored)s but run #%(run)s on %(when)s saw it end at "
            "%(expected)s: the newest entries were removed"
        ) % {"stored": stored, "run": seen["run"], "when": seen["when"], "expected": expected}
    if seen:
        return gettext(
            "run #%(run)s on %(when)s recorded another hash for this entry: the chain was "
            "cut back and appended again"
        ) % {"run": seen["run"], "when": seen["when"]}
    return row["detail"]


_alert_subject_lazy = lazy(_alert_subject, str)
_violation_text_lazy = lazy(_violation_text, str)
_range_text_lazy = lazy(_range_text, str)
