"""The demo runs on SQLite (`make demo`): the database rules and verification's SQL must
hold there too.

PostgreSQL serves every other test; this one runs the commands in a subprocess against a
SQLite file of its own, as `make demo` does: a session day through the services, then
the daily verification and a full one, which reads the cash tables against the trail.
"""

import os
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]

FIELD_DAY = """
from decimal import Decimal
from django.contrib.auth import get_user_model
from payments.models import Agent
from payments.services import (
    session_close, session_open, session_reconcile, transaction_record, transaction_void,
)
user = get_user_model().objects.create(username="ag001")
agent = Agent.objects.create(user=user, code="AG001", full_name="Rakoto")
session = session_open(agent=agent, opening_balance=Decimal("20000"), actor=user)
kept = transaction_record(session=session, payer_reference="NIF-1", tax_amount=Decimal("5000.00"),
                          amount_tendered=Decimal("6000.00"), actor=user)
voided = transaction_record(session=session, payer_reference="NIF-2", tax_amount=Decimal("1234.50"),
                            amount_tendered=Decimal("1300.10"), actor=user)
transaction_void(cash_transaction=voided, actor=user, reason="Wrong payer")
# Cents: SQLite subtracts in floating point, and the CHECKs must still accept these.
session = session_close(session=session, counted_cash=Decimal("25000.30"), actor=user)
supervisor = get_user_model().objects.create(username="supervisor", is_staff=True)
session_reconcile(session=session, actor=supervisor, notes="30 cents over, from change")
"""


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_verification_runs_on_the_demo_database(tmp_path):
    env = {
        **os.environ,
        "DJANGO_ENV": "dev",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "AUDIT_CHECKPOINT_SINKS": f"file://{tmp_path / 'checkpoints'}",
        "EMAIL_URL": "dummymail://",
        "APP_LOG_LEVEL": "WARNING",
    }
    assert manage("migrate", "--no-input", "-v0", env=env).returncode == 0
    day = manage("shell", "-c", FIELD_DAY, env=env)
    assert day.returncode == 0, day.stderr

    daily = manage("verify_audit_trail", env=env)
    full = manage("verify_audit_trail", "--full", env=env)

    assert daily.returncode == 0, daily.stdout + daily.stderr
    assert "Audit trail intact" in daily.stdout
    assert full.returncode == 0, full.stdout + full.stderr
    assert (
        "Rows checked against their audit entries: payments_cashsession 1, "
        "payments_cashtransaction 2, payments_commission 2"
    ) in full.stdout
