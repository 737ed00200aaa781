import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from payments.models import (
    Agent,
    CashSession,
    CashTransaction,
    Commission,
    CommissionStatus,
    SessionStatus,
    SystemConfiguration,
    TransactionStatus,
)
from payments.money import DEFAULT_CURRENCY, commission_for


def configured_currency() -> str:
    """The currency the database checks amounts against (without creating the row)."""
    stored = SystemConfiguration.objects.filter(pk=1).values_list("currency_code", flat=True)
    return stored.first() or DEFAULT_CURRENCY


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("pw")


class StaffUserFactory(UserFactory):
    is_staff = True
    username = factory.Sequence(lambda n: f"staff{n}")


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent

    user = factory.SubFactory(UserFactory)
    code = factory.Sequence(lambda n: f"AG{n:04d}")
    full_name = factory.Faker("name")
    phone = factory.Sequence(lambda n: f"+261 34 00 {n:03d} 00")
    email = factory.LazyAttribute(lambda agent: f"{agent.code.lower()}@agents.example.com")
    location = "Antananarivo"
    commission_rate = None


class CashSessionFactory(factory.django.DjangoModelFactory):
    """An open session. ``closed=True``: closed and counted at the expected balance (pass
    ``counted_balance`` for a discrepancy). ``uncounted=True``: auto-closed, nobody counted.
    ``status=SessionStatus.RECONCILED`` with ``closed=True``: reconciled an hour after the
    close by a staff user. A closed session takes no payments (the database refuses them):
    create them on an open one, then close it (the services, or an UPDATE)."""

    class Meta:
        model = CashSession

    class Params:
        closed = factory.Trait(
            status=SessionStatus.CLOSED,
            closed_at=factory.LazyAttribute(lambda s: s.opened_at + dt.timedelta(hours=8)),
            expected_balance=factory.SelfAttribute("opening_balance"),
            counted_balance=factory.SelfAttribute("expected_balance"),
        )
        uncounted = factory.Trait(closed=True, auto_closed=True, counted_balance=None)

    number = factory.Sequence(lambda n: f"CS-TEST-{n:04d}")
    agent = factory.SubFactory(AgentFactory)
    status = SessionStatus.OPEN
    opened_at = factory.LazyFunction(timezone.now)
    opening_balance = Decimal("10000.00")
    closed_at = None
    expected_balance = None
    counted_balance = None
    discrepancy = factory.LazyAttribute(
        lambda s: None if s.counted_balance is None else s.counted_balance - s.expected_balance
    )
    reconciled_at = factory.LazyAttribute(
        lambda s: (
            s.closed_at + dt.timedelta(hours=1) if s.status == SessionStatus.RECONCILED else None
        )
    )
    reconciled_by = factory.Maybe(
        factory.LazyAttribute(lambda s: s.status == SessionStatus.RECONCILED),
        yes_declaration=factory.SubFactory("tests.factories.StaffUserFactory"),
        no_declaration=None,
    )


class CashTransactionFactory(factory.django.DjangoModelFactory):
    """A completed payment on an open session, with its pending commission."""

    class Meta:
        model = CashTransaction
        skip_postgeneration_save = True

    receipt_number = factory.Sequence(lambda n: f"RC-TEST-{n:06d}")
    session = factory.SubFactory(CashSessionFactory)
    agent = factory.SelfAttribute("session.agent")
    payer_reference = factory.Sequence(lambda n: f"NIF-{n:06d}")
    tax_amount = Decimal("5000.00")
    amount_tendered = factory.SelfAttribute("tax_amount")
    change_given = factory.LazyAttribute(lambda t: t.amount_tendered - t.tax_amount)
    status = TransactionStatus.COMPLETED
    created_at = factory.LazyFunction(timezone.now)
    recorded_by = factory.SelfAttribute("agent.user")
    voided_at = factory.LazyAttribute(
        lambda t: t.created_at if t.status == TransactionStatus.VOIDED else None
    )
    void_reason = factory.LazyAttribute(
        lambda t: "Wrong payer" if t.status == TransactionStatus.VOIDED else ""
    )
    commission = factory.RelatedFactory(
        "tests.factories.CommissionFactory", factory_related_name="cash_transaction"
    )


class CommissionFactory(factory.django.DjangoModelFactory):
    """A pending commission at 2.00 %, rounded for the configured currency; cancelled when
    its payment is voided. Traits: ``paid``, ``cancelled`` (its payment voided)."""

    class Meta:
        model = Commission

    class Params:
        paid = factory.Trait(
            status=CommissionStatus.PAID, paid_at=factory.LazyFunction(timezone.now)
        )
        cancelled = factory.Trait(
            status=CommissionStatus.CANCELLED,
            cash_transaction__status=TransactionStatus.VOIDED,
        )

    cash_transaction = factory.SubFactory(CashTransactionFactory, commission=None)
    agent = factory.SelfAttribute("cash_transaction.agent")
    session = factory.SelfAttribute("cash_transaction.session")
    base_amount = factory.SelfAttribute("cash_transaction.tax_amount")
    rate = Decimal("2.00")
    amount = factory.LazyAttribute(
        lambda c: commission_for(
            base_amount=c.base_amount, rate_percent=c.rate, currency=configured_currency()
        )
    )
    status = factory.LazyAttribute(
        lambda c: (
            CommissionStatus.CANCELLED
            if c.cash_transaction.status == TransactionStatus.VOIDED
            else CommissionStatus.PENDING
        )
    )
    created_at = factory.SelfAttribute("cash_transaction.created_at")
    cancelled_at = factory.LazyAttribute(
        lambda c: c.cash_transaction.voided_at if c.status == CommissionStatus.CANCELLED else None
    )


def money(value: str) -> Decimal:
    return Decimal(value)
