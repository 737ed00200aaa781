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
)

SCALE = int(os.environ.get("BENCH_SCALE", "100000"))
AGENTS = 100
PAYMENTS_PER_SESSION = 20
BATCH = 5000
MARKER = "BENCH000"


def seed() -> None:
    rng = random.Random(7)  # noqa: S311 - benchmark data, not security
    now = timezone.now()
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"bench{i:03d}") for i in range(AGENTS)]
    )
    agents = Agent.objects.bulk_create(
        [
            Agent(user=u, code=f"BENCH{i:03d}", full_name=f"Agent {i}", email=f"b{i}@example.com")
            for i, u in enumerate(users)
        ]
    )
    sessions_count = SCALE // PAYMENTS_PER_SESSION
    sessions = []
    for i in range(sessions_count):
        opened = now - dt.timedelta(days=60 * i / sessions_count + 0.6, hours=rng.random())
        status = (
            SessionStatus.RECONCILED
            if opened < now - dt.timedelta(days=3)
            else (SessionStatus.CLOSED)
        )
        sessions.append(
            CashSession(
                number=f"BS-{i:07d}",
                agent=agents[i % AGENTS],
                status=status,
                opened_at=opened,
                opening_balance=Decimal("10000.00"),
                closed_at=opened + dt.timedelta(hours=9),
                expected_balance=Decimal("0.00"),
                counted_balance=Decimal("0.00"),
                discrepancy=Decimal("0.00"),
            )
        )
    CashSession.objects.bulk_create(sessions, batch_size=BATCH)
    sessions = list(CashSession.objects.filter(number__startswith="BS-").order_by("pk"))
    payments, commissions = [], []
    for s_index, session in enumerate(sessions):
        for p in range(PAYMENTS_PER_SESSION):
            tax = Decimal(rng.randrange(5000, 250000, 500))
            payments.append(
                CashTransaction(
                    receipt_number=f"{session.number}-{p:04d}",
                    session=session,
                    agent_id=session.agent_id,
                    payer_reference=f"NIF-{s_index}-{p}",
                    tax_amount=tax,
                    amount_tendered=tax,
                    change_given=Decimal("0.00"),
                    created_at=session.opened_at + dt.timedelta(minutes=20 * p),
                )
            )
    CashTransaction.objects.bulk_create(payments, batch_size=BATCH)
    for payment in CashTransaction.objects.filter(receipt_number__startswith="BS-").iterator():
        commissions.append(
            Commission(
                cash_transaction_id=payment.pk,
                agent_id=payment.agent_id,
                session_id=payment.session_id,
                base_amount=payment.tax_amount,
                rate=Decimal("2.00"),
                amount=(payment.tax_amount * 2 / 100).quantize(Decimal("0.01")),
                created_at=payment.created_at,
            )
        )
        if len(commissions) == BATCH:
            Commission.objects.bulk_create(commissions)
            commissions = []
    Commission.objects.bulk_create(commissions)


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
            seed()
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
