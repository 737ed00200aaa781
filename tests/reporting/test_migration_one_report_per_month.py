"""Making the report unique per month on a database that already holds several reports of
one month (manual runs were never unique): the deploy does not fail, no report is deleted,
the first generated stays the month's report and the later ones point to it, and the
delivery log is rebuilt from the email log, so the first run after the deploy does not
send the report again to anyone who had it.

The test migrates the test database back to just before (reporting 0003), writes rows
with the historical models, migrates forward and reads everything back; then undoes and
redoes it. The database always ends at the latest migrations: later tests share it.
"""

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from mailing.models import EmailMessage
from reporting.models import CommissionReport, CommissionReportDelivery
from tests.factories import AgentFactory, StaffUserFactory
from tests.mailing.outbox import outbox_deliver_queued
from tests.reporting.helpers import local

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("reporting", "0003_email_moved_to_mailing")
REPORT_LABEL = "reporting.commissionreport"
FIGURES = {
    "currency": "MGA",
    "transactions": 3,
    "voided_transactions": 1,
    "tax_collected": Decimal("33000.00"),
    "commissions_total": Decimal("750.00"),
    "pending_count": 2,
    "pending_amount": Decimal("550.00"),
    "paid_count": 1,
    "paid_amount": Decimal("200.00"),
    "cancelled_count": 1,
    "cancelled_amount": Decimal("100.00"),
}
STAFF = ["boss@example.com", "zoe@example.com"]


def latest_targets(executor: MigrationExecutor) -> list[tuple[str, str]]:
    return sorted(executor.loader.graph.leaf_nodes())


def migrated(targets: list[tuple[str, str]]) -> MigrationExecutor:
    """Migrate to ``targets``; a new executor, which reads the applied migrations afresh."""
    MigrationExecutor(connection).migrate(targets)
    return MigrationExecutor(connection)


def migrated_before() -> tuple[MigrationExecutor, list[tuple[str, str]]]:
    """reporting back at 0003, every other app as it is."""
    executor = MigrationExecutor(connection)
    targets = [
        BEFORE if app == "reporting" else (app, name) for app, name in latest_targets(executor)
    ]
    executor = migrated([BEFORE])
    assert ("reporting", "0004_report_duplicates_and_delivery_log") not in (
        executor.loader.applied_migrations
    )
    return executor, targets


@pytest.fixture
def at_latest_afterwards(transactional_db) -> Iterator[None]:
    """Whatever happens, put the schema back at the latest migrations before the flush."""
    yield
    executor = migrated(latest_targets(MigrationExecutor(connection)))
    assert not executor.migration_plan(executor.loader.graph.leaf_nodes())


def index_names(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes"
            " WHERE schemaname = current_schema() AND tablename = %s",
            [table],
        )
        return {name for (name,) in cursor.fetchall()}


def report_rows() -> list[dict[str, Any]]:
    """Every stored report's columns but the new one, read with SQL: works at any state."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, year, month, trigger, generated_at, recipients::text, currency,"
            " transactions, tax_collected, commissions_total, pending_amount, paid_amount,"
            " cancelled_amount FROM reporting_commissionreport ORDER BY id"
        )
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def old_database_write(apps) -> dict[str, Any]:
    """October reported four times (manual, beat, enqueued, manual without recipients),
    September once, each emailed as the old code did; and one unrelated email."""
    Report = apps.get_model("reporting", "CommissionReport")
    Line = apps.get_model("reporting", "CommissionReportLine")
    Email = apps.get_model("mailing", "EmailMessage")
    agent = AgentFactory(code="AG0001", full_name="Hery Rakoto")

    def report(trigger: str, when: dt.datetime, recipients: list[str], *, month: int = 10):
        with time_machine.travel(when, tick=False):
            stored = Report.objects.create(
                year=2026,
                month=month,
                trigger=trigger,
                generated_at=when,
                recipients=recipients,
                **FIGURES,
            )
            Line.objects.create(
                report=stored,
                agent_id=agent.pk,
                agent_code="AG0001",
                agent_name="Hery Rakoto",
                transactions=3,
                tax_collected=Decimal("33000.00"),
                commission_earned=Decimal("750.00"),
                pending_amount=Decimal("550.00"),
                paid_amount=Decimal("200.00"),
                cancelled_amount=Decimal("100.00"),
            )
            email = None
            if recipients:
                email = Email.objects.create(
                    purpose="commission_report",
                    about=f"2026-{month:02d}",
                    subject_type=REPORT_LABEL,
                    subject_id=str(stored.pk),
                    recipients=recipients,
                    subject=f"Commission report — 2026-{month:02d}",
                    body_text="The report.",
                    status="sent",
                )
        return stored, email

    first, first_email = report("manual", local(2026, 11, 2, 8, 30), STAFF)
    beat, beat_email = report("beat", local(2026, 11, 2, 9, 0), STAFF)
    enqueued, enqueued_email = report(
        "manual-enqueue", local(2026, 11, 3, 10, 0), ["chief@example.com"]
    )
    unsent, _ = report("manual", local(2026, 11, 4, 11, 0), [])
    september, september_email = report(
        "beat", local(2026, 10, 1, 9, 0), ["Boss@Example.com"], month=9
    )
    with time_machine.travel(local(2026, 11, 2, 9, 0), tick=False):
        Email.objects.create(
            purpose="session_expired",
            about="Session S-0042",
            subject_type="payments.cashsession",
            subject_id=str(first.pk),  # the same id, another kind of subject
            recipients=["agent@example.com"],
            subject="Session closed",
            body_text="Closed.",
            status="sent",
        )
    return {
        "first": first.pk,
        "beat": beat.pk,
        "enqueued": enqueued.pk,
        "unsent": unsent.pk,
        "september": september.pk,
        "emails": {
            "first": first_email.pk,
            "beat": beat_email.pk,
            "enqueued": enqueued_email.pk,
            "september": september_email.pk,
        },
    }


def deliveries() -> list[tuple[int, str, int, str, dt.datetime, bool]]:
    return list(
        CommissionReportDelivery.objects.order_by("report_id", "pk").values_list(
            "report_id", "address", "email_id", "trigger", "requested_at", "resend"
        )
    )


def expected_deliveries(old: dict[str, Any]) -> list[tuple]:
    emails = old["emails"]
    return [
        (
            old["first"],
            "boss@example.com",
            emails["first"],
            "manual",
            local(2026, 11, 2, 8, 30),
            False,
        ),
        (
            old["first"],
            "zoe@example.com",
            emails["first"],
            "manual",
            local(2026, 11, 2, 8, 30),
            False,
        ),
        (old["beat"], "boss@example.com", emails["beat"], "beat", local(2026, 11, 2, 9, 0), False),
        (old["beat"], "zoe@example.com", emails["beat"], "beat", local(2026, 11, 2, 9, 0), False),
        (
            old["enqueued"],
            "chief@example.com",
            emails["enqueued"],
            "manual-enqueue",
            local(2026, 11, 3, 10, 0),
            False,
        ),
        (
            old["september"],
            "Boss@Example.com",
            emails["september"],
            "beat",
            local(2026, 10, 1, 9, 0),
            False,
        ),
    ]


def test_duplicate_reports_are_set_aside_and_the_log_rebuilt_without_losing_a_row(
    at_latest_afterwards,
):
    executor, targets = migrated_before()
    old = old_database_write(executor.loader.project_state(targets).apps)
    rows_before = report_rows()
    assert "reporting_one_scheduled_report_per_month" in index_names("reporting_commissionreport")

    migrated(latest_targets(MigrationExecutor(connection)))

    # Every report is still there, as it was; the later Octobers point to the first.
    assert report_rows() == rows_before
    assert dict(CommissionReport.objects.values_list("pk", "duplicate_of")) == {
        old["first"]: None,
        old["beat"]: old["first"],
        old["enqueued"]: old["first"],
        old["unsent"]: old["first"],
        old["september"]: None,
    }
    assert all(report.lines.count() == 1 for report in CommissionReport.objects.all())
    assert deliveries() == expected_deliveries(old)
    indexes = index_names("reporting_commissionreport")
    assert "reporting_one_report_per_month" in indexes
    assert "reporting_one_scheduled_report_per_month" not in indexes

    # From now on a month has one report, whatever the trigger.
    with pytest.raises(IntegrityError), transaction.atomic():
        CommissionReport.objects.create(
            year=2026, month=10, trigger="task", generated_at=local(2026, 11, 5, 9, 0), **FIGURES
        )


def test_after_the_deploy_a_run_reuses_the_first_report_and_skips_who_had_any_of_them(
    at_latest_afterwards, mailoutbox
):
    from tasks.tasks import generate_commission_report

    executor, targets = migrated_before()
    old = old_database_write(executor.loader.project_state(targets).apps)
    migrated(latest_targets(MigrationExecutor(connection)))
    for address in STAFF:
        StaffUserFactory(username=address.split("@")[0], email=address)

    with time_machine.travel(local(2026, 11, 5, 9, 0), tick=False):
        scheduled = generate_commission_report.apply(
            kwargs={"year": 2026, "month": 10, "trigger": "beat"}
        ).get()
        chief = generate_commission_report.apply(
            kwargs={"year": 2026, "month": 10, "email": "CHIEF@example.com"}
        ).get()
        newcomer = generate_commission_report.apply(
            kwargs={"year": 2026, "month": 10, "email": "new@example.com"}
        ).get()

    assert scheduled["report_id"] == chief["report_id"] == newcomer["report_id"] == old["first"]
    assert scheduled["already_generated"] is True
    assert scheduled["new_recipients"] == chief["new_recipients"] == []
    assert [row["address"] for row in scheduled["already_had"]] == STAFF
    # The enqueued duplicate carried October to the chief: it counts.
    assert [row["email_id"] for row in chief["already_had"]] == [old["emails"]["enqueued"]]
    assert newcomer["new_recipients"] == ["new@example.com"]
    assert CommissionReport.objects.count() == 5
    outbox_deliver_queued()
    assert [message.to for message in mailoutbox] == [["new@example.com"]]


def test_the_change_can_be_undone_and_redone(at_latest_afterwards):
    executor, targets = migrated_before()
    old = old_database_write(executor.loader.project_state(targets).apps)
    rows_before = report_rows()
    migrated(latest_targets(MigrationExecutor(connection)))

    migrated([BEFORE])

    assert report_rows() == rows_before
    assert "reporting_one_scheduled_report_per_month" in index_names("reporting_commissionreport")
    with connection.cursor() as cursor:
        assert "reporting_commissionreportdelivery" not in connection.introspection.table_names(
            cursor
        )

    migrated(latest_targets(MigrationExecutor(connection)))

    assert report_rows() == rows_before
    assert CommissionReport.objects.filter(duplicate_of=None).count() == 2
    assert deliveries() == expected_deliveries(old)
    assert EmailMessage.objects.filter(purpose="commission_report").count() == 4
