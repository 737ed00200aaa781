"""Time each operation's heavy path on a generated data set, and print the figures.

Run through `make bench` (a dedicated PostgreSQL database). BENCH_SCALE sets the number
of payments (default 100,000). The data is made once and reused. The audit trail has a
bench of its own, scripts/bench_audit.py, which `make bench` runs next.
"""

import datetime as dt
import json
import os
import random
import sys
import time
from decimal import Decimal
from io import StringIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from payments.models import (  # noqa: E402
    Agent,
    CashSession,
    CashTransaction,
    Commission,
    SessionStatus,
    SystemConfiguration,
)
from payments.money import commission_for  # noqa: E402
from payments.selectors import expected_balance  # noqa: E402

SCALE = int(os.environ.get("BENCH_SCALE", "100000"))
AGENTS = 100
PAYMENTS_PER_SESSION = 20
BATCH = 5000
MARKER = "BENCH000"
OPENING = Decimal("10000.00")
# Sessions opened longer ago than this were reconciled; the younger ones are only closed,
# for reconciliation_reminder --days 3 to find.
RECONCILED_AFTER = dt.timedelta(days=3)


def seed(*, payments: int, agents: int = AGENTS) -> None:
    """``payments`` payments, PAYMENTS_PER_SESSION a session, left as the services leave
    them, so that every rule the database holds (payments/models.py's CHECKs and
    payments/database_rules.py's triggers and composite foreign keys) accepts them: a
    session is opened, takes its payments and their commissions while it is open, is
    closed with a count by its agent, and the older ones are then reconciled by an
    administrator. An agent has one open session at a time, so the sessions go in waves of
    one per agent, each wave in a few bulk statements."""
    rng = random.Random(7)  # noqa: S311 - benchmark data, not security
    now = timezone.now()
    config = SystemConfiguration.load()
    rate = config.default_commission_rate
    User = get_user_model()
    administrator = User.objects.create(username="bench-admin", is_staff=True)
    users = User.objects.bulk_create([User(username=f"bench{i:03d}") for i in range(agents)])
    agent_rows = Agent.objects.bulk_create(
        [
            Agent(user=u, code=f"BENCH{i:03d}", full_name=f"Agent {i}", email=f"b{i}@example.com")
            for i, u in enumerate(users)
        ]
    )
    sessions_count = max(1, payments // PAYMENTS_PER_SESSION)
    for wave_start in range(0, sessions_count, agents):
        wave = range(wave_start, min(wave_start + agents, sessions_count))
        sessions = CashSession.objects.bulk_create(
            [
                CashSession(
                    number=f"BS-{i:07d}",
                    agent=agent_rows[i % agents],
                    opened_at=now
                    - dt.timedelta(days=60 * i / sessions_count + 0.6, hours=rng.random()),
                    opening_balance=OPENING,
                )
                for i in wave
            ]
        )
        wave_payments = []
        for s_index, session in zip(wave, sessions, strict=True):
            for p in range(PAYMENTS_PER_SESSION):
                tax = Decimal(rng.randrange(5000, 250000, 500))
                wave_payments.append(
                    CashTransaction(
                        receipt_number=f"{session.number}-{p + 1:04d}",
                        session=session,
                        agent_id=session.agent_id,
                        payer_reference=f"NIF-{s_index}-{p}",
                        tax_amount=tax,
                        amount_tendered=tax,
                        change_given=Decimal("0.00"),
                        created_at=session.opened_at + dt.timedelta(minutes=20 * p),
                        recorded_by_id=session.agent.user_id,
                    )
                )
        CashTransaction.objects.bulk_create(wave_payments, batch_size=BATCH)
        Commission.objects.bulk_create(
            [
                Commission(
                    cash_transaction=payment,
                    agent_id=payment.agent_id,
                    session_id=payment.session_id,
                    base_amount=payment.tax_amount,
                    rate=rate,
                    amount=commission_for(
                        base_amount=payment.tax_amount,
                        rate_percent=rate,
                        currency=config.currency_code,
                    ),
                    created_at=payment.created_at,
                )
                for payment in wave_payments
            ],
            batch_size=BATCH,
        )
        collected = {session.pk: Decimal(0) for session in sessions}
        for payment in wave_payments:
            collected[payment.session_id] += payment.tax_amount
        for session in sessions:
            session.status = SessionStatus.CLOSED
            session.closed_at = session.opened_at + dt.timedelta(hours=9)
            session.closed_by_id = session.agent.user_id
            session.expected_balance = expected_balance(
                opening_balance=session.opening_balance, collected=collected[session.pk]
            )
            session.counted_balance = session.expected_balance
            session.discrepancy = Decimal("0.00")
        CashSession.objects.bulk_update(
            sessions,
            [
                "status",
                "closed_at",
                "closed_by",
                "expected_balance",
                "counted_balance",
                "discrepancy",
            ],
        )
        # Reconciling is a second step, as in the admin: a status only moves forward.
        reconciled = [s for s in sessions if s.opened_at < now - RECONCILED_AFTER]
        for session in reconciled:
            session.status = SessionStatus.RECONCILED
            session.reconciled_at = session.closed_at + dt.timedelta(days=1)
            session.reconciled_by = administrator
        CashSession.objects.bulk_update(reconciled, ["status", "reconciled_at", "reconciled_by"])


def timed(label: str, work) -> None:
    started = time.perf_counter()
    detail = work()
    print(f"  {label:<48} {time.perf_counter() - started:8.2f} s   {detail}")


def command_json(*args: str) -> dict:
    out = StringIO()
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue())


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("make bench runs on PostgreSQL: set DATABASE_URL")
    if not Agent.objects.filter(code=MARKER).exists():
        print(f"Seeding {SCALE:,} payments (once)...")
        started = time.perf_counter()
        with transaction.atomic():
            seed(payments=SCALE)
        print(f"  seeded in {time.perf_counter() - started:.1f} s")
    print(
        f"\nData: {CashTransaction.objects.count():,} payments, "
        f"{CashSession.objects.count():,} sessions\n"
    )
    last_month = timezone.localdate().replace(day=1) - dt.timedelta(days=1)
    month = ("--month", str(last_month.month), "--year", str(last_month.year))

    timed(
        f"generate_commission_report --dry-run ({last_month:%Y-%m})",
        lambda: (
            f"{len(command_json('generate_commission_report', '--dry-run', *month)['agents'])}"
            " agent rows"
        ),
    )
    timed(
        "reconciliation_reminder --dry-run --days 3",
        lambda: (
            f"{command_json('reconciliation_reminder', '--dry-run', '--days', '3')['sessions']:,}"
            " sessions"
        ),
    )
    timed(
        "close_expired_sessions --dry-run",
        lambda: f"{len(command_json('close_expired_sessions', '--dry-run')['sessions'])} expired",
    )


if __name__ == "__main__":
    main()
