"""Time `close_expired_sessions --force` on N expired sessions, and print the figures.

Each round seeds N fresh expired sessions (one per new agent, every other one with a
payment and its commission), then runs the command in a subprocess, as cron does: the
child is `manage.py`'s own entry point (``execute_from_command_line``) with a counter of
the SQL statements on its connection. ``--baseline DIR`` times another checkout too (say
an export of the commit before the change), round by round in turn with this one, on the
same database, so that both see the same machine.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cash_office_bench_close16 \\
        .venv/bin/python scripts/bench_close.py --sessions 10000 --rounds 3

The database must be a bench one (its name says bench); run `manage.py migrate` on it
first. Every run adds its sessions and audit entries to it: nothing is deleted (the trail
is append-only). SMTP is not involved: the run only queues the emails.
"""

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
COMMAND = ["close_expired_sessions", "--force", "--json"]


def child(project: Path) -> None:
    """In the subprocess: run the command as manage.py does, counting its statements."""
    os.chdir(project)
    sys.path.insert(0, str(project))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django
    from django.core.management import execute_from_command_line
    from django.db import connection

    django.setup()
    statements = 0

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    connection.execute_wrappers.append(count)
    started = time.perf_counter()
    code = 0
    try:
        execute_from_command_line(["manage.py", *COMMAND])
    except SystemExit as stop:
        code = stop.code or 0
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "statements": statements, "exit": code}), file=sys.stderr)


def seed(*, sessions: int, tag: str) -> None:
    """``sessions`` open sessions past the timeout, each of a new agent, as the services
    leave them (so the database's rules accept them): every other one took a payment and
    its commission while it was open."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from payments.models import Agent, CashSession, CashTransaction, Commission, SystemConfiguration
    from payments.money import commission_for

    config = SystemConfiguration.load()
    opened_at = timezone.now() - dt.timedelta(hours=config.session_timeout_hours + 1)
    user_model = get_user_model()
    with transaction.atomic():
        users = user_model.objects.bulk_create(
            [user_model(username=f"bc-{tag}-{i:06d}") for i in range(sessions)]
        )
        agents = Agent.objects.bulk_create(
            [
                Agent(
                    user=user,
                    code=f"BC{tag}{i:06d}",
                    full_name=f"Agent {tag} {i}",
                    email=f"bc{tag}{i}@example.com",
                )
                for i, user in enumerate(users)
            ]
        )
        opened = CashSession.objects.bulk_create(
            [
                CashSession(
                    number=f"BC-{tag}-{i:06d}",
                    agent=agent,
                    opened_at=opened_at - dt.timedelta(seconds=i),
                    opening_balance=Decimal("10000.00"),
                )
                for i, agent in enumerate(agents)
            ],
            batch_size=5000,
        )
        payments = CashTransaction.objects.bulk_create(
            [
                CashTransaction(
                    receipt_number=f"{session.number}-0001",
                    session=session,
                    agent_id=session.agent_id,
                    payer_reference=f"NIF-{tag}-{i}",
                    tax_amount=Decimal("25000.00"),
                    amount_tendered=Decimal("25000.00"),
                    change_given=Decimal("0.00"),
                    created_at=session.opened_at + dt.timedelta(minutes=10),
                    recorded_by_id=session.agent.user_id,
                )
                for i, session in enumerate(opened)
                if i % 2 == 0
            ],
            batch_size=5000,
        )
        rate = config.default_commission_rate
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
                for payment in payments
            ],
            batch_size=5000,
        )


def run(project: Path, *, sessions: int) -> dict:
    finished = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [sys.executable, __file__, "--child", str(project)],
        env={**os.environ, "APP_LOG_LEVEL": "WARNING", "EMAIL_URL": "dummymail://"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    figures = json.loads(finished.stderr.strip().splitlines()[-1])
    if figures["exit"] != 0:
        sys.exit(f"{project}: exit {figures['exit']}\n{finished.stderr[-2000:]}")
    figures["per_second"] = sessions / figures["seconds"]
    figures["per_session"] = figures["statements"] / sessions
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another checkout to time in turn")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--verify", action="store_true", help="check the chain at the end")
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments.child)
        return

    sys.path.insert(0, str(PROJECT_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from payments.models import CashSession, SessionStatus

    if connection.vendor != "postgresql" or "bench" not in connection.settings_dict["NAME"]:
        sys.exit("Point DATABASE_URL at a PostgreSQL database of its own whose name says bench.")
    if CashSession.objects.filter(status=SessionStatus.OPEN).exists():
        sys.exit("Open sessions are left from an earlier run: close them first.")

    projects = {"after": PROJECT_DIR}
    if arguments.baseline:
        projects = {"before": arguments.baseline.resolve(), **projects}
    results: dict[str, list[dict]] = {label: [] for label in projects}
    for round_number in range(1, arguments.rounds + 1):
        for label, project in projects.items():
            tag = f"{timezone.now():%H%M%S}{round_number}{label[0]}"
            seed(sessions=arguments.sessions, tag=tag)
            connection.close()  # the child must see the seed, and nothing of ours held
            figures = run(project, sessions=arguments.sessions)
            results[label].append(figures)
            print(
                f"round {round_number} {label:<6} {figures['seconds']:7.2f} s  "
                f"{figures['per_second']:8.1f} sessions/s  "
                f"{figures['per_session']:5.1f} statements/session",
                flush=True,
            )
    print(f"\n{arguments.sessions:,} expired sessions, median of {arguments.rounds}:")
    for label, rounds in results.items():
        print(
            f"  {label:<6} {statistics.median(r['seconds'] for r in rounds):7.2f} s  "
            f"{statistics.median(r['per_second'] for r in rounds):8.1f} sessions/s  "
            f"{statistics.median(r['per_session'] for r in rounds):5.1f} statements/session"
        )
    if arguments.verify:
        from auditing.verification import chain_verify

        started = time.perf_counter()
        result = chain_verify()
        print(f"\nchain intact: {result.intact} ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
