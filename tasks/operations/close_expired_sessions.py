"""close_expired_sessions: close the cash sessions left open past the configured timeout.

A session with payments is skipped (its agent told once) unless ``force``: its cash needs
a count. One failing session never stops the others; the run then fails as a whole.

Sessions close in batches of at most BATCH_SIZE, one transaction each, their rows, audit
entries, notifications and emails written set-wise: a commit and a dozen statements per
session were most of the time of a big run, and a bounded batch still releases the
sessions' and the audit chain's locks often, so agents' payments wait little. A batch the
database refuses is redone with a savepoint per session: only the session at fault fails.
"""

import datetime as dt
import enum
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils import timezone

from mailing.selectors import EmailOutcomes, email_outcomes
from payments.models import SystemConfiguration
from payments.selectors import ExpiredSession, expired_sessions_list
from payments.services import (
    ExpiredSessionClosure,
    ExpiredSessionFailure,
    ExpiredSessionOutcome,
    session_expiry_notify,
    sessions_close_expired,
)
from tasks.inputs import flag_option, no_unknown_arguments
from tasks.results import OperationStatus, Trigger, omitted_when_none
from tasks.runner import Operation, item_failure_stops_the_run

logger = logging.getLogger(__name__)

NAME = "close_expired_sessions"
SKIP_REASON = "has transactions; use --force"
BATCH_SIZE = 200


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    force: bool = False


def options_parse(*, dry_run: Any = False, force: Any = False, **unknown: Any) -> Options:
    no_unknown_arguments(unknown, operation=NAME, known=("dry_run", "force", "trigger"))
    return Options(
        dry_run=flag_option(dry_run, option="dry_run"), force=flag_option(force, option="force")
    )


class SessionAction(enum.StrEnum):
    CLOSED = "closed"
    WOULD_CLOSE = "would_close"
    SKIPPED = "skipped"
    FAILED = "failed"
    ALREADY_HANDLED = "already_handled"


@dataclass(frozen=True)
class SessionRow:
    session: str
    agent: str
    agent_name: str
    opened_at: dt.datetime
    transactions: int
    expected_balance: Decimal
    action: SessionAction
    reason: str | None = omitted_when_none()
    # Only for a skipped session in a run that writes: whether this run told the agent.
    agent_notified: bool | None = omitted_when_none()
    error: str | None = omitted_when_none()


@dataclass(frozen=True)
class Result:
    trigger: Trigger
    status: OperationStatus
    dry_run: bool
    force: bool
    timeout_hours: int
    currency: str
    ran_at: dt.datetime
    closed: int
    would_close: int
    skipped: int
    already_handled: int
    failed: int
    sessions: tuple[SessionRow, ...]
    emails: EmailOutcomes
    operation: str = NAME
    message: str | None = omitted_when_none()


def close_expired_sessions(*, options: Options, trigger: Trigger) -> Result:
    trigger = Trigger(trigger)
    config = SystemConfiguration.load()
    now = timezone.now()
    rows: list[SessionRow] = []
    email_ids: list[int] = []
    selected = expired_sessions_list(now=now, timeout_hours=config.session_timeout_hours)
    closes = {session.pk: options.force or not session.transaction_count for session in selected}
    done: dict[int, dict[str, Any]] = {}
    if not options.dry_run:
        batch: list[ExpiredSession] = []

        def close_batch() -> None:
            if batch:
                done.update(
                    _close_batch(
                        sessions=batch,
                        config=config,
                        now=now,
                        trigger=trigger,
                        force=options.force,
                        email_ids=email_ids,
                    )
                )
                batch.clear()

        for session in selected:
            if closes[session.pk]:
                batch.append(session)
                if len(batch) == BATCH_SIZE:
                    close_batch()
                continue
            # A notice ends the batch before it: every write keeps the order of the
            # sessions, oldest first, as when each session was a transaction of its own.
            close_batch()
            done[session.pk] = {
                "action": SessionAction.SKIPPED,
                "reason": SKIP_REASON,
                **_notify_expired(session=session, config=config, email_ids=email_ids),
            }
        close_batch()
    for session in selected:
        row = {
            "session": session.number,
            "agent": session.agent_code,
            "agent_name": session.agent_name,
            "opened_at": session.opened_at,
            "transactions": session.transaction_count,
            "expected_balance": session.expected_balance,
        }
        if session.pk in done:
            row.update(done[session.pk])
        elif closes[session.pk]:
            row["action"] = SessionAction.WOULD_CLOSE
        else:
            row.update(action=SessionAction.SKIPPED, reason=SKIP_REASON)
        rows.append(SessionRow(**row))

    counts = {action: sum(1 for row in rows if row.action == action) for action in SessionAction}
    failed = counts[SessionAction.FAILED]
    logger.info(
        "close_expired_sessions (%s%s): closed %s, skipped %s, failed %s",
        trigger,
        ", dry run" if options.dry_run else "",
        counts[SessionAction.CLOSED],
        counts[SessionAction.SKIPPED],
        failed,
    )
    return Result(
        trigger=trigger,
        status=OperationStatus.FAILED if failed else OperationStatus.OK,
        dry_run=options.dry_run,
        force=options.force,
        timeout_hours=config.session_timeout_hours,
        currency=config.currency_code,
        ran_at=now,
        closed=counts[SessionAction.CLOSED],
        would_close=counts[SessionAction.WOULD_CLOSE],
        skipped=counts[SessionAction.SKIPPED],
        already_handled=counts[SessionAction.ALREADY_HANDLED],
        failed=failed,
        sessions=tuple(rows),
        emails=email_outcomes(email_ids),
        message=f"{failed} session(s) could not be closed; see the output." if failed else None,
    )


def _close_batch(
    *,
    sessions: list[ExpiredSession],
    config: SystemConfiguration,
    now: dt.datetime,
    trigger: Trigger,
    force: bool,
    email_ids: list[int],
) -> dict[int, dict[str, Any]]:
    """Each session's row fields. A batch that the database refuses as a whole is tried
    again with a savepoint per session, so that only the session at fault fails."""
    arguments = {
        "sessions": sessions,
        "run_at": now,
        "trigger": trigger.value,
        "force": force,
        "config": config,
        "stops_the_batch": item_failure_stops_the_run,
    }
    try:
        outcomes = sessions_close_expired(**arguments)
    except Exception as error:  # noqa: BLE001 - one bad session must not stop the others
        if item_failure_stops_the_run(error):
            raise
        logger.warning(
            "A batch of %s sessions failed (%s); again, a savepoint per session",
            len(sessions),
            error,
        )
        try:
            outcomes = sessions_close_expired(savepoints=True, **arguments)
        except Exception as error:  # noqa: BLE001 - as above
            if item_failure_stops_the_run(error):
                raise
            outcomes = {session.pk: ExpiredSessionFailure(error) for session in sessions}
    numbers = {session.pk: session.number for session in sessions}
    return {
        pk: _row_fields(outcome, number=numbers[pk], email_ids=email_ids)
        for pk, outcome in outcomes.items()
    }


def _row_fields(
    outcome: ExpiredSessionClosure | ExpiredSessionFailure, *, number: str, email_ids: list[int]
) -> dict[str, Any]:
    if isinstance(outcome, ExpiredSessionFailure):
        error = outcome.error
        logger.error("Auto-close of session %s failed", number, exc_info=error)
        return {"action": SessionAction.FAILED, "error": f"{type(error).__name__}: {error}"}
    if outcome.email_id:
        email_ids.append(outcome.email_id)
    if outcome.outcome == ExpiredSessionOutcome.HAS_PAYMENTS:
        return {"action": SessionAction.SKIPPED, "reason": SKIP_REASON}
    if outcome.outcome == ExpiredSessionOutcome.ALREADY_HANDLED:
        return {"action": SessionAction.ALREADY_HANDLED}
    return {"action": SessionAction.CLOSED}


def _notify_expired(
    *, session: ExpiredSession, config: SystemConfiguration, email_ids: list[int]
) -> dict[str, Any]:
    """Tell the agent once, not every hour, that the session must be closed with a count."""
    if session.expiry_notified_at is not None:
        return {"agent_notified": False}
    try:
        notice = session_expiry_notify(
            session_id=session.pk,
            transaction_count=session.transaction_count,
            expected_balance=session.expected_balance,
            config=config,
        )
    except Exception as error:  # noqa: BLE001 - one bad session must not stop the others
        if item_failure_stops_the_run(error):
            raise
        logger.exception("Expiry notice for session %s failed", session.number)
        return {"action": SessionAction.FAILED, "error": f"{type(error).__name__}: {error}"}
    if notice is None:
        return {"agent_notified": False}
    if notice.email_id:
        email_ids.append(notice.email_id)
    return {"agent_notified": True}


OPERATION = Operation(
    name=NAME,
    parse=options_parse,
    run=close_expired_sessions,
    takes_lock=lambda options: not options.dry_run,
)
