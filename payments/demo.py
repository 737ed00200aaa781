"""A realistic month of activity for the demo, made through the real services.

Services stamp records with the current time, so the seed travels through the past with
time-machine (a dev dependency, installed by `make demo`). The audit chain it leaves is
genuine and verifies.
"""

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from payments.models import Agent, CashSession, CommissionStatus, SystemConfiguration
from payments.services import (
    commissions_mark_paid,
    session_close,
    session_expected_balance,
    session_open,
    session_reconcile,
    transaction_record,
    transaction_void,
)

DEMO_AGENTS = [
    ("AG001", "Rakoto Andrianina", "Analakely", None),
    ("AG002", "Rasoa Volana", "Andravoahangy", Decimal("2.50")),
    ("AG003", "Randria Hery", "Isotry", None),
    ("AG004", "Razafy Miora", "Ambohijatovo", Decimal("1.75")),
    ("AG005", "Rabe Toky", "Antsirabe", None),
]
HISTORY_DAYS = 40
DEMO_PASSWORD = "demo"  # noqa: S105 - the README prints it; demo database only


@dataclass
class DemoSummary:
    created: bool
    agents: int
    sessions_by_status: dict[str, int]
    transactions: int
    commissions_by_status: dict[str, int]


def _at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


def _users():
    user_model = get_user_model()
    admin, created = user_model.objects.get_or_create(
        username="admin",
        defaults={"email": "admin@cash-office.example", "is_staff": True, "is_superuser": True},
    )
    if created:
        admin.set_password(DEMO_PASSWORD)
        admin.save()
    supervisor, created = user_model.objects.get_or_create(
        username="supervisor",
        defaults={"email": "supervisor@cash-office.example", "is_staff": True},
    )
    if created:
        supervisor.set_password(DEMO_PASSWORD)
        supervisor.save()
    return admin


def demo_summary(*, created: bool) -> DemoSummary:
    from django.db.models import Count

    from payments.models import CashTransaction, Commission

    def by_status(queryset):
        return dict(queryset.values_list("status").annotate(n=Count("pk")).order_by("status"))

    return DemoSummary(
        created=created,
        agents=Agent.objects.count(),
        sessions_by_status=by_status(CashSession.objects),
        transactions=CashTransaction.objects.count(),
        commissions_by_status=by_status(Commission.objects),
    )


def demo_seed(*, now: dt.datetime) -> DemoSummary:
    """Seed once. A second call finds the demo agents and changes nothing."""
    import time_machine

    if Agent.objects.filter(code=DEMO_AGENTS[0][0]).exists():
        return demo_summary(created=False)

    rng = random.Random(2026)  # noqa: S311 - reproducible demo figures, not security
    admin = _users()
    config = SystemConfiguration.load()
    config.reconciliation_tolerance = Decimal("500.00")
    config.save()

    user_model = get_user_model()
    agents = []
    for code, name, location, rate in DEMO_AGENTS:
        user = user_model.objects.create_user(username=code.lower(), password=DEMO_PASSWORD)
        agents.append(
            Agent.objects.create(
                user=user,
                code=code,
                full_name=name,
                phone=f"+261 34 {rng.randint(10, 99)} {rng.randint(100, 999)} 00",
                email=f"{code.lower()}@agents.cash-office.example",
                location=location,
                commission_rate=rate,
            )
        )
    agents[4].email = ""  # one agent without email: notified in the app only
    agents[4].save()

    today = timezone.localdate(now)
    yesterday = today - dt.timedelta(days=1)
    # AG002 and AG005 opened a session within the last day and never closed it.
    still_open = {agents[1].code, agents[4].code}
    # AG004's last few sessions still wait for reconciliation.
    behind = {agents[3].code}
    with transaction.atomic():
        for offset in range(HISTORY_DAYS, 0, -1):
            day = today - dt.timedelta(days=offset)
            if day.weekday() == 6:  # offices close on Sunday
                continue
            for agent in agents:
                if day == yesterday and agent.code in still_open:
                    continue
                recent = day >= today - dt.timedelta(days=3)
                _working_day(
                    agent=agent,
                    day=day,
                    rng=rng,
                    admin=admin,
                    reconcile=day < yesterday and not (recent and agent.code in behind),
                    travel=time_machine.travel,
                )

        # Commissions of earlier months are paid out, except to the last two agents.
        first_of_month = _at(today.replace(day=1), 0)
        with time_machine.travel(first_of_month + dt.timedelta(hours=10), tick=False):
            for agent in agents[:3]:
                commissions_mark_paid(
                    commissions=agent.commissions.filter(
                        status=CommissionStatus.PENDING, created_at__lt=first_of_month
                    ),
                    actor=admin,
                )

        # Open sessions now: one fresh, one expired with payments, one expired and empty.
        fresh_open = now - dt.timedelta(hours=2)
        with time_machine.travel(fresh_open, tick=False):
            session = session_open(
                agent=agents[0], opening_balance=Decimal("50000.00"), actor=agents[0].user
            )
            transaction_record(
                session=session,
                payer_reference="NIF-300100",
                tax_amount=Decimal("25000.00"),
                amount_tendered=Decimal("30000.00"),
                actor=agents[0].user,
            )
        expired_busy = now - dt.timedelta(hours=15)
        with time_machine.travel(expired_busy, tick=False):
            session = session_open(
                agent=agents[1], opening_balance=Decimal("40000.00"), actor=agents[1].user
            )
            transaction_record(
                session=session,
                payer_reference="NIF-300200",
                tax_amount=Decimal("12000.00"),
                amount_tendered=Decimal("12000.00"),
                actor=agents[1].user,
            )
        with time_machine.travel(now - dt.timedelta(hours=14), tick=False):
            session_open(agent=agents[4], opening_balance=Decimal("20000.00"), actor=agents[4].user)
    return demo_summary(created=True)


def _working_day(*, agent, day, rng, admin, reconcile, travel) -> None:
    with travel(_at(day, 8, rng.randint(0, 30)), tick=False):
        session = session_open(
            agent=agent,
            opening_balance=Decimal(rng.choice([20000, 50000, 100000])),
            actor=agent.user,
        )
    payments = []
    for index in range(rng.randint(3, 8)):
        tax = Decimal(rng.randrange(5000, 250000, 500))
        tendered = tax + Decimal(rng.choice([0, 0, 500, 1000, 5000]))
        with travel(_at(day, 9 + index, rng.randint(0, 59)), tick=False):
            payments.append(
                transaction_record(
                    session=session,
                    payer_reference=f"NIF-{rng.randint(100000, 999999)}",
                    tax_amount=tax,
                    amount_tendered=tendered,
                    actor=agent.user,
                )
            )
    if rng.random() < 0.15:
        with travel(_at(day, 16, 30), tick=False):
            transaction_void(
                cash_transaction=payments[-1],
                actor=agent.user,
                reason="Payer's reference was wrong; payment refunded",
            )
    expected = session_expected_balance(session=session)
    shortfall = Decimal(rng.choice([0, 0, 0, 0, 0, 1000, 2500]))
    with travel(_at(day, 17, rng.randint(0, 45)), tick=False):
        session = session_close(
            session=session, counted_cash=expected - shortfall, actor=agent.user
        )
    if reconcile:
        with travel(_at(day + dt.timedelta(days=1), 7, 30), tick=False):
            session_reconcile(
                session=session,
                actor=admin,
                notes="Shortfall repaid by the agent" if shortfall > 500 else "",
            )
