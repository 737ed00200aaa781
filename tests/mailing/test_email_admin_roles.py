"""The email log in the admin: every role that may look after mail sees who was written to,
about what and how delivery went; only administrators (``mailing.view_email_content``) read
what the messages say and their attachments. The list fits a laptop: the status first,
dates on the local clock to the minute."""

import datetime as dt
import re

import pytest
import time_machine
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse
from django.utils import translation

from mailing.models import EmailMessage, EmailStatus
from tests.factories import StaffUserFactory

pytestmark = pytest.mark.django_db

# 10:00 in Antananarivo (UTC+3), the settings' time zone.
CREATED = dt.datetime(2026, 5, 20, 7, 0, tzinfo=dt.UTC)
CHANGELIST = reverse("admin:mailing_emailmessage_changelist")
BODY_SECRETS = ("SECRET TEXT BODY", "SECRET HTML BODY", "report-2026-04.csv", "SECRET;CSV")


@pytest.fixture
def email() -> EmailMessage:
    with time_machine.travel(CREATED, tick=False):
        return EmailMessage.objects.create(
            purpose="commission_report",
            about="2026-04",
            recipients=["boss@example.com", "supervisor@example.com"],
            subject="Commission report 2026-04",
            body_text="SECRET TEXT BODY",
            body_html="<p>SECRET HTML BODY</p>",
            attachments=[
                {"filename": "report-2026-04.csv", "mimetype": "text/csv", "content": "SECRET;CSV"}
            ],
            status=EmailStatus.FAILED,
            attempts=2,
            last_error="550 mailbox unavailable",
            next_attempt_at=CREATED + dt.timedelta(minutes=4),
        )


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def mail_viewer():
    """A staff user given the log by hand, without the content permission."""
    user = StaffUserFactory(username="mail-desk")
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="mailing",
            codename__in=["view_emailmessage", "view_emailattempt"],
        )
    )
    return user


@pytest.fixture
def administrator():
    user = StaffUserFactory(username="ops-admin")
    user.groups.add(Group.objects.get(name="Administrators"))
    return user


def page_of(client, email) -> str:
    response = client.get(reverse("admin:mailing_emailmessage_change", args=[email.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_without_the_content_permission_the_log_shows_no_body_and_no_attachment(email, mail_viewer):
    page = page_of(client_for(mail_viewer), email)
    for shown in (
        "Commission report 2026-04",
        "boss@example.com",
        "Failed",
        "550 mailbox unavailable",
    ):
        assert shown in page
    for secret in BODY_SECRETS:
        assert secret not in page


@pytest.mark.parametrize(
    "lookup",
    [
        "body_text__contains=SECRET TEXT",
        "body_html__icontains=secret html",
        "attachments__icontains=SECRET;CSV",
    ],
)
def test_without_the_content_permission_the_content_cannot_be_filtered_on(
    email, mail_viewer, administrator, lookup
):
    """A filter that matches or not would read a body a letter at a time: Django refuses a
    lookup its admin does not allow with a 400 (DisallowedModelAdminLookup)."""
    refused = client_for(mail_viewer).get(f"{CHANGELIST}?{lookup}")
    assert refused.status_code == 400

    allowed = client_for(administrator).get(f"{CHANGELIST}?{lookup}")
    assert allowed.status_code == 200
    assert allowed.context["cl"].result_count == 1


@pytest.mark.parametrize("who", ["administrator", "superuser"])
def test_administrators_read_the_body_and_the_attachments(email, administrator, admin_user, who):
    user = administrator if who == "administrator" else admin_user
    page = page_of(client_for(user), email)
    for secret in BODY_SECRETS:
        assert secret in page


@pytest.mark.parametrize("group", ["Supervisors", "Auditors"])
def test_supervisors_and_auditors_do_not_open_the_email_log(email, group):
    user = StaffUserFactory()
    user.groups.add(Group.objects.get(name=group))
    client = client_for(user)
    assert client.get(CHANGELIST).status_code == 403
    url = reverse("admin:mailing_emailmessage_change", args=[email.pk])
    assert client.get(url).status_code == 403


def test_the_list_shows_the_status_first_and_local_dates_to_the_minute(email, mail_viewer):
    response = client_for(mail_viewer).get(CHANGELIST)
    columns = [
        str(header["text"]) for header in response.context["result_headers"] if header["text"]
    ]
    assert columns == ["status", "created", "subject", "recipients", "attempts", "next", "sent"]
    cells = {
        match["field"]: match["text"]
        for match in re.finditer(
            r'class="field-(?P<field>[a-z_]+)[^"]*">(?:<a [^>]*>)?(?P<text>[^<]*)',
            "".join(str(cell) for cell in response.context["results"][0]),
        )
    }
    assert cells["status"] == "Failed"
    assert cells["created"] == "2026-05-20 10:00"
    assert cells["delivery"] == "retry at 2026-05-20 10:04"
    assert cells["sent"] == "-"  # not sent yet
    for secret in BODY_SECRETS:
        assert secret not in response.content.decode()


def test_the_new_columns_and_the_permission_are_in_french(email, administrator):
    response = client_for(administrator).get(CHANGELIST, HTTP_ACCEPT_LANGUAGE="fr")
    columns = [str(header["text"]) for header in response.context["result_headers"]]
    assert {"créé", "envoyé le"} <= set(columns)
    [(_codename, label)] = EmailMessage._meta.permissions
    with translation.override("fr"):
        assert str(label) == "Peut lire le contenu et les pièces jointes des e-mails"


def test_an_unknown_delivery_filter_is_refused_not_ignored(email, administrator):
    response = client_for(administrator).get(f"{CHANGELIST}?delivery=xyz")
    assert response.status_code == 302 and response.url.endswith("?e=1")
