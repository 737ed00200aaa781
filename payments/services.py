"""Writes to the cash domain. Each service is one database transaction that also appends
its audit entry, so a change never lands without its entry, nor an entry without its change.
"""

import datetime as dt
import enum
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone

from auditing.rows import AFTER
from auditing.services import AuditEntryDraft, audit_entries_append, audit_entry_append
from mailing.addresses import InvalidEmailAddress, email_address_validate
from mailing.models import EmailMessage
from mailing.rendering import subject_render, text_render
from mailing.services import email_draft, email_draft_queue, email_queue, emails_queue
from payments.audited import states_after
from payments.errors import PaymentsError
from payments.models import (
    Agent,
    CashSession,
    CashTransaction,
    Commission,
    CommissionStatus,
    DailyCounter,
    Notification,
    NotificationKind,
    ReconciliationReminder,
    ReminderKind,
    SessionReminder,
    SessionStatus,
    SystemConfiguration,
    TransactionStatus,
)
from payments.money import (
    DEFAULT_CURRENCY,
    DiscrepancyStanding,
    commission_for,
    discrepancy_standing,
    format_money,
    round_money,
)
from payments.selectors import (
    AgentBacklog,
    ExpiredSession,
    ReconciliationBacklog,
    completed_payments_total,
    expected_balance,
    reconciliation_backlog,
    sessions_reminded_on,
)

logger = logging.getLogger(__name__)

ZERO = Decimal("0.00")
# The MONEY columns hold 14 digits, 2 of them after the point.
AMOUNT_LIMIT = Decimal(10) ** 12


def _next_daily_number(*, scope: str, day: dt.date) -> int:
    counter, _ = DailyCounter.objects.get_or_create(scope=scope, day=day)
    # The UPDATE row lock serializes concurrent callers until commit.
    DailyCounter.objects.filter(pk=counter.pk).update(value=F("value") + 1)
    return DailyCounter.objects.values_list("value", flat=True).get(pk=counter.pk)


def _require_positive(amount: Decimal, *, what: str) -> None:
    if not isinstance(amount, Decimal):
        raise PaymentsError(f"The {what} must be a decimal amount, not {type(amount).__name__}.")
    if not amount.is_finite() or amount <= 0:
        raise PaymentsError(f"The {what} must be greater than zero (got {amount}).")


def _require_storable(amount: Decimal, *, what: str, currency: str) -> None:
    """Refuse an amount the row cannot hold exactly, so the row and its audit entry agree."""
    if abs(amount) >= AMOUNT_LIMIT:
        raise PaymentsError(f"The {what} is too large (got {amount}).")
    if round_money(amount, currency=currency) != amount:
        raise PaymentsError(f"The {what} has more decimals than {currency} allows (got {amount}).")


def _lock_session(session: CashSession) -> CashSession:
    return CashSession.objects.select_for_update().select_related("agent").get(pk=session.pk)


def session_expires_at(*, session: CashSession, config: SystemConfiguration) -> dt.datetime:
    return session.opened_at + dt.timedelta(hours=config.session_timeout_hours)


def session_expected_balance(*, session: CashSession) -> Decimal:
    """Opening float plus the completed (never the voided) payments, read now: the
    closing services call it with the session row locked."""
    collected = CashSession.objects.filter(pk=session.pk).aggregate(
        collected=completed_payments_total()
    )["collected"]
    return expected_balance(opening_balance=session.opening_balance, collected=collected)


def session_open(
    *, agent: Agent, opening_balance: Decimal, actor: AbstractBaseUser | None
) -> CashSession:
    if not isinstance(opening_balance, Decimal) or not opening_balance.is_finite():
        raise PaymentsError("The opening balance must be a decimal amount.")
    if opening_balance < 0:
        raise PaymentsError(f"The opening balance cannot be negative (got {opening_balance}).")
    config = SystemConfiguration.load()
    _require_storable(opening_balance, what="opening balance", currency=config.currency_code)
    with transaction.atomic():
        # Locking the agent makes a second concurrent open wait, then see the first one.
        agent = Agent.objects.select_for_update().get(pk=agent.pk)
        if not agent.is_active:
            raise PaymentsError(f"Agent {agent.code} is inactive and cannot open a session.")
        already_open = agent.sessions.filter(status=SessionStatus.OPEN).first()
        if already_open:
            raise PaymentsError(
                f"Agent {agent.code} already has an open session ({already_open.number}); "
                "close it before opening another."
            )
        now = timezone.now()
        day = timezone.localdate(now)
        number = f"CS-{day:%Y%m%d}-{_next_daily_number(scope='session', day=day):04d}"
        try:
            with transaction.atomic():
                session = CashSession.objects.create(
                    number=number,
                    agent=agent,
                    opened_at=now,
                    opening_balance=opening_balance,
                )
        except IntegrityError as exc:
            # The partial unique index is the last word when two opens race.
            raise PaymentsError(f"Agent {agent.code} already has an open session.") from exc
        audit_entry_append(
            action="session.opened",
            actor=actor,
            subject=session,
            data={
                "number": number,
                "agent": agent.code,
                "opening_balance": opening_balance,
                AFTER: states_after(session),
            },
        )
    logger.info("Session %s opened for agent %s", number, agent.code)
    return session


def transaction_record(
    *,
    session: CashSession,
    payer_reference: str,
    tax_amount: Decimal,
    amount_tendered: Decimal,
    actor: AbstractBaseUser | None,
) -> CashTransaction:
    _require_positive(tax_amount, what="tax amount")
    _require_positive(amount_tendered, what="amount tendered")
    if amount_tendered < tax_amount:
        raise PaymentsError(
            f"The amount tendered ({amount_tendered}) is less than the tax due ({tax_amount})."
        )
    if not payer_reference or not payer_reference.strip():
        raise PaymentsError("A payer reference is required.")
    config = SystemConfiguration.load()
    _require_storable(tax_amount, what="tax amount", currency=config.currency_code)
    _require_storable(amount_tendered, what="amount tendered", currency=config.currency_code)
    with transaction.atomic():
        session = _lock_session(session)
        if session.status != SessionStatus.OPEN:
            raise PaymentsError(
                f"Session {session.number} is {session.status}; "
                "payments can only be recorded on an open session."
            )
        now = timezone.now()
        expires_at = session_expires_at(session=session, config=config)
        if now >= expires_at:
            raise PaymentsError(
                f"Session {session.number} expired at "
                f"{timezone.localtime(expires_at):%Y-%m-%d %H:%M %Z}; close it with a cash "
                "count before recording more payments."
            )
        agent = session.agent
        rate = (
            agent.commission_rate
            if agent.commission_rate is not None
            else (config.default_commission_rate)
        )
        sequence = session.transactions.count() + 1
        cash_transaction = CashTransaction.objects.create(
            receipt_number=f"{session.number}-{sequence:04d}",
            session=session,
            agent=agent,
            payer_reference=payer_reference.strip(),
            tax_amount=tax_amount,
            amount_tendered=amount_tendered,
            change_given=amount_tendered - tax_amount,
            created_at=now,
            recorded_by=actor,
        )
        commission = Commission.objects.create(
            cash_transaction=cash_transaction,
            agent=agent,
            session=session,
            base_amount=tax_amount,
            rate=rate,
            amount=commission_for(
                base_amount=tax_amount, rate_percent=rate, currency=config.currency_code
            ),
            created_at=now,
        )
        audit_entry_append(
            action="transaction.recorded",
            actor=actor,
            subject=cash_transaction,
            data={
                "receipt_number": cash_transaction.receipt_number,
                "session": session.number,
                "agent": agent.code,
                "payer_reference": cash_transaction.payer_reference,
                "tax_amount": tax_amount,
                "amount_tendered": amount_tendered,
                "change_given": cash_transaction.change_given,
                "commission_rate": rate,
                "commission_amount": commission.amount,
                AFTER: states_after(cash_transaction, commission),
            },
        )
    return cash_transaction


def transaction_void(
    *, cash_transaction: CashTransaction, actor: AbstractBaseUser | None, reason: str
) -> CashTransaction:
    if not reason or not reason.strip():
        raise PaymentsError("Say why the payment is voided.")
    with transaction.atomic():
        session = _lock_session(cash_transaction.session)
        cash_transaction = CashTransaction.objects.select_for_update().get(pk=cash_transaction.pk)
        if cash_transaction.status == TransactionStatus.VOIDED:
            raise PaymentsError(f"Payment {cash_transaction.receipt_number} is already voided.")
        if session.status != SessionStatus.OPEN:
            raise PaymentsError(
                f"Payment {cash_transaction.receipt_number} belongs to session {session.number}, "
                "which is no longer open; it cannot be voided."
            )
        commission = Commission.objects.select_for_update().get(cash_transaction=cash_transaction)
        if commission.status == CommissionStatus.PAID:
            raise PaymentsError(
                f"The commission on payment {cash_transaction.receipt_number} is already paid; "
                "the payment cannot be voided."
            )
        now = timezone.now()
        cash_transaction.status = TransactionStatus.VOIDED
        cash_transaction.voided_at = now
        cash_transaction.voided_by = actor
        cash_transaction.void_reason = reason.strip()
        cash_transaction.save(update_fields=["status", "voided_at", "voided_by", "void_reason"])
        commission.status = CommissionStatus.CANCELLED
        commission.cancelled_at = now
        commission.save(update_fields=["status", "cancelled_at"])
        audit_entry_append(
            action="transaction.voided",
            actor=actor,
            subject=cash_transaction,
            data={
                "receipt_number": cash_transaction.receipt_number,
                "session": session.number,
                "tax_amount": cash_transaction.tax_amount,
                "reason": cash_transaction.void_reason,
                "commission_cancelled": commission.amount,
                AFTER: states_after(cash_transaction, commission),
            },
        )
    return cash_transaction


def _close_locked_session(
    *,
    session: CashSession,
    counted_cash: Decimal | None,
    actor: AbstractBaseUser | None,
    notes: str,
    auto_closed: bool,
    audit_data: dict | None = None,
    expected: Decimal | None = None,
    entries: list[AuditEntryDraft] | None = None,
) -> CashSession:
    """``expected`` and ``entries``: for a batch (``sessions_close_expired``), which reads
    the expected cash of all its sessions at once and writes the rows and their entries
    itself, set-wise: the session's fields are set, not saved, and its entry is added to
    ``entries``."""
    if expected is None:
        expected = session_expected_balance(session=session)
    session.status = SessionStatus.CLOSED
    session.closed_at = timezone.now()
    session.closed_by = actor
    session.auto_closed = auto_closed
    session.expected_balance = expected
    session.counted_balance = counted_cash
    session.discrepancy = None if counted_cash is None else counted_cash - expected
    session.closing_notes = notes
    if entries is None:
        session.save()
    entry = AuditEntryDraft(
        action="session.auto_closed" if auto_closed else "session.closed",
        actor=actor,
        subject=session,
        data={
            "number": session.number,
            "agent": session.agent.code,
            "expected_balance": expected,
            "counted_balance": counted_cash,
            "discrepancy": session.discrepancy,
            "notes": notes,
            **(audit_data or {}),
            AFTER: states_after(session),
        },
    )
    if entries is None:
        audit_entry_append(
            action=entry.action, actor=entry.actor, subject=entry.subject, data=entry.data
        )
    else:
        entries.append(entry)
    return session


def session_close(
    *,
    session: CashSession,
    counted_cash: Decimal,
    actor: AbstractBaseUser | None,
    notes: str = "",
) -> CashSession:
    """Close a session with the cash someone counted."""
    if not isinstance(counted_cash, Decimal) or not counted_cash.is_finite():
        raise PaymentsError("The counted cash must be a decimal amount.")
    if counted_cash < 0:
        raise PaymentsError(f"The counted cash cannot be negative (got {counted_cash}).")
    config = SystemConfiguration.load()
    _require_storable(counted_cash, what="counted cash", currency=config.currency_code)
    with transaction.atomic():
        session = _lock_session(session)
        if session.status != SessionStatus.OPEN:
            raise PaymentsError(f"Session {session.number} is already {session.status}.")
        return _close_locked_session(
            session=session,
            counted_cash=counted_cash,
            actor=actor,
            notes=notes.strip(),
            auto_closed=False,
        )


def session_reconcile(
    *,
    session: CashSession,
    actor: AbstractBaseUser | None,
    notes: str = "",
    counted_cash: Decimal | None = None,
) -> CashSession:
    """Reconcile a closed session. A session nobody counted needs the count now."""
    if actor is None:
        raise PaymentsError(
            f"A session is reconciled by a person: say who reconciles session {session.number}."
        )
    config = SystemConfiguration.load()
    if counted_cash is not None:
        if (
            not isinstance(counted_cash, Decimal)
            or not counted_cash.is_finite()
            or counted_cash < 0
        ):
            raise PaymentsError("The counted cash must be a non-negative decimal amount.")
        _require_storable(counted_cash, what="counted cash", currency=config.currency_code)
    with transaction.atomic():
        session = _lock_session(session)
        if session.status == SessionStatus.OPEN:
            raise PaymentsError(
                f"Session {session.number} is still open; close it before reconciling."
            )
        if session.status == SessionStatus.RECONCILED:
            raise PaymentsError(f"Session {session.number} is already reconciled.")
        counted_now = False
        if session.counted_balance is None:
            if counted_cash is None:
                raise PaymentsError(
                    f"Session {session.number} was closed without a cash count; "
                    "enter the counted cash to reconcile it."
                )
            session.counted_balance = counted_cash
            session.discrepancy = counted_cash - session.expected_balance
            counted_now = True
        elif counted_cash is not None and counted_cash != session.counted_balance:
            raise PaymentsError(
                f"Session {session.number} was already counted at {session.counted_balance}."
            )
        notes = notes.strip()
        standing = discrepancy_standing(
            session.discrepancy, tolerance=config.reconciliation_tolerance
        )
        if standing is not DiscrepancyStanding.WITHIN and not notes:
            raise PaymentsError(
                f"Session {session.number} has a discrepancy of "
                f"{format_money(session.discrepancy, currency=config.currency_code)}, beyond the "
                f"tolerance of "
                f"{format_money(config.reconciliation_tolerance, currency=config.currency_code)}; "
                "explain it in the notes."
            )
        session.status = SessionStatus.RECONCILED
        session.reconciled_at = timezone.now()
        session.reconciled_by = actor
        session.reconciliation_notes = notes
        session.save()
        audit_entry_append(
            action="session.reconciled",
            actor=actor,
            subject=session,
            data={
                "number": session.number,
                "expected_balance": session.expected_balance,
                "counted_balance": session.counted_balance,
                "counted_at_reconciliation": counted_now,
                "discrepancy": session.discrepancy,
                "notes": notes,
                AFTER: states_after(session),
            },
        )
    return session


def commissions_mark_paid(
    *, commissions: Iterable[Commission], actor: AbstractBaseUser | None
) -> int:
    """Mark pending commissions paid. Already-paid ones are left alone, so a retry is
    harmless; a cancelled one refuses the whole batch. Returns how many became paid."""
    ids = sorted({commission.pk for commission in commissions})
    if not ids:
        return 0
    with transaction.atomic():
        locked = list(
            Commission.objects.select_for_update()
            .filter(pk__in=ids)
            .select_related("cash_transaction", "agent")
            .order_by("pk")
        )
        cancelled = [
            c.cash_transaction.receipt_number
            for c in locked
            if c.status == CommissionStatus.CANCELLED
        ]
        if cancelled:
            raise PaymentsError(
                "Cancelled commissions cannot be paid: " + ", ".join(cancelled) + "."
            )
        now = timezone.now()
        paid = 0
        for commission in locked:
            if commission.status == CommissionStatus.PAID:
                continue
            commission.status = CommissionStatus.PAID
            commission.paid_at = now
            commission.paid_by = actor
            commission.save(update_fields=["status", "paid_at", "paid_by"])
            audit_entry_append(
                action="commission.paid",
                actor=actor,
                subject=commission,
                data={
                    "receipt_number": commission.cash_transaction.receipt_number,
                    "agent": commission.agent.code,
                    "amount": commission.amount,
                    AFTER: states_after(commission),
                },
            )
            paid += 1
    return paid


def session_close_automatically(
    *,
    session: CashSession,
    notes: str,
    audit_data: dict | None = None,
    expected: Decimal | None = None,
    entries: list[AuditEntryDraft] | None = None,
) -> CashSession:
    """Close an expired session for the system, leaving the count empty: nobody counted
    the cash, and copying the expected amount into the count would hide missing cash.

    ``session`` must already be locked by the caller (select_for_update). A session that
    is no longer open is returned unchanged, so a retried run is harmless. ``expected``
    and ``entries``: see ``_close_locked_session``.
    """
    if session.status != SessionStatus.OPEN:
        return session
    return _close_locked_session(
        session=session,
        counted_cash=None,
        actor=None,
        notes=notes,
        auto_closed=True,
        audit_data=audit_data,
        expected=expected,
        entries=entries,
    )


# Agents' notifications ---------------------------------------------------------------


@dataclass(frozen=True)
class AgentNotice:
    """An in-app notification left for an agent, and the id of the email that repeats it
    (None when the agent has no usable address)."""

    notification: Notification
    email_id: int | None


def agent_notification_send(
    *,
    agent: Agent,
    kind: NotificationKind,
    template: str,
    context: Mapping[str, Any],
    session: CashSession | None = None,
) -> AgentNotice:
    """Leave an in-app notification, and email it too when the agent has an address.

    Every text comes from ``template``, rendered in the email language:
    ``<template>.subject.txt`` (the notification's title and the email's subject),
    ``<template>.message.txt`` (the in-app message), ``<template>.txt`` and ``.html``.
    Call inside the transaction of the change it reports: both commit with it, and the
    email goes out only after the commit.
    """
    draft = agent_notice_draft(
        agent=agent, kind=kind, template=template, context=context, session=session
    )
    draft.notification.save(force_insert=True)
    if draft.email is None:
        return AgentNotice(notification=draft.notification, email_id=None)
    email = email_draft_queue(email=draft.email)
    return AgentNotice(notification=draft.notification, email_id=email.pk)


@dataclass(frozen=True)
class AgentNoticeDraft:
    """What ``agent_notification_send`` stores, rendered but not saved yet."""

    notification: Notification
    email: EmailMessage | None


def agent_notice_draft(
    *,
    agent: Agent,
    kind: NotificationKind,
    template: str,
    context: Mapping[str, Any],
    session: CashSession | None = None,
) -> AgentNoticeDraft:
    """Render what ``agent_notification_send`` stores, for a batch that stores many
    notices in a few statements."""
    context = {"agent": agent, "session": session, "time_zone": settings.TIME_ZONE, **context}
    notification = Notification(
        agent=agent,
        kind=kind,
        session=session,
        title=subject_render(template=template, context=context),
        message=text_render(template=f"{template}.message.txt", context=context).strip(),
    )
    try:
        address = email_address_validate(agent.email) if agent.email else None
    except InvalidEmailAddress as error:
        # A bad stored address must not block the change it reports: in-app only.
        logger.warning(
            "Agent %s has an unusable email address (%s); in-app only", agent.code, error
        )
        address = None
    if not address:
        return AgentNoticeDraft(notification=notification, email=None)
    email = email_draft(
        purpose=str(kind),
        recipients=[address],
        template=template,
        context=context,
        about=session.number if session else agent.code,
        subject_object=session or agent,
    )
    return AgentNoticeDraft(notification=notification, email=email)


# Expired sessions (close_expired_sessions) -------------------------------------------

TENTH = Decimal("0.1")
SESSION_AUTO_CLOSED_NOTES = "payments/records/session_auto_closed.notes.txt"


class ExpiredSessionOutcome(enum.StrEnum):
    CLOSED = "closed"
    # Closed meanwhile, or held by a concurrent run that has it in hand.
    ALREADY_HANDLED = "already_handled"
    # A payment committed since the selection: the session needs a cash count.
    HAS_PAYMENTS = "has_payments"


@dataclass(frozen=True)
class ExpiredSessionClosure:
    outcome: ExpiredSessionOutcome
    email_id: int | None = None


@dataclass(frozen=True)
class ExpiredSessionFailure:
    """A session of the batch that could not be closed, with the error that stopped it:
    left out of the batch's writes, or rolled back alone under its savepoint."""

    error: Exception


# What closing changes on a session row (``_close_locked_session``).
CLOSING_FIELDS = (
    "status",
    "closed_at",
    "closed_by",
    "auto_closed",
    "expected_balance",
    "counted_balance",
    "discrepancy",
    "closing_notes",
)


def sessions_close_expired(
    *,
    sessions: Sequence[ExpiredSession],
    run_at: dt.datetime,
    trigger: str,
    force: bool,
    config: SystemConfiguration,
    savepoints: bool = False,
    stops_the_batch: Callable[[Exception], bool] = lambda error: False,
) -> dict[int, ExpiredSessionClosure | ExpiredSessionFailure]:
    """Close sessions left open past the timeout, for the system, with the cash not
    counted; note why on each, audit it and tell its agent, in one transaction. The
    reads and writes are set-wise: the audit entries hold the chain lock once, until the
    commit. A session whose closing fails before the writes (its notes, its notice) is
    left out and returned as a failure; the others commit.

    A write the database refuses fails the whole batch: call again with ``savepoints``,
    which saves each session under a savepoint, so that only the session at fault fails.

    ``sessions`` as the run selected them (``transaction_count`` is noted). Without
    ``force`` a session with payments is left for its agent to count. A failure that
    ``stops_the_batch`` ends it there: the sessions closed before it commit, then it is
    raised. The result maps each session's pk to its outcome.
    """
    outcomes: dict[int, ExpiredSessionClosure | ExpiredSessionFailure] = {}
    stopped_by: Exception | None = None
    with transaction.atomic():
        # skip_locked: a concurrent run (or a payment) holding a session has it in hand.
        locked = {
            session.pk: session
            for session in CashSession.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("agent")
            .filter(pk__in=[selected.pk for selected in sessions], status=SessionStatus.OPEN)
            .order_by("pk")
        }
        collected = dict(
            CashSession.objects.filter(pk__in=list(locked))
            .values("pk")
            .annotate(collected=completed_payments_total())
            .values_list("pk", "collected")
        )
        with_payments = (
            set()
            if force
            else set(
                CashTransaction.objects.filter(session_id__in=list(locked))
                .values_list("session_id", flat=True)
                .distinct()
            )
        )
        closing: list[tuple[CashSession, list[AuditEntryDraft], AgentNoticeDraft]] = []
        for selected in sessions:
            session = locked.get(selected.pk)
            if session is None:
                outcomes[selected.pk] = ExpiredSessionClosure(ExpiredSessionOutcome.ALREADY_HANDLED)
                continue
            if session.pk in with_payments:
                outcomes[selected.pk] = ExpiredSessionClosure(ExpiredSessionOutcome.HAS_PAYMENTS)
                continue
            entries: list[AuditEntryDraft] = []
            try:
                notice = _expired_session_close(
                    session=session,
                    selected=selected,
                    expected=expected_balance(
                        opening_balance=session.opening_balance,
                        collected=collected.get(session.pk),
                    ),
                    entries=entries,
                    run_at=run_at,
                    trigger=trigger,
                    force=force,
                    config=config,
                )
                if savepoints:
                    with transaction.atomic():
                        session.save(update_fields=CLOSING_FIELDS)
            except Exception as error:  # noqa: BLE001 - one bad session must not stop the others
                outcomes[selected.pk] = ExpiredSessionFailure(error)
                if stops_the_batch(error):
                    stopped_by = error
                    break
                continue
            closing.append((session, entries, notice))
        if not savepoints:
            _sessions_closing_save([session for session, _, _ in closing])
        audit_entries_append(drafts=[entry for _, entries, _ in closing for entry in entries])
        Notification.objects.bulk_create([notice.notification for _, _, notice in closing])
        emails_queue(emails=[notice.email for _, _, notice in closing if notice.email])
        for session, _, notice in closing:
            outcomes[session.pk] = ExpiredSessionClosure(
                ExpiredSessionOutcome.CLOSED, email_id=notice.email.pk if notice.email else None
            )
    if stopped_by is not None:
        raise stopped_by
    return outcomes


def _sessions_closing_save(sessions: Sequence[CashSession]) -> None:
    """Save the closing fields of ``sessions`` in one UPDATE from one array per column:
    bulk_update's CASE per row and field cost more time than the rest of a closure."""
    if not sessions:
        return
    fields = [CashSession._meta.get_field(name) for name in CLOSING_FIELDS]
    quote = connection.ops.quote_name
    assignments = ", ".join(
        f"{quote(field.column)} = new.{quote(field.column)}" for field in fields
    )
    arrays = ", ".join(
        f"unnest(%s::{field.db_type(connection)}[]) AS {quote(field.column)}" for field in fields
    )
    values = [
        [
            field.get_db_prep_save(getattr(session, field.attname), connection)
            for session in sessions
        ]
        for field in fields
    ]
    table = quote(CashSession._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            # Names from the model, values as parameters.
            f"UPDATE {table} AS row SET {assignments} "  # noqa: S608
            f"FROM (SELECT unnest(%s::bigint[]) AS id, {arrays}) AS new WHERE row.id = new.id",
            [[session.pk for session in sessions], *values],
        )


def _expired_session_close(
    *,
    session: CashSession,
    selected: ExpiredSession,
    expected: Decimal,
    entries: list[AuditEntryDraft],
    run_at: dt.datetime,
    trigger: str,
    force: bool,
    config: SystemConfiguration,
) -> AgentNoticeDraft:
    """One session of ``sessions_close_expired``, locked: closed, its entry added to
    ``entries``, its agent's notice drafted."""
    forced = force and bool(selected.transaction_count)
    hours_open = (run_at - session.opened_at).total_seconds() / 3600
    notes = render_to_string(
        SESSION_AUTO_CLOSED_NOTES,
        {
            "trigger": trigger,
            "ran_at": run_at,
            # As the notes always said it: rounded half-even, like f"{hours:.1f}".
            "hours_open": Decimal(hours_open).quantize(TENTH, rounding=ROUND_HALF_EVEN),
            "timeout_hours": config.session_timeout_hours,
            "forced": forced,
        },
    ).strip()
    closed = session_close_automatically(
        session=session,
        notes=notes,
        audit_data={
            "trigger": trigger,
            "timeout_hours": config.session_timeout_hours,
            "forced": forced,
            "transactions": selected.transaction_count,
        },
        expected=expected,
        entries=entries,
    )
    return agent_notice_draft(
        agent=closed.agent,
        kind=NotificationKind.SESSION_AUTO_CLOSED,
        session=closed,
        template="payments/email/session_auto_closed",
        context={
            "opened_at": closed.opened_at,
            "closed_at": closed.closed_at,
            # As the in-app message always said it: cut to one decimal, not rounded.
            "hours_open": Decimal(repr(hours_open)).quantize(TENTH, rounding=ROUND_DOWN),
            "timeout_hours": config.session_timeout_hours,
            "forced": forced,
            "transaction_count": selected.transaction_count,
            "expected": closed.expected_balance,
            "currency": config.currency_code,
        },
    )


def session_expiry_notify(
    *,
    session_id: int,
    transaction_count: int,
    expected_balance: Decimal,
    config: SystemConfiguration,
) -> AgentNotice | None:
    """Tell the agent once, not every hour, that an expired session with payments must be
    counted and closed. None when the agent was already told, or the session is no longer
    open or is in another run's hands."""
    with transaction.atomic():
        locked = (
            CashSession.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("agent")
            .filter(pk=session_id, status=SessionStatus.OPEN, expiry_notified_at__isnull=True)
            .first()
        )
        if locked is None:
            return None
        locked.expiry_notified_at = timezone.now()
        locked.save(update_fields=["expiry_notified_at"])
        audit_entry_append(
            action="session.expiry_notified",
            actor=None,
            subject=locked,
            data={
                "number": locked.number,
                "agent": locked.agent.code,
                "transactions": transaction_count,
            },
        )
        return agent_notification_send(
            agent=locked.agent,
            kind=NotificationKind.SESSION_EXPIRED,
            session=locked,
            template="payments/email/session_expired",
            context={
                "opened_at": locked.opened_at,
                "expires_at": session_expires_at(session=locked, config=config),
                "timeout_hours": config.session_timeout_hours,
                "transaction_count": transaction_count,
                "expected": expected_balance,
                "currency": config.currency_code,
            },
        )


# Reconciliation reminders (reconciliation_reminder) ----------------------------------
# A session is reminded at most once per local day (its SessionReminder row, unique per
# session and day), the administrators' summary once per day; each is written in the
# same transaction as its notification (or email) and its audit entry, so a retried or
# concurrent run sends nothing twice, and a session closed after a run is reminded by
# the next one.


@dataclass(frozen=True)
class AgentReminderSent:
    """What one agent was reminded of: the sessions (read under their row locks, with
    their totals) and the notice that told them."""

    reminded: AgentBacklog
    notice: AgentNotice


def reconciliation_reminder_send(
    *,
    agent_id: int,
    session_ids: Sequence[int],
    since: dt.datetime,
    day: dt.date,
    currency: str,
    trigger: str,
) -> AgentReminderSent | None:
    """Remind one agent of those of ``session_ids`` that are still closed, still theirs
    and not yet reminded on ``day``: the reminder row and one row per session, its audit
    entry and the notification (and email) in one transaction. None when there is nothing
    left to remind them of.

    The session rows are locked first (in id order, so two runs cannot deadlock): a
    concurrent run that reminded them waits its turn and then finds them reminded, and a
    session reconciled meanwhile is left out. The unique constraint stays the last word.
    """
    with transaction.atomic():
        locked = list(
            CashSession.objects.select_for_update(of=("self",))
            .filter(pk__in=list(session_ids), agent_id=agent_id, status=SessionStatus.CLOSED)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        already = sessions_reminded_on(day=day, session_ids=locked)
        due = [pk for pk in locked if pk not in already]
        if not due:
            return None
        [reminded] = reconciliation_backlog(since=since, day=day, session_ids=due).agents
        numbers = [row.number for row in reminded.sessions]
        agent = Agent.objects.get(pk=agent_id)
        try:
            with transaction.atomic():
                reminder = ReconciliationReminder.objects.create(
                    kind=ReminderKind.AGENT, agent=agent, day=day, session_numbers=numbers
                )
                SessionReminder.objects.bulk_create(
                    SessionReminder(reminder=reminder, session_id=row.pk, day=day)
                    for row in reminded.sessions
                )
        except IntegrityError:
            # Only a writer that skipped the row locks could get here first.
            return None
        audit_entry_append(
            action="reconciliation.reminded",
            actor=None,
            subject=reminder,
            data={
                "kind": ReminderKind.AGENT,
                "agent": agent.code,
                "day": day,
                "sessions": numbers,
                "trigger": trigger,
            },
        )
        notice = agent_notification_send(
            agent=agent,
            kind=NotificationKind.RECONCILIATION_REMINDER,
            template="payments/email/reconciliation_reminder",
            context={"group": reminded, "day": day, "currency": currency},
        )
    return AgentReminderSent(reminded=reminded, notice=notice)


def _admin_summary_record(
    *, day: dt.date, session_numbers: list[str]
) -> ReconciliationReminder | None:
    """The day's summary row, or None when a concurrent run recorded it first: the unique
    constraint is the last word, and the savepoint keeps the caller's transaction usable."""
    try:
        with transaction.atomic():
            return ReconciliationReminder.objects.create(
                kind=ReminderKind.ADMIN_SUMMARY,
                agent=None,
                day=day,
                session_numbers=session_numbers,
            )
    except IntegrityError:
        return None


def reconciliation_summary_send(
    *,
    backlog: ReconciliationBacklog,
    day: dt.date,
    days: int,
    recipients: list[str],
    currency: str,
    trigger: str,
) -> EmailMessage | None:
    """Email the administrators the day's summary of every session waiting for
    reconciliation, new (closed in the last ``days`` days) and older: its reminder row,
    audit entry and email in one transaction. None when it was already sent that day."""
    numbers = backlog.session_numbers
    with transaction.atomic():
        reminder = _admin_summary_record(day=day, session_numbers=numbers)
        if reminder is None:
            return None
        audit_entry_append(
            action="reconciliation.reminded",
            actor=None,
            subject=reminder,
            data={
                "kind": ReminderKind.ADMIN_SUMMARY,
                "agent": None,
                "day": day,
                "sessions": numbers,
                "recipients": recipients,
                "trigger": trigger,
            },
        )
        return email_queue(
            purpose="reconciliation_summary",
            recipients=recipients,
            template="payments/email/reconciliation_summary",
            context={
                "day": day,
                "days": days,
                "since": backlog.since,
                "stats": backlog,
                "new": backlog.new,
                "older": backlog.older,
                "groups": backlog.agents,
                "currency": currency,
                "time_zone": timezone.get_default_timezone_name(),
            },
            about=f"reconciliation {day:%Y-%m-%d}",
            subject_object=reminder,
        )


def configuration_update(
    *,
    config: SystemConfiguration,
    changes: dict[str, Any],
    actor: AbstractBaseUser,
) -> SystemConfiguration:
    """Save an administrator's edit of the configuration with the changed values audited.
    Saved as it was: nothing to audit."""
    with transaction.atomic():
        stored = SystemConfiguration.objects.filter(pk=config.pk).values("currency_code").first()
        currency_before = stored["currency_code"] if stored else DEFAULT_CURRENCY
        if config.currency_code != currency_before and CashSession.objects.exists():
            # The database refuses it too: a trigger, so it holds for any writer.
            raise PaymentsError(
                f"The currency cannot change from {currency_before} to {config.currency_code}: "
                "sessions exist, and their amounts are stored without a currency."
            )
        config.save()
        if changes:
            audit_entry_append(
                action="configuration.changed", actor=actor, subject=config, data=changes
            )
    return config


def agent_save(
    *, agent: Agent, changes: dict[str, Any], created: bool, actor: AbstractBaseUser
) -> Agent:
    """Create or edit an agent from the admin, with the changed fields audited. Agents are
    deactivated, never deleted: a delete would leave no audit entry."""
    with transaction.atomic():
        agent.save()
        if created or changes:
            audit_entry_append(
                action="agent.created" if created else "agent.changed",
                actor=actor,
                subject=agent,
                data={name: str(value) for name, value in changes.items()},
            )
    return agent
