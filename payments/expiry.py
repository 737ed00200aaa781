"""Closing sessions left open past the configured timeout (close_expired_sessions)."""

import datetime as dt
import logging
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.functional import lazy
from django.utils.text import format_lazy
from django.utils.translation import gettext, gettext_lazy, ngettext

from auditing.services import audit_entry_append
from mailing.selectors import email_outcomes
from payments.models import (
    CashSession,
    NotificationKind,
    SessionStatus,
    SystemConfiguration,
    TransactionStatus,
)
from payments.money import format_money_lazy
from payments.notifications import agent_notify
from payments.services import session_close_automatically

logger = logging.getLogger(__name__)

SKIP_REASON = "has transactions; use --force"


def expired_sessions_select(*, now: dt.datetime, config: SystemConfiguration):
    """Every open session past the timeout, not only the last hour's: missed runs heal."""
    cutoff = now - dt.timedelta(hours=config.session_timeout_hours)
    return (
        CashSession.objects.filter(status=SessionStatus.OPEN, opened_at__lte=cutoff)
        .select_related("agent")
        .annotate(
            transaction_count=Count("transactions"),
            collected=Sum(
                "transactions__tax_amount",
                filter=Q(transactions__status=TransactionStatus.COMPLETED),
            ),
        )
        .order_by("opened_at", "pk")
    )


def expired_sessions_close(*, dry_run: bool, force: bool, trigger: str) -> dict[str, Any]:
    config = SystemConfiguration.load()
    now = timezone.now()
    rows: list[dict[str, Any]] = []
    email_ids: list[int] = []
    for session in expired_sessions_select(now=now, config=config):
        expected = session.opening_balance + (session.collected or Decimal("0.00"))
        row: dict[str, Any] = {
            "session": session.number,
            "agent": session.agent.code,
            "agent_name": session.agent.full_name,
            "opened_at": timezone.localtime(session.opened_at).isoformat(),
            "transactions": session.transaction_count,
            "expected_balance": str(expected),
        }
        rows.append(row)
        if session.transaction_count and not force:
            row.update(action="skipped", reason=SKIP_REASON)
            if not dry_run:
                try:
                    row["agent_notified"] = _notify_expired_once(
                        session=session, config=config, expected=expected, email_ids=email_ids
                    )
                except Exception as error:  # noqa: BLE001 - one bad session must not stop the others
                    logger.exception("Expiry notice for session %s failed", session.number)
                    row.update(action="failed", error=f"{type(error).__name__}: {error}")
            continue
        if dry_run:
            row["action"] = "would_close"
            continue
        try:
            row["action"] = _close_one(
                session=session,
                config=config,
                now=now,
                trigger=trigger,
                force=force,
                expected=expected,
                email_ids=email_ids,
            )
            if row["action"] == "skipped":
                row["reason"] = SKIP_REASON
        except Exception as error:  # noqa: BLE001 - one bad session must not stop the others
            logger.exception("Auto-close of session %s failed", session.number)
            row.update(action="failed", error=f"{type(error).__name__}: {error}")

    counts = {
        action: sum(1 for row in rows if row["action"] == action)
        for action in ("closed", "would_close", "skipped", "failed", "already_handled")
    }
    failed = counts["failed"]
    summary = {
        "operation": "close_expired_sessions",
        "trigger": trigger,
        "status": "failed" if failed else "ok",
        "dry_run": dry_run,
        "force": force,
        "timeout_hours": config.session_timeout_hours,
        "currency": config.currency_code,
        "ran_at": timezone.localtime(now).isoformat(),
        "closed": counts["closed"],
        "would_close": counts["would_close"],
        "skipped": counts["skipped"],
        "already_handled": counts["already_handled"],
        "failed": failed,
        "sessions": rows,
        "emails": asdict(email_outcomes(email_ids)),
    }
    if failed:
        summary["message"] = f"{failed} session(s) could not be closed; see the output."
    logger.info(
        "close_expired_sessions (%s%s): closed %s, skipped %s, failed %s",
        trigger,
        ", dry run" if dry_run else "",
        counts["closed"],
        counts["skipped"],
        failed,
    )
    return summary


def _close_one(
    *,
    session: CashSession,
    config: SystemConfiguration,
    now: dt.datetime,
    trigger: str,
    force: bool,
    expected: Decimal,
    email_ids: list[int],
) -> str:
    with transaction.atomic():
        # skip_locked: a concurrent run holding this session has it in hand.
        locked = (
            CashSession.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("agent")
            .filter(pk=session.pk, status=SessionStatus.OPEN)
            .first()
        )
        if locked is None:
            return "already_handled"
        if not force and locked.transactions.exists():
            # A payment committed between the selection and the lock: it needs a count.
            return "skipped"
        local_now = timezone.localtime(now)
        hours_open = (now - locked.opened_at).total_seconds() / 3600
        notes = (
            f"Closed automatically by close_expired_sessions ({trigger} run) at "
            f"{local_now:%Y-%m-%d %H:%M %Z}: open {hours_open:.1f} h, past the "
            f"{config.session_timeout_hours} h timeout."
            + (
                " Forced although payments were recorded."
                if force and session.transaction_count
                else ""
            )
            + " Cash not counted."
        )
        closed = session_close_automatically(
            session=locked,
            notes=notes,
            audit_data={
                "trigger": trigger,
                "timeout_hours": config.session_timeout_hours,
                "forced": force and bool(session.transaction_count),
                "transactions": session.transaction_count,
            },
        )
        _, email_id = agent_notify(
            agent=closed.agent,
            kind=NotificationKind.SESSION_AUTO_CLOSED,
            session=closed,
            title=format_lazy(
                gettext_lazy("Session {number} closed automatically on {day}"),
                number=closed.number,
                day=timezone.localdate(closed.closed_at).isoformat(),
            ),
            message=_auto_closed_message_lazy(
                closed_at=closed.closed_at,
                hours_open=hours_open,
                timeout_hours=config.session_timeout_hours,
                forced=force and bool(session.transaction_count),
            ),
            template="payments/email/session_auto_closed",
            context={
                "opened_at": closed.opened_at,
                "closed_at": closed.closed_at,
                "timeout_hours": config.session_timeout_hours,
                "transaction_count": session.transaction_count,
                "expected": format_money_lazy(
                    closed.expected_balance, currency=config.currency_code
                ),
            },
        )
    if email_id:
        email_ids.append(email_id)
    return "closed"


def _notify_expired_once(
    *,
    session: CashSession,
    config: SystemConfiguration,
    expected: Decimal,
    email_ids: list[int],
) -> bool:
    """Tell the agent once, not every hour, that the session must be closed with a count."""
    if session.expiry_notified_at is not None:
        return False
    with transaction.atomic():
        locked = (
            CashSession.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("agent")
            .filter(pk=session.pk, status=SessionStatus.OPEN, expiry_notified_at__isnull=True)
            .first()
        )
        if locked is None:
            return False
        locked.expiry_notified_at = timezone.now()
        locked.save(update_fields=["expiry_notified_at"])
        audit_entry_append(
            action="session.expiry_notified",
            actor=None,
            subject=locked,
            data={
                "number": locked.number,
                "agent": locked.agent.code,
                "transactions": session.transaction_count,
            },
        )
        _, email_id = agent_notify(
            agent=locked.agent,
            kind=NotificationKind.SESSION_EXPIRED,
            session=locked,
            title=format_lazy(
                gettext_lazy("Session {number} expired on {day}: count and close it"),
                number=locked.number,
                day=timezone.localdate(
                    locked.opened_at + dt.timedelta(hours=config.session_timeout_hours)
                ).isoformat(),
            ),
            message=_expired_message_lazy(
                number=locked.number,
                timeout_hours=config.session_timeout_hours,
                transaction_count=session.transaction_count,
            ),
            template="payments/email/session_expired",
            context={
                "opened_at": locked.opened_at,
                "timeout_hours": config.session_timeout_hours,
                "transaction_count": session.transaction_count,
                "expected": format_money_lazy(expected, currency=config.currency_code),
            },
        )
    if email_id:
        email_ids.append(email_id)
    return True


# The in-app texts, translated when agent_notify stores them (in the email language); the
# session's closing notes stay in English, like the rest of the stored record.
def _auto_closed_message(
    *, closed_at: dt.datetime, hours_open: float, timeout_hours: int, forced: bool
) -> str:
    text = gettext(
        "Closed automatically on %(closed_at)s (%(time_zone)s): open %(hours_open)s h, "
        "past the %(timeout_hours)s h limit."
    ) % {
        "closed_at": f"{timezone.localtime(closed_at):%Y-%m-%d %H:%M}",
        "time_zone": settings.TIME_ZONE,
        "hours_open": number_format(hours_open, 1),
        "timeout_hours": timeout_hours,
    }
    if forced:
        text += " " + gettext("Forced although payments were recorded.")
    return text + " " + gettext("Cash not counted: bring it to your administrator.")


def _expired_message(*, number: str, timeout_hours: int, transaction_count: int) -> str:
    return ngettext(
        "Session %(number)s passed the %(timeout_hours)s h limit with %(count)s payment "
        "recorded. Count the cash and close it.",
        "Session %(number)s passed the %(timeout_hours)s h limit with %(count)s payments "
        "recorded. Count the cash and close it.",
        transaction_count,
    ) % {"number": number, "timeout_hours": timeout_hours, "count": transaction_count}


_auto_closed_message_lazy = lazy(_auto_closed_message, str)
_expired_message_lazy = lazy(_expired_message, str)
