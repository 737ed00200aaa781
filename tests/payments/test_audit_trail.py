"""Every cash change lands together with exactly one audit entry, or not at all."""

from decimal import Decimal

import pytest

import payments.services
from auditing.models import AuditEntry
from auditing.verification import chain_verify
from payments.services import (
    commissions_mark_paid,
    session_close,
    session_open,
    session_reconcile,
    transaction_record,
    transaction_void,
)
from tests.factories import (
    AgentFactory,
    CashSessionFactory,
    CommissionFactory,
    StaffUserFactory,
)
from tests.payments.helpers import assert_audited, database_snapshot

pytestmark = pytest.mark.django_db


def _open_session(agent):
    return session_open(agent=agent, opening_balance=Decimal("1000.00"), actor=None)


def _record(session, actor=None):
    return transaction_record(
        session=session,
        payer_reference="NIF-1",
        tax_amount=Decimal("500.00"),
        amount_tendered=Decimal("500.00"),
        actor=actor,
    )


# Each case prepares its data (audit entries included), then returns the operation under
# test, a function of the actor returning the subject, and the action it must write.


def prepare_open():
    agent = AgentFactory()

    def operation(actor):
        return session_open(agent=agent, opening_balance=Decimal("0"), actor=actor)

    return operation, "session.opened"


def prepare_record():
    session = _open_session(AgentFactory())

    def operation(actor):
        return _record(session, actor=actor)

    return operation, "transaction.recorded"


def prepare_void():
    payment = _record(_open_session(AgentFactory()))

    def operation(actor):
        return transaction_void(cash_transaction=payment, actor=actor, reason="Wrong payer")

    return operation, "transaction.voided"


def prepare_close():
    session = _open_session(AgentFactory())

    def operation(actor):
        return session_close(session=session, counted_cash=Decimal("990.00"), actor=actor)

    return operation, "session.closed"


def prepare_reconcile():
    session = CashSessionFactory(uncounted=True)

    def operation(actor):
        return session_reconcile(session=session, actor=actor, counted_cash=Decimal("10000.00"))

    return operation, "session.reconciled"


def prepare_mark_paid():
    commission = CommissionFactory()

    def operation(actor):
        commissions_mark_paid(commissions=[commission], actor=actor)
        return commission

    return operation, "commission.paid"


CASES = [
    prepare_open,
    prepare_record,
    prepare_void,
    prepare_close,
    prepare_reconcile,
    prepare_mark_paid,
]


# A person reconciles a session: session_reconcile refuses to act for nobody.
SYSTEM_CASES = [prepare for prepare in CASES if prepare is not prepare_reconcile]


@pytest.mark.parametrize("prepare", SYSTEM_CASES, ids=lambda prepare: prepare.__name__[8:])
def test_a_service_acting_for_nobody_is_audited_as_the_system(prepare, audit_entries_written):
    operation, action = prepare()

    with audit_entries_written() as entries:
        subject = operation(None)

    [entry] = entries
    assert_audited(entry, action=action, actor=None, subject=subject)


def _audit_store_down(**kwargs):
    raise RuntimeError("audit store down")


@pytest.mark.parametrize("prepare", CASES, ids=lambda prepare: prepare.__name__[8:])
def test_a_change_whose_audit_entry_fails_is_rolled_back(prepare, monkeypatch):
    operation, _ = prepare()
    actor = StaffUserFactory()
    before = database_snapshot()
    monkeypatch.setattr(payments.services, "audit_entry_append", _audit_store_down)

    with pytest.raises(RuntimeError, match="audit store down"):
        operation(actor)

    assert database_snapshot() == before


def test_a_batch_whose_last_audit_entry_fails_pays_nothing(monkeypatch):
    commissions = CommissionFactory.create_batch(3)
    before = database_snapshot()
    real_append = payments.services.audit_entry_append
    calls = []

    def fail_on_third(**kwargs):
        calls.append(kwargs["action"])
        if len(calls) == 3:
            raise RuntimeError("audit store down")
        return real_append(**kwargs)

    monkeypatch.setattr(payments.services, "audit_entry_append", fail_on_third)

    with pytest.raises(RuntimeError, match="audit store down"):
        commissions_mark_paid(commissions=commissions, actor=None)

    assert calls == ["commission.paid"] * 3
    assert database_snapshot() == before


def test_a_full_session_day_leaves_one_entry_per_change_and_an_intact_chain():
    agent = AgentFactory()
    session = _open_session(agent)
    kept = _record(session)
    mistaken = _record(session)
    transaction_void(cash_transaction=mistaken, actor=agent.user, reason="Typed twice")
    session_close(session=session, counted_cash=Decimal("1500.00"), actor=agent.user)
    session_reconcile(session=session, actor=StaffUserFactory())
    commissions_mark_paid(commissions=[kept.commission], actor=None)

    assert list(AuditEntry.objects.order_by("sequence").values_list("action", flat=True)) == [
        "session.opened",
        "transaction.recorded",
        "transaction.recorded",
        "transaction.voided",
        "session.closed",
        "session.reconciled",
        "commission.paid",
    ]
    result = chain_verify()
    assert result.intact, result.violations
