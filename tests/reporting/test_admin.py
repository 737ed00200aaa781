"""Stored commission reports in the admin, and their emails in the email log."""

import pytest
from django.urls import reverse
from django.utils import timezone

from mailing.models import EmailMessage
from reporting.periods import period_bounds
from reporting.selectors import commission_figures_select
from reporting.services import commission_report_store
from tests.reporting.helpers import NOW, SUBJECT, october_takings, three_agents

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]


@pytest.fixture
def october(config):
    return october_takings(three_agents())


def october_report_store(*, trigger: str):
    start, end = period_bounds(year=2026, month=10)
    report, _ = commission_report_store(
        year=2026,
        month=10,
        trigger=trigger,
        generated_at=timezone.now(),
        figures=commission_figures_select(start=start, end=end),
        recipients=["chief@example.com"],
    )
    return report


def test_the_admin_shows_a_stored_report_with_its_lines_read_only(clock, october, admin_client):
    report = october_report_store(trigger="beat")
    report_url = reverse("admin:reporting_commissionreport_change", args=[report.pk])

    changelist = admin_client.get(
        reverse("admin:reporting_commissionreport_changelist"), {"trigger": "beat", "year": 2026}
    )
    page = admin_client.get(report_url)

    assert changelist.status_code == 200
    assert report_url in changelist.content.decode()
    assert page.status_code == 200
    content = page.content.decode()
    assert "Hery Rakoto" in content and "Voahirana Rabe" in content
    # Who it was sent to, and the email that carried it.
    assert "Sent to (each address once, unless resent on purpose)" in content
    assert "chief@example.com" in content
    email = EmailMessage.objects.get()
    assert reverse("admin:mailing_emailmessage_change", args=[email.pk]) in content
    assert 'name="_save"' not in content
    assert admin_client.get(reverse("admin:reporting_commissionreport_add")).status_code == 403


def test_the_email_log_is_searchable_by_recipient_and_filterable_by_purpose(
    clock, october, admin_client
):
    october_report_store(trigger="manual")
    [email] = EmailMessage.objects.all()
    url = reverse("admin:mailing_emailmessage_changelist")

    found = admin_client.get(url, {"q": "chief@", "purpose": "commission_report"})
    missed = admin_client.get(url, {"q": "nobody@"})
    page = admin_client.get(reverse("admin:mailing_emailmessage_change", args=[email.pk]))

    change_url = reverse("admin:mailing_emailmessage_change", args=[email.pk])
    assert change_url in found.content.decode()
    assert change_url not in missed.content.decode()
    assert page.status_code == 200
    assert SUBJECT in page.content.decode()
