import re
from decimal import Decimal

import pytest
from django.urls import reverse

import payments.services
from auditing.models import AuditEntry
from payments.models import Agent, CommissionStatus, SessionStatus, SystemConfiguration
from payments.services import session_open
from tests.factories import (
    AgentFactory,
    CashSessionFactory,
    CashTransactionFactory,
    CommissionFactory,
)
from tests.payments.helpers import assert_audited

pytestmark = pytest.mark.django_db


def cells(response, field: str) -> list[str]:
    """The text of every changelist cell of one column, links unwrapped."""
    html = response.content.decode()
    pattern = rf'<t[dh] class="field-{field}[^"]*">(?:<a [^>]*>)?(.*?)(?:</a>)?</t[dh]>'
    return re.findall(pattern, html)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# Changelists


def test_the_agent_changelist_shows_who_collects_where_and_at_what_rate(admin_client):
    AgentFactory(
        code="AG-TNR-01",
        full_name="Rasoa Rakoto",
        location="Toamasina",
        commission_rate=Decimal("3.50"),
        is_active=False,
    )

    response = admin_client.get(reverse("admin:payments_agent_changelist"))

    assert response.status_code == 200
    assert cells(response, "code") == ["AG-TNR-01"]
    assert cells(response, "full_name") == ["Rasoa Rakoto"]
    assert cells(response, "location") == ["Toamasina"]
    assert cells(response, "commission_rate") == ["3.50"]
    assert 'alt="False"' in cells(response, "is_active")[0]


def test_the_session_changelist_shows_balances_and_the_discrepancy(admin_client):
    agent = AgentFactory(code="AG-S-01")
    CashSessionFactory(
        number="CS-20261124-0007",
        agent=agent,
        closed=True,
        opening_balance=Decimal("1000.00"),
        expected_balance=Decimal("6000.00"),
        counted_balance=Decimal("5990.00"),
    )

    response = admin_client.get(reverse("admin:payments_cashsession_changelist"))

    assert response.status_code == 200
    assert cells(response, "number") == ["CS-20261124-0007"]
    assert cells(response, "agent_shown") == [
        f'{agent.code}<br><span class="agent-name">{agent.full_name}</span>'
    ]
    assert cells(response, "status_shown") == ["Closed"]
    assert cells(response, "expected") == ["6,000.00 MGA"]
    assert cells(response, "counted") == ["5,990.00 MGA"]
    assert "-10.00 MGA" in cells(response, "discrepancy_shown")[0]


def test_a_session_nobody_counted_shows_not_counted_in_the_changelist(admin_client):
    CashSessionFactory(uncounted=True)

    response = admin_client.get(reverse("admin:payments_cashsession_changelist"))

    assert cells(response, "counted") == ['<span class="not-counted">not counted</span>']
    assert cells(response, "discrepancy_shown") == ['<span class="not-counted">not counted</span>']


def test_an_open_session_shows_no_count_and_no_discrepancy_yet(admin_client):
    CashSessionFactory()

    response = admin_client.get(reverse("admin:payments_cashsession_changelist"))

    assert cells(response, "counted") == ["-"]
    assert cells(response, "discrepancy_shown") == ["-"]


def test_the_payment_changelist_shows_receipts_payers_and_amounts(admin_client):
    payment = CashTransactionFactory(payer_reference="NIF-777", tax_amount=Decimal("4200.00"))

    response = admin_client.get(reverse("admin:payments_cashtransaction_changelist"))

    assert response.status_code == 200
    assert cells(response, "receipt_number") == [payment.receipt_number]
    assert cells(response, "session") == [payment.session.number]
    assert cells(response, "payer_reference") == ["NIF-777"]
    assert cells(response, "tax_shown") == ["4,200.00 MGA"]
    assert cells(response, "status") == ["Completed"]


def test_the_commission_changelist_shows_rate_amount_and_status(admin_client):
    commission = CommissionFactory(paid=True, rate=Decimal("2.50"))

    response = admin_client.get(reverse("admin:payments_commission_changelist"))

    assert response.status_code == 200
    assert cells(response, "cash_transaction") == [commission.cash_transaction.receipt_number]
    assert cells(response, "base_shown") == ["5,000.00 MGA"]
    assert cells(response, "rate_shown") == ["2.50 %"]
    assert cells(response, "amount_shown") == ["125.00 MGA"]
    assert cells(response, "status") == ["Paid"]


def test_the_audit_changelist_shows_action_actor_subject_and_hash(admin_client):
    agent = AgentFactory()
    session = session_open(agent=agent, opening_balance=Decimal("0"), actor=agent.user)
    entry = AuditEntry.objects.get()

    response = admin_client.get(reverse("admin:auditing_auditentry_changelist"))

    assert response.status_code == 200
    assert cells(response, "action") == ["session.opened"]
    assert cells(response, "actor_name") == [agent.user.username]
    assert cells(response, "subject") == [f"payments.cashsession {session.pk}"]
    assert cells(response, "short_hash") == [entry.current_hash[:12]]


def test_the_configuration_changelist_redirects_to_the_single_configuration(admin_client):
    response = admin_client.get(reverse("admin:payments_systemconfiguration_changelist"))

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:payments_systemconfiguration_change", args=[1])
    assert admin_client.get(response["Location"]).status_code == 200


# Read-only records


def test_an_audit_entry_page_has_no_save_button(admin_client):
    session_open(agent=AgentFactory(), opening_balance=Decimal("0"), actor=None)
    entry = AuditEntry.objects.get()

    response = admin_client.get(reverse("admin:auditing_auditentry_change", args=[entry.pk]))

    assert response.status_code == 200
    assert "session.opened" in response.content.decode()
    assert b'name="_save"' not in response.content
    assert b'name="_continue"' not in response.content


def test_posting_a_change_to_an_audit_entry_is_refused(admin_client):
    session_open(agent=AgentFactory(), opening_balance=Decimal("0"), actor=None)
    entry = AuditEntry.objects.get()

    response = admin_client.post(
        reverse("admin:auditing_auditentry_change", args=[entry.pk]),
        {"action": "session.closed", "actor_name": "mallory", "data": "{}"},
    )

    assert response.status_code == 403
    assert AuditEntry.objects.get() == entry
    assert AuditEntry.objects.values_list("action", "actor_name").get() == (
        "session.opened",
        "system",
    )


def test_audit_entries_cannot_be_added_or_deleted_in_the_admin(admin_client):
    session_open(agent=AgentFactory(), opening_balance=Decimal("0"), actor=None)
    entry = AuditEntry.objects.get()

    add = admin_client.get(reverse("admin:auditing_auditentry_add"))
    delete = admin_client.post(
        reverse("admin:auditing_auditentry_delete", args=[entry.pk]), {"post": "yes"}
    )
    changelist = admin_client.get(reverse("admin:auditing_auditentry_changelist"))

    assert add.status_code == 403
    assert delete.status_code == 403
    assert b'value="delete_selected"' not in changelist.content
    assert AuditEntry.objects.count() == 1


def test_a_session_cannot_be_edited_in_the_admin(admin_client):
    session = CashSessionFactory(closed=True, counted_balance=Decimal("9000.00"))

    response = admin_client.post(
        reverse("admin:payments_cashsession_change", args=[session.pk]),
        {"counted_balance": "10000.00", "status": "reconciled"},
    )

    assert response.status_code == 403
    session.refresh_from_db()
    assert session.counted_balance == Decimal("9000.00")
    assert session.status == SessionStatus.CLOSED


# Actions


def test_the_mark_paid_action_pays_the_selected_pending_commissions(
    admin_client, admin_user, audit_entries_written
):
    first, second = CommissionFactory.create_batch(2)
    already_paid = CommissionFactory(paid=True)
    not_selected = CommissionFactory()

    with audit_entries_written() as entries:
        response = admin_client.post(
            reverse("admin:payments_commission_changelist"),
            {"action": "mark_paid", "_selected_action": [first.pk, second.pk, already_paid.pk]},
            follow=True,
        )

    assert response.status_code == 200
    assert messages_of(response) == ["Marked 2 commissions paid."]
    for commission in (first, second):
        commission.refresh_from_db()
        assert commission.status == CommissionStatus.PAID
        assert commission.paid_by == admin_user
    not_selected.refresh_from_db()
    assert not_selected.status == CommissionStatus.PENDING
    assert len(entries) == 2
    for entry, commission in zip(entries, [first, second], strict=True):
        assert_audited(entry, action="commission.paid", actor=admin_user, subject=commission)


def test_the_mark_paid_action_never_pays_a_cancelled_commission(admin_client):
    cancelled = CommissionFactory(cancelled=True)

    admin_client.post(
        reverse("admin:payments_commission_changelist"),
        {"action": "mark_paid", "_selected_action": [cancelled.pk]},
    )

    cancelled.refresh_from_db()
    assert cancelled.status == CommissionStatus.CANCELLED
    assert not AuditEntry.objects.exists()


def test_the_reconcile_action_reconciles_counted_sessions_and_reports_the_others(
    admin_client, admin_user, audit_entries_written
):
    balanced = CashSessionFactory(closed=True)
    uncounted = CashSessionFactory(uncounted=True)

    with audit_entries_written() as entries:
        response = admin_client.post(
            reverse("admin:payments_cashsession_changelist"),
            {"action": "reconcile_sessions", "_selected_action": [balanced.pk, uncounted.pk]},
            follow=True,
        )

    assert response.status_code == 200
    assert sorted(messages_of(response)) == [
        "Reconciled 1 session.",
        f"Session {uncounted.number} was closed without a cash count; "
        "enter the counted cash to reconcile it. "
        "Open the session and use Reconcile to enter it.",
    ]
    balanced.refresh_from_db()
    assert balanced.status == SessionStatus.RECONCILED
    assert balanced.reconciled_by == admin_user
    uncounted.refresh_from_db()
    assert uncounted.status == SessionStatus.CLOSED
    [entry] = entries
    assert_audited(entry, action="session.reconciled", actor=admin_user, subject=balanced)


# Configuration


def configuration_form(**changes) -> dict:
    form = {
        "session_timeout_hours": "12",
        "default_commission_rate": "2.00",
        "reconciliation_tolerance": "0.00",
        "currency_code": "MGA",
    }
    form.update(changes)
    return form


def test_editing_the_configuration_writes_a_configuration_changed_entry(
    admin_client, admin_user, audit_entries_written
):
    url = reverse("admin:payments_systemconfiguration_change", args=[1])

    with audit_entries_written() as entries:
        response = admin_client.post(
            url, configuration_form(session_timeout_hours="8", default_commission_rate="2.50")
        )

    assert response.status_code == 302
    config = SystemConfiguration.load()
    assert config.session_timeout_hours == 8
    assert config.default_commission_rate == Decimal("2.50")
    [entry] = entries
    assert_audited(entry, action="configuration.changed", actor=admin_user, subject=config)
    assert entry.data == {"session_timeout_hours": 8, "default_commission_rate": "2.50"}


def test_a_configuration_change_whose_audit_entry_fails_is_not_saved(admin_client, monkeypatch):
    def audit_store_down(**kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(payments.services, "audit_entry_append", audit_store_down)

    with pytest.raises(RuntimeError, match="audit store down"):
        admin_client.post(
            reverse("admin:payments_systemconfiguration_change", args=[1]),
            configuration_form(session_timeout_hours="8"),
        )

    assert SystemConfiguration.load().session_timeout_hours == 12
    assert not AuditEntry.objects.exists()


def test_an_invalid_configuration_is_refused_and_not_audited(admin_client):
    response = admin_client.post(
        reverse("admin:payments_systemconfiguration_change", args=[1]),
        configuration_form(default_commission_rate="150.00"),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert SystemConfiguration.load().default_commission_rate == Decimal("2.00")
    assert not AuditEntry.objects.exists()


def test_saving_the_configuration_unchanged_writes_no_audit_entry(admin_client):
    response = admin_client.post(
        reverse("admin:payments_systemconfiguration_change", args=[1]), configuration_form()
    )

    assert response.status_code == 302
    assert not AuditEntry.objects.exists()


# Agents


def agent_form(agent, **changes) -> dict:
    form = {
        "user": agent.user.pk,
        "code": agent.code,
        "full_name": agent.full_name,
        "phone": agent.phone,
        "email": agent.email,
        "location": agent.location,
        "commission_rate": "" if agent.commission_rate is None else str(agent.commission_rate),
        "is_active": "on" if agent.is_active else "",
    }
    form.update(changes)
    return form


def test_editing_an_agent_writes_an_agent_changed_entry(
    admin_client, admin_user, audit_entries_written
):
    agent = AgentFactory(commission_rate=None)

    with audit_entries_written() as entries:
        response = admin_client.post(
            reverse("admin:payments_agent_change", args=[agent.pk]),
            agent_form(agent, commission_rate="3.00", location="Mahajanga"),
        )

    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.commission_rate == Decimal("3.00")
    [entry] = entries
    assert_audited(entry, action="agent.changed", actor=admin_user, subject=agent)
    assert entry.data == {"location": "Mahajanga", "commission_rate": "3.00"}


def test_saving_an_agent_unchanged_writes_no_audit_entry(admin_client):
    agent = AgentFactory()

    response = admin_client.post(
        reverse("admin:payments_agent_change", args=[agent.pk]), agent_form(agent)
    )

    assert response.status_code == 302
    assert not AuditEntry.objects.exists()


def test_an_agent_cannot_be_deleted_only_deactivated(admin_client):
    agent = AgentFactory()

    delete_page = admin_client.get(reverse("admin:payments_agent_delete", args=[agent.pk]))

    assert delete_page.status_code == 403
    assert Agent.objects.filter(pk=agent.pk).exists()


def test_the_currency_is_frozen_once_a_session_exists(admin_client, config):
    url = reverse("admin:payments_systemconfiguration_change", args=[config.pk])
    assert 'name="currency_code"' in admin_client.get(url).content.decode()

    session_open(agent=AgentFactory(), opening_balance=Decimal("0.00"), actor=None)

    assert 'name="currency_code"' not in admin_client.get(url).content.decode()


def _closed_uncounted_session():
    from django.db import transaction

    from payments.models import CashSession
    from payments.services import session_close_automatically

    session = session_open(agent=AgentFactory(), opening_balance=Decimal("5000.00"), actor=None)
    with transaction.atomic():
        locked = CashSession.objects.select_for_update().get(pk=session.pk)
        return session_close_automatically(session=locked, notes="timed out")


def test_an_uncounted_session_is_reconciled_on_its_page_with_the_count_and_notes(admin_client):
    session = _closed_uncounted_session()
    url = reverse("admin:payments_cashsession_reconcile", args=[session.pk])
    assert "not counted" in admin_client.get(url).content.decode()

    response = admin_client.post(url, {"counted_cash": "4000.00", "notes": "1,000 short"})

    assert response.status_code == 302
    session.refresh_from_db()
    assert session.status == SessionStatus.RECONCILED
    assert session.counted_balance == Decimal("4000.00")
    assert session.discrepancy == Decimal("-1000.00")
    assert session.reconciliation_notes == "1,000 short"
    entry = AuditEntry.objects.filter(action="session.reconciled").get()
    assert entry.actor.username == "admin"
    assert entry.data["counted_at_reconciliation"] is True


def test_the_reconcile_page_shows_a_refusal_and_changes_nothing(admin_client):
    session = _closed_uncounted_session()
    url = reverse("admin:payments_cashsession_reconcile", args=[session.pk])

    # A shortfall beyond the zero tolerance, without the explanation the service demands.
    response = admin_client.post(url, {"counted_cash": "4000.00", "notes": ""})

    assert response.status_code == 200
    assert response.content.decode().count("explain it in the notes") == 1
    session.refresh_from_db()
    assert session.status == SessionStatus.CLOSED
    assert session.counted_balance is None
    assert not AuditEntry.objects.filter(action="session.reconciled").exists()


def test_a_closed_session_page_links_to_reconcile(admin_client):
    session = _closed_uncounted_session()

    page = admin_client.get(reverse("admin:payments_cashsession_change", args=[session.pk]))

    assert (
        reverse("admin:payments_cashsession_reconcile", args=[session.pk]) in page.content.decode()
    )
