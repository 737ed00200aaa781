"""`make bench` seeds data every rule of the database accepts: the seeding of
scripts/bench.py and of scripts/bench_audit.py, at a tiny scale, with every constraint and
trigger of the test database live."""

import importlib.util
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import F

from auditing.rows import rows_check
from auditing.verification import CHAIN_START, chain_verify_ranges
from payments.audited import AUDITED_TABLES
from payments.database_rules import FOREIGN_KEY_RULES, TRIGGER_RULES
from payments.models import CashSession, CashTransaction, Commission, SessionStatus
from payments.selectors import completed_payments_total, expected_balance

pytestmark = pytest.mark.django_db

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_every_rule_holds() -> None:
    # The deferred rules (foreign keys, cancelled iff voided) check now, not at the commit
    # the test's rollback never reaches.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for rule in (*FOREIGN_KEY_RULES, *TRIGGER_RULES):
            cursor.execute(rule.violators_sql)
            assert cursor.fetchall() == [], rule.name


def test_the_bench_seed_satisfies_every_database_rule():
    bench = script("bench")
    # Three agents, so each has several sessions: one open session per agent at a time.
    payments = 7 * bench.PAYMENTS_PER_SESSION * 3

    bench.seed(payments=payments, agents=3)

    assert_every_rule_holds()

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


def test_the_audit_bench_seed_satisfies_every_database_rule_and_its_chain_verifies(monkeypatch):
    # The script points the checkpoints at its own folder when imported: undone afterwards.
    monkeypatch.setenv("AUDIT_CHECKPOINT_SINKS", "")
    bench = script("bench_audit")
    # Seven sessions of three agents: waves of three sessions, then one.
    sessions = 7
    monkeypatch.setattr(bench, "AGENTS", 3)
    monkeypatch.setattr(bench, "SESSIONS", sessions)
    monkeypatch.setattr(bench, "PAYMENTS", sessions * bench.PER_SESSION)
    monkeypatch.setattr(bench, "ENTRIES", 1 + sessions * (bench.PER_SESSION + 2))

    bench.chain_seed()

    # Only the TRUNCATEs skip the triggers: the rows were loaded with every rule on.
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone() == ("origin",)
    assert_every_rule_holds()
    assert CashTransaction.objects.count() == sessions * bench.PER_SESSION
    assert set(CashSession.objects.values_list("status", flat=True)) == {SessionStatus.CLOSED}
    # What the bench times finds the chain intact and the rows as the trail recorded them.
    assert chain_verify_ranges([(CHAIN_START, bench.ENTRIES)]).intact
    assert rows_check(AUDITED_TABLES).findings == []
