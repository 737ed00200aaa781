"""A full verification checks the cash tables against the trail: every session, payment
and commission must equal the state its latest audit entry recorded (auditing/rows.py).

Each attack is what someone with the tables' owner role can do in SQL: triggers off for
the session (``session_replication_role = replica``), the rows rewritten so that every
CHECK constraint still holds. The audit table itself is left alone, so the chain stays
intact and only the row check can tell.
"""

import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from auditing.exports import findings_csv
from auditing.models import AuditEntry, VerificationFinding, VerificationRun
from mailing.models import EmailMessage
from payments.models import CashSession, CashTransaction, Commission, SessionStatus
from payments.services import (
    session_close,
    session_open,
    session_reconcile,
    transaction_record,
    transaction_void,
)
from tests.auditing.tampering import disable_append_only_trigger
from tests.factories import AgentFactory, StaffUserFactory

NOW = dt.datetime(2026, 5, 20, 10, 0, tzinfo=dt.UTC)
SESSIONS, PAYMENTS = "payments_cashsession", "payments_cashtransaction"
pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]


@pytest.fixture(autouse=True)
def _enforcement_not_checked(monkeypatch):
    """The attacks switch triggers off for their own session only; the check that reports
    enforcement switched off is the tamper matrix's. Here each test looks at the rows."""
    monkeypatch.setattr(
        "tasks.operations.verify_audit_trail.append_only_enforcement_problems", lambda: []
    )


@pytest.fixture
def day(clock):
    """A field day through the services: two sessions, three payments (one voided), one
    session closed with a count and reconciled, one still open."""
    supervisor = StaffUserFactory(username="supervisor")
    first, second = AgentFactory(code="AG001"), AgentFactory(code="AG002")
    clock.move_to(NOW - dt.timedelta(hours=6))
    closed = session_open(agent=first, opening_balance=Decimal("10000"), actor=first.user)
    paid = transaction_record(
        session=closed,
        payer_reference="NIF-1",
        tax_amount=Decimal("5000.00"),
        amount_tendered=Decimal("6000.00"),
        actor=first.user,
    )
    voided = transaction_record(
        session=closed,
        payer_reference="NIF-2",
        tax_amount=Decimal("2500.00"),
        amount_tendered=Decimal("2500.00"),
        actor=first.user,
    )
    transaction_void(cash_transaction=voided, actor=first.user, reason="Wrong payer")
    session_close(session=closed, counted_cash=Decimal("15000.00"), actor=first.user)
    session_reconcile(session=closed, actor=supervisor)
    open_session = session_open(agent=second, opening_balance=Decimal("0"), actor=second.user)
    other = transaction_record(
        session=open_session,
        payer_reference="NIF-3",
        tax_amount=Decimal("1234.50"),
        amount_tendered=Decimal("1300.00"),
        actor=second.user,
    )
    clock.move_to(NOW)
    return {
        "reconciled": CashSession.objects.get(pk=closed.pk),
        "open": CashSession.objects.get(pk=open_session.pk),
        "paid": paid,
        "voided": voided,
        "other": other,
        "first": first,
        "second": second,
    }


def as_owner(*statements: tuple[str, list]) -> None:
    """Raw SQL as the tables' owner may run it, with every trigger off (FK checks too)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET LOCAL session_replication_role = replica")
        for sql, params in statements:
            cursor.execute(sql, params)
        cursor.execute("SET LOCAL session_replication_role = origin")


def findings(run_id: int) -> list[tuple[str, str, str, str, str, str]]:
    return list(
        VerificationFinding.objects.filter(run_id=run_id)
        .order_by("position")
        .values_list("kind", "table", "row", "field", "expected", "stored")
    )


def full_run(run_command, *, expect_exit: int):
    outcome = run_command("verify_audit_trail", "--full", expect_exit=expect_exit)
    return outcome, VerificationRun.objects.latest("pk")


def test_a_field_day_is_intact_and_every_row_is_checked(day, run_command):
    outcome, run = full_run(run_command, expect_exit=0)

    assert run.intact is True
    assert (
        "Rows checked against their audit entries: payments_cashsession 2, "
        "payments_cashtransaction 3, payments_commission 3"
    ) in outcome.stdout


def test_each_entry_records_its_rows_as_they_are_after_the_change(day):
    voided = day["voided"]
    entry = AuditEntry.objects.filter(action="transaction.voided").get()
    (payment_state,) = entry.data["after"]["payments.cashtransaction"]
    (commission_state,) = entry.data["after"]["payments.commission"]

    assert payment_state == {
        "id": voided.pk,
        "receipt_number": voided.receipt_number,
        "session_id": day["reconciled"].pk,
        "agent_id": day["first"].pk,
        "payer_reference": "NIF-2",
        "tax_amount": "2500.00",
        "amount_tendered": "2500.00",
        "change_given": "0.00",
        "status": "voided",
        "created_at": "2026-05-20T04:00:00.000000Z",
        "voided_at": "2026-05-20T04:00:00.000000Z",
    }
    assert commission_state["status"] == "cancelled"
    assert commission_state["amount"] == "50.00"
    # The opening float was given as 10000: the entry keeps the column's scale.
    opened = AuditEntry.objects.filter(action="session.opened").first()
    assert opened.data["after"]["payments.cashsession"][0]["opening_balance"] == "10000.00"


def test_an_amount_changed_in_sql_is_reported_with_its_table_row_and_field(day, run_command):
    paid = day["paid"]
    as_owner(
        (
            "UPDATE payments_cashtransaction SET tax_amount = 4000, change_given = 2000 "
            "WHERE id = %s",
            [paid.pk],
        )
    )

    outcome, run = full_run(run_command, expect_exit=3)

    assert findings(run.pk) == [
        (
            "row_differs",
            "payments_cashtransaction",
            str(paid.pk),
            "tax_amount",
            "5000.00",
            "4000.00",
        ),
        (
            "row_differs",
            "payments_cashtransaction",
            str(paid.pk),
            "change_given",
            "1000.00",
            "2000.00",
        ),
    ]
    assert (
        f"payments_cashtransaction row {paid.pk}, field tax_amount: row differs" in outcome.stdout
    )
    assert run.intact is False
    recorded = AuditEntry.objects.filter(action="transaction.recorded", subject_id=str(paid.pk))
    assert f"audit entry #{recorded.get().sequence} recorded 5000.00" in outcome.stdout
    # The alert's attachment and the admin's download carry them as columns.
    header, first, _ = list(csv.reader(io.StringIO(findings_csv(run))))
    assert dict(zip(header, first, strict=True)) | {"detail": ""} == {
        "position": "1",
        "sequence": str(recorded.get().sequence),
        "kind": "row_differs",
        "kind_label": "row differs from its audited state",
        "timestamp": "",
        "detail": "",
        "expected": "5000.00",
        "stored": "4000.00",
        "reference": "",
        "table": PAYMENTS,
        "row": str(paid.pk),
        "field": "tax_amount",
    }


def test_a_status_changed_in_sql_is_reported(day, run_command):
    commission = Commission.objects.get(cash_transaction=day["other"])
    as_owner(
        (
            "UPDATE payments_commission SET status = 'paid', paid_at = %s WHERE id = %s",
            [timezone.now(), commission.pk],
        )
    )

    _, run = full_run(run_command, expect_exit=3)

    assert findings(run.pk) == [
        ("row_differs", "payments_commission", str(commission.pk), "status", "pending", "paid"),
        (
            "row_differs",
            "payments_commission",
            str(commission.pk),
            "paid_at",
            "empty",
            "2026-05-20T10:00:00.000000Z",
        ),
    ]


def test_a_deleted_payment_and_its_commission_are_reported_missing(day, run_command):
    other = day["other"]
    commission = Commission.objects.get(cash_transaction=other)
    as_owner(
        ("DELETE FROM payments_commission WHERE id = %s", [commission.pk]),
        ("DELETE FROM payments_cashtransaction WHERE id = %s", [other.pk]),
    )

    outcome, run = full_run(run_command, expect_exit=3)

    assert [finding[:4] for finding in findings(run.pk)] == [
        ("audited_row_missing", "payments_cashtransaction", str(other.pk), ""),
        ("audited_row_missing", "payments_commission", str(commission.pk), ""),
    ]
    assert f"payments_cashtransaction row {other.pk}: audited row missing" in outcome.stdout
    assert "Rows checked against their audit entries: payments_cashsession 2, " in outcome.stdout


def test_a_row_inserted_without_its_audit_entry_is_reported(day, run_command):
    third = AgentFactory(code="AG003")
    as_owner(
        (
            "INSERT INTO payments_cashsession (number, agent_id, status, opened_at, "
            "opening_balance, auto_closed, closing_notes, reconciliation_notes) "
            "VALUES ('CS-FORGED-0001', %s, 'open', %s, 0, false, '', '')",
            [third.pk, timezone.now()],
        )
    )
    forged = CashSession.objects.get(number="CS-FORGED-0001")

    outcome, run = full_run(run_command, expect_exit=3)

    assert [finding[:4] for finding in findings(run.pk)] == [
        ("row_not_audited", "payments_cashsession", str(forged.pk), "")
    ]
    assert f"payments_cashsession row {forged.pk} has no audit entry" in outcome.stdout


def test_counted_cash_changed_on_a_reconciled_session_is_reported(day, run_command):
    reconciled = day["reconciled"]
    assert reconciled.status == SessionStatus.RECONCILED
    as_owner(
        (
            "UPDATE payments_cashsession SET counted_balance = 14000, discrepancy = -1000 "
            "WHERE id = %s",
            [reconciled.pk],
        )
    )

    outcome, run = full_run(run_command, expect_exit=3)

    assert findings(run.pk) == [
        (
            "row_differs",
            "payments_cashsession",
            str(reconciled.pk),
            "counted_balance",
            "15000.00",
            "14000.00",
        ),
        (
            "row_differs",
            "payments_cashsession",
            str(reconciled.pk),
            "discrepancy",
            "0.00",
            "-1000.00",
        ),
    ]
    assert "TAMPERING DETECTED: 2 issues" in outcome.stdout


def test_a_row_put_back_as_it_was_is_intact_again(day, run_command):
    """The check compares values, not history: a row restored exactly is what the trail says."""
    paid = day["paid"]
    as_owner(("UPDATE payments_cashtransaction SET payer_reference = 'X' WHERE id = %s", [paid.pk]))
    full_run(run_command, expect_exit=3)
    as_owner(
        ("UPDATE payments_cashtransaction SET payer_reference = 'NIF-1' WHERE id = %s", [paid.pk])
    )

    _, run = full_run(run_command, expect_exit=0)

    assert run.intact is True


def test_the_latest_entry_is_the_one_that_counts(day, run_command):
    """A voided payment is checked against the void's entry, not the recording's: putting
    it back to completed, as it was first recorded, is still a difference."""
    voided = day["voided"]
    as_owner(
        (
            "UPDATE payments_cashtransaction SET status = 'completed', voided_at = NULL, "
            "voided_by_id = NULL, void_reason = '' WHERE id = %s",
            [voided.pk],
        )
    )

    _, run = full_run(run_command, expect_exit=3)

    assert [finding[3:] for finding in findings(run.pk)] == [
        ("status", "voided", "completed"),
        ("voided_at", "2026-05-20T04:00:00.000000Z", "empty"),
    ]
    voids = AuditEntry.objects.filter(action="transaction.voided").get()
    assert VerificationFinding.objects.filter(run=run, sequence=voids.sequence).count() == 2


def test_the_json_output_names_the_table_row_and_field(day, run_command):
    paid = day["paid"]
    as_owner(("UPDATE payments_cashtransaction SET payer_reference = 'X' WHERE id = %s", [paid.pk]))

    outcome = run_command("verify_audit_trail", "--full", "--json", expect_exit=3)

    result = json.loads(outcome.stdout)
    (violation,) = result["violations"]
    assert violation["kind"] == "row_differs"
    assert (violation["table"], violation["row"], violation["field"]) == (
        "payments_cashtransaction",
        str(paid.pk),
        "payer_reference",
    )
    assert result["rows_checked"] == [
        {"table": "payments_cashsession", "rows": 2},
        {"table": "payments_cashtransaction", "rows": 3},
        {"table": "payments_commission", "rows": 3},
    ]


def test_a_run_over_a_period_leaves_the_rows_to_the_full_run(day, run_command):
    """The rows are read whole, so the daily run does not check them; the weekly full run
    (and any --full) does."""
    as_owner(
        (
            "UPDATE payments_cashtransaction SET payer_reference = 'X' WHERE id = %s",
            [day["paid"].pk],
        )
    )

    outcome = run_command("verify_audit_trail", expect_exit=0)

    assert "Rows checked" not in outcome.stdout
    assert CashTransaction.objects.get(pk=day["paid"].pk).payer_reference == "X"


ALERT_SENTENCES = {
    "en": [
        "{sessions} row {session}: the field counted_balance differs from what audit entry "
        "#{sequence} recorded.",
        "{payments} row {payment} is missing: it was deleted outside the application.",
        "{payments} row {forged} has no audit entry: it was written outside the application.",
    ],
    "fr": [
        "{sessions} ligne {session} : le champ counted_balance diffère de ce qu'a enregistré "
        "l'entrée d'audit n° {sequence}.",
        "{payments} ligne {payment} manquante : elle a été supprimée hors de l'application.",
        "{payments} ligne {forged} n'a aucune entrée d'audit : elle a été écrite hors de "
        "l'application.",
    ],
}


@pytest.mark.parametrize("language", ["en", "fr"])
def test_the_alert_explains_each_row_finding_in_the_email_language(
    day, run_command, settings, language
):
    settings.LANGUAGE_CODE = language
    reconciled, other = day["reconciled"], day["other"]
    commission = Commission.objects.get(cash_transaction=other)
    as_owner(
        (
            "UPDATE payments_cashsession SET counted_balance = 14000, discrepancy = -1000 "
            "WHERE id = %s",
            [reconciled.pk],
        ),
        ("DELETE FROM payments_commission WHERE id = %s", [commission.pk]),
        ("UPDATE payments_cashtransaction SET id = id + 1000 WHERE id = %s", [other.pk]),
    )

    run_command("verify_audit_trail", "--full", "--email", "auditor@example.com", expect_exit=3)

    alert = EmailMessage.objects.get(recipients=["auditor@example.com"])
    reconciled_entry = AuditEntry.objects.filter(action="session.reconciled").get()
    words = {
        "sessions": SESSIONS,
        "payments": PAYMENTS,
        "session": reconciled.pk,
        "sequence": reconciled_entry.sequence,
        "payment": other.pk,
        "forged": other.pk + 1000,
    }
    explained = [line.strip() for line in alert.body_text.splitlines() if line.startswith("   ")]
    for sentence in ALERT_SENTENCES[language]:
        assert sentence.format(**words) in explained, explained


def test_a_count_typed_as_minus_zero_is_no_tampering(run_command):
    """PostgreSQL stores -0.00 as 0.00; the entry records the row as stored."""
    agent = AgentFactory(code="AG009")
    session = session_open(agent=agent, opening_balance=Decimal("0"), actor=agent.user)
    session_close(session=session, counted_cash=Decimal("-0.00"), actor=agent.user)

    _, run = full_run(run_command, expect_exit=0)

    assert run.intact is True


def test_an_audited_state_nested_too_deep_is_the_chain_s_finding(day, run_command):
    """A tampered entry whose recorded state cannot be parsed is reported by its HMAC; the
    row check goes on instead of stopping the run."""
    paid = day["paid"]
    entry = AuditEntry.objects.filter(action="transaction.recorded", subject_id=str(paid.pk)).get()
    disable_append_only_trigger()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE auditing_auditentry SET data = jsonb_set(data, "
            "'{after,payments.cashtransaction,0,deep}', "
            "(repeat('[', 5000) || repeat(']', 5000))::jsonb) WHERE sequence = %s",
            [entry.sequence],
        )

    outcome, run = full_run(run_command, expect_exit=3)

    assert [
        (kind, sequence) for kind, sequence in run.findings.values_list("kind", "sequence")
    ] == [("undecodable", entry.sequence)]
    assert "Rows checked against their audit entries" in outcome.stdout
