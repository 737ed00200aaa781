"""Rows written before entries recorded rows' states (payments 0004) are baselined in the
trail by the migration, so that an upgraded database verifies intact instead of reporting
every old row as "row with no audit entry".

The tests migrate the test database back to 0003, write rows without audit entries (as
the older code left them, from the trail's point of view), then migrate forward. The
database always ends at the latest migrations: later tests share it.
"""

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from auditing.models import AuditEntry, VerificationRun
from tests.factories import CashTransactionFactory
from tests.migrations import migrated

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.frozen_at(dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)),
]

BEFORE = ("payments", "0003_sessions_reminded_once_a_day")
BASELINE = ("payments", "0004_audited_rows_baseline")


@pytest.fixture
def old_rows(at_latest_afterwards, clock):
    """Three open sessions with a payment each, and nothing in the trail about them."""
    migrated(BEFORE)
    payments = [CashTransactionFactory() for _ in range(3)]
    assert not AuditEntry.objects.exists()
    return payments


def test_every_old_row_is_baselined_and_a_full_verification_is_intact(old_rows):
    migrated(BASELINE)

    entries = list(AuditEntry.objects.order_by("sequence"))
    assert [entry.action for entry in entries] == ["audit.rows_baselined"] * 3
    recorded = {
        label: [state["id"] for state in states]
        for entry in entries
        for label, states in entry.data["after"].items()
    }
    assert recorded == {
        "payments.cashsession": sorted(payment.session_id for payment in old_rows),
        "payments.cashtransaction": sorted(payment.pk for payment in old_rows),
        "payments.commission": sorted(payment.commission.pk for payment in old_rows),
    }
    assert entries[1].data["after"]["payments.cashtransaction"][0]["tax_amount"] == "5000.00"

    call_command("verify_audit_trail", "--full", stdout=StringIO())
    run = VerificationRun.objects.latest("pk")
    assert run.intact is True, list(run.findings.values_list("detail", flat=True))
    assert run.entries_checked == 3


def test_rows_are_baselined_in_batches(old_rows):
    baseline = MigrationExecutor(connection).loader.get_migration(*BASELINE)
    module = __import__(baseline.__module__, fromlist=["BATCH"])
    original, module.BATCH = module.BATCH, 2
    try:
        migrated(BASELINE)
    finally:
        module.BATCH = original

    sizes = [
        (label, len(states))
        for entry in AuditEntry.objects.order_by("sequence")
        for label, states in entry.data["after"].items()
    ]
    assert sizes == [
        ("payments.cashsession", 2),
        ("payments.cashsession", 1),
        ("payments.cashtransaction", 2),
        ("payments.cashtransaction", 1),
        ("payments.commission", 2),
        ("payments.commission", 1),
    ]
    call_command("verify_audit_trail", "--full", stdout=StringIO())
    assert VerificationRun.objects.latest("pk").intact is True


def test_an_empty_database_gets_no_baseline_entry(at_latest_afterwards):
    migrated(BEFORE)
    migrated(BASELINE)

    assert not AuditEntry.objects.filter(action="audit.rows_baselined").exists()
