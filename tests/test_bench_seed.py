"""`make bench` seeds data every rule of the database accepts: the seeding of
scripts/bench.py (the expired sessions it closes) and of scripts/bench_audit.py (the rest,
which bench.py reuses), at a tiny scale, with every constraint and trigger live."""

import importlib.util
from decimal import Decimal
from pathlib import Path

import factory
import pytest
from django.db import connection
from django.utils import timezone

from auditing.models import AuditEntry
from auditing.rows import rows_check
from auditing.verification import CHAIN_START, chain_verify_ranges
from payments.audited import AUDITED_TABLES
from payments.database_rules import FOREIGN_KEY_RULES, TRIGGER_RULES
from payments.models import CashSession, CashTransaction, SessionStatus, SystemConfiguration
from payments.selectors import expired_sessions_list
from payments.services import session_open
from tests.factories import AgentFactory

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


def test_the_expired_sessions_the_bench_closes_are_what_the_services_write(monkeypatch):
    # bench_audit, which bench imports, points the checkpoints at its own folder.
    monkeypatch.setenv("AUDIT_CHECKPOINT_SINKS", "")
    bench = script("bench")
    AgentFactory.create_batch(3, code=factory.Iterator(["BX00000", "BX00001", "BX00002"]))
    busy = AgentFactory(code="BX00003")
    # Open and not expired: its agent gets no other one.
    session_open(agent=busy, opening_balance=Decimal("100.00"), actor=None)
    config = SystemConfiguration.load()

    open_sessions = bench.expired_sessions_seed()

    assert_every_rule_holds()
    assert open_sessions == 4
    expired = expired_sessions_list(now=timezone.now(), timeout_hours=config.session_timeout_hours)
    assert sorted(s.agent_code for s in expired) == ["BX00000", "BX00001", "BX00002"]
    # Every other one took a payment: --force is needed to close those.
    assert sorted(s.transaction_count for s in expired) == [0, 1, 1]
    # The trail recorded every row as it stands: a verification after the bench is clean.
    head = AuditEntry.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    assert chain_verify_ranges([(CHAIN_START, head)]).intact
    assert rows_check(AUDITED_TABLES).findings == []
    # A second call finds every agent busy and opens nothing more.
    assert bench.expired_sessions_seed() == 4


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
