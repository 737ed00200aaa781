"""`make bench` seeds data every rule of the database accepts: scripts/bench.py's seeding,
at a tiny scale, with every constraint and trigger of the test database live."""

import importlib.util
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import F

from payments.database_rules import FOREIGN_KEY_RULES, TRIGGER_RULES
from payments.models import CashSession, CashTransaction, Commission, SessionStatus
from payments.selectors import completed_payments_total, expected_balance

pytestmark = pytest.mark.django_db

BENCH = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"


def bench_module():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bench_seed_satisfies_every_database_rule():
    bench = bench_module()
    # Three agents, so each has several sessions: one open session per agent at a time.
    payments = 7 * bench.PAYMENTS_PER_SESSION * 3

    bench.seed(payments=payments, agents=3)
    # The deferred rules (foreign keys, cancelled iff voided) check now, not at the commit
    # the test's rollback never reaches.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for rule in (*FOREIGN_KEY_RULES, *TRIGGER_RULES):
            cursor.execute(rule.violators_sql)
            assert cursor.fetchall() == [], rule.name

    assert CashTransaction.objects.count() == payments
    assert Commission.objects.filter(base_amount=F("cash_transaction__tax_amount")).count() == (
        payments
    )
    sessions = CashSession.objects.annotate(collected=completed_payments_total())
    assert {s.status for s in sessions} == {SessionStatus.CLOSED, SessionStatus.RECONCILED}
    for session in sessions:
        assert session.expected_balance == expected_balance(
            opening_balance=session.opening_balance, collected=session.collected
        )
        assert session.closed_by_id == session.agent.user_id
        if session.status == SessionStatus.RECONCILED:
            assert session.reconciled_by.is_staff
