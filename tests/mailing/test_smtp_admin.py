"""The SMTP configuration in the admin: a write-only password, refused combinations, an
audit entry naming what changed, and a "send test email" page that reports the server's
answer. Sends go to a real SMTP server (aiosmtpd)."""

import datetime as dt
import json
from io import StringIO
from typing import Any

import pytest
from django.contrib.messages import constants as message_levels
from django.core.management import call_command
from django.forms.models import model_to_dict
from django.urls import reverse
from django.utils import timezone

from auditing.models import AuditEntry
from mailing.models import EmailMessage, EmailStatus, SmtpConfiguration
from mailing.tasks import email_deliver
from tests.factories import AgentFactory, CashSessionFactory, StaffUserFactory
from tests.smtp_server import SMTP_FROM, SMTP_FROM_ADDRESS, SMTP_REPLY_TO, SmtpServer

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-Pa55"
CHANGE_URL = reverse("admin:mailing_smtpconfiguration_change", args=[1])
CHANGELIST_URL = reverse("admin:mailing_smtpconfiguration_changelist")
SEND_TEST_URL = reverse("admin:mailing_smtpconfiguration_send_test")


def form_data(server: SmtpServer | None = None, **overrides: Any) -> dict[str, Any]:
    """The change form as an administrator fills it in; booleans absent mean unticked."""
    data = {
        "enabled": "on",
        "host": server.host if server else "smtp.example.com",
        "port": str(server.port if server else 587),
        "username": "mailer",
        "password": "",
        "timeout": "5",
        "from_email": SMTP_FROM,
        "reply_to": SMTP_REPLY_TO,
        "_save": "Save",
    } | overrides
    return {name: value for name, value in data.items() if value is not None}


def save_form(client, server: SmtpServer | None = None, **overrides: Any):
    return client.post(CHANGE_URL, form_data(server, **overrides))


def assert_saved(response) -> None:
    # Saved: back to the list (which opens the singleton). A missing row would redirect
    # to the admin index instead, without saving anything.
    assert response.status_code == 302
    assert response["Location"] == CHANGELIST_URL


def form_errors(response) -> list[str]:
    form = response.context["adminform"].form
    return [message for messages in form.errors.values() for message in messages]


def smtp_audit_entries() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action="smtp_configuration.changed").order_by("sequence"))


def stored() -> dict[str, Any]:
    return model_to_dict(SmtpConfiguration.load(), exclude=["id"])


@pytest.fixture
def with_password(admin_client) -> SmtpConfiguration:
    SmtpConfiguration.load()
    assert_saved(save_form(admin_client, password=PASSWORD))
    return SmtpConfiguration.load()


@pytest.fixture
def retries(monkeypatch) -> list[dict[str, Any]]:
    scheduled: list[dict[str, Any]] = []
    monkeypatch.setattr(email_deliver, "apply_async", lambda **options: scheduled.append(options))
    return scheduled


# --- Singleton -------------------------------------------------------------------------


def test_changelist_redirects_to_the_one_configuration(admin_client):
    response = admin_client.get(CHANGELIST_URL)

    assert response.status_code == 302
    assert response["Location"] == CHANGE_URL
    assert list(SmtpConfiguration.objects.values_list("pk", flat=True)) == [1]


def test_the_configuration_cannot_be_added_or_deleted_from_the_admin(admin_client):
    SmtpConfiguration.load()

    assert admin_client.get(reverse("admin:mailing_smtpconfiguration_add")).status_code == 403
    delete_url = reverse("admin:mailing_smtpconfiguration_delete", args=[1])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert SmtpConfiguration.objects.count() == 1


# --- Write-only password ---------------------------------------------------------------


def test_saved_password_is_stored_but_never_rendered_in_the_change_form(
    admin_client, with_password
):
    assert with_password.password == PASSWORD

    response = admin_client.get(CHANGE_URL)

    assert response.status_code == 200
    assert PASSWORD not in response.content.decode()
    field = response.context["adminform"].form["password"]
    assert 'type="password"' in str(field)
    assert "value=" not in str(field)


def test_saving_with_an_empty_password_keeps_the_stored_one(admin_client, with_password):
    assert_saved(save_form(admin_client, password="", host="smtp2.example.com"))

    config = SmtpConfiguration.load()
    assert config.host == "smtp2.example.com"
    assert config.password == PASSWORD


def test_a_new_password_replaces_the_stored_one(admin_client, with_password):
    assert_saved(save_form(admin_client, password="n3w-Pa55"))

    assert SmtpConfiguration.load().password == "n3w-Pa55"


def test_clear_password_removes_the_stored_one(admin_client, with_password):
    assert_saved(save_form(admin_client, clear_password="on"))

    assert SmtpConfiguration.load().password == ""


def test_clear_password_wins_over_a_password_typed_at_the_same_time(admin_client, with_password):
    assert_saved(save_form(admin_client, clear_password="on", password="typed-too"))

    assert SmtpConfiguration.load().password == ""


# --- Refused combinations --------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"host": ""}, id="enabled-without-host"),
        pytest.param({"use_tls": "on", "use_ssl": "on"}, id="starttls-and-ssl"),
        pytest.param({"from_email": "Cash office <not-an-address>"}, id="bad-from-address"),
        pytest.param({"port": "0"}, id="port-0"),
        pytest.param({"port": "70000"}, id="port-above-65535"),
        # smtplib refuses a zero timeout with a ValueError, not an SMTP error.
        pytest.param({"timeout": "0"}, id="timeout-0"),
    ],
)
def test_refused_settings_show_an_error_and_change_nothing(admin_client, with_password, overrides):
    before = stored()
    entries = len(smtp_audit_entries())

    response = save_form(admin_client, **overrides)

    assert response.status_code == 200
    assert form_errors(response)
    assert stored() == before
    assert len(smtp_audit_entries()) == entries


def test_a_disabled_configuration_may_have_no_host(admin_client):
    SmtpConfiguration.load()
    assert_saved(save_form(admin_client, enabled=None, host=""))

    config = SmtpConfiguration.load()
    assert (config.enabled, config.host, config.in_use) == (False, "", False)


# --- Audit -----------------------------------------------------------------------------


def test_editing_writes_an_audit_entry_naming_the_changed_fields_never_the_password(
    admin_client, admin_user
):
    SmtpConfiguration.load()

    assert_saved(save_form(admin_client, password=PASSWORD))

    [entry] = smtp_audit_entries()
    assert entry.actor_id == admin_user.pk
    assert entry.subject_type == "mailing.smtpconfiguration"
    changed = entry.data["changed_fields"]
    assert {"enabled", "host", "username", "password", "from_email", "reply_to"} <= set(changed)
    assert "clear_password" not in changed
    stored_row = json.dumps(
        {field.name: str(getattr(entry, field.name)) for field in AuditEntry._meta.fields}
    )
    assert PASSWORD not in stored_row


def test_keeping_the_password_does_not_list_it_as_changed(admin_client, with_password):
    assert_saved(save_form(admin_client, password="", port="2525"))

    last = smtp_audit_entries()[-1]
    assert last.data["changed_fields"] == ["port"]


def test_clearing_the_password_lists_it_as_changed(admin_client, with_password):
    assert_saved(save_form(admin_client, clear_password="on"))

    last = smtp_audit_entries()[-1]
    assert last.data["changed_fields"] == ["password"]


def test_saving_unchanged_settings_writes_no_audit_entry(admin_client, with_password):
    entries = len(smtp_audit_entries())

    assert_saved(save_form(admin_client))

    assert len(smtp_audit_entries()) == entries


# --- Configured in the admin, used by the operations -----------------------------------


def test_settings_saved_in_the_admin_form_carry_an_operation_email_to_the_server(
    admin_client, project_email_backend, smtp_server, config, django_capture_on_commit_callbacks
):
    assert admin_client.get(CHANGELIST_URL, follow=True).status_code == 200
    assert_saved(save_form(admin_client, smtp_server, username=""))
    agent = AgentFactory(email="rova@agents.example.com")
    session = CashSessionFactory(agent=agent, opened_at=timezone.now() - dt.timedelta(hours=30))

    with django_capture_on_commit_callbacks(execute=True):
        call_command("close_expired_sessions", stdout=StringIO(), stderr=StringIO())

    [received] = smtp_server.received
    logged = EmailMessage.objects.get()
    assert logged.status == EmailStatus.SENT
    assert session.number in logged.subject
    assert received.mail_from == SMTP_FROM_ADDRESS
    assert received.rcpt_tos == ["rova@agents.example.com"]
    assert str(received.message["From"]) == SMTP_FROM
    assert str(received.message["Reply-To"]) == SMTP_REPLY_TO
    assert str(received.message["Subject"]).strip() == logged.subject


# --- Send test email -------------------------------------------------------------------


def messages_of(response) -> list[tuple[int, str]]:
    return [(message.level, message.message) for message in response.context["messages"]]


def test_send_test_email_page_offers_the_admins_address_and_names_the_server(
    admin_client, smtp_configuration, smtp_server
):
    response = admin_client.get(SEND_TEST_URL)

    assert response.status_code == 200
    assert response.context["form"]["recipient"].value() == "admin@example.com"
    assert f"{smtp_server.host}:{smtp_server.port}" in response.content.decode()


def test_the_change_form_links_to_the_send_test_email_page(admin_client):
    SmtpConfiguration.load()

    response = admin_client.get(CHANGE_URL)

    assert f'href="{SEND_TEST_URL}"' in response.content.decode()


def test_send_test_email_delivers_through_the_server_and_says_it_was_accepted(
    admin_client, smtp_configuration, smtp_server, retries
):
    response = admin_client.post(SEND_TEST_URL, {"recipient": "ops@example.com"}, follow=True)

    assert response.redirect_chain == [(CHANGE_URL, 302)]
    [(level, text)] = messages_of(response)
    assert level == message_levels.SUCCESS
    assert "ops@example.com" in text
    assert "accepted" in text
    [received] = smtp_server.received
    assert received.rcpt_tos == ["ops@example.com"]
    assert received.mail_from == SMTP_FROM_ADDRESS
    logged = EmailMessage.objects.get()
    assert (logged.purpose, logged.status, logged.attempts) == ("smtp_test", EmailStatus.SENT, 1)
    assert logged.recipients == ["ops@example.com"]
    assert "admin" in logged.about
    assert str(received.message["Subject"]).strip() == logged.subject
    assert retries == []


def test_send_test_email_with_the_server_down_shows_the_smtp_error(
    admin_client, smtp_configure, smtp_server_down, retries
):
    smtp_configure(smtp_server_down)

    response = admin_client.post(SEND_TEST_URL, {"recipient": "ops@example.com"}, follow=True)

    logged = EmailMessage.objects.get()
    assert (logged.purpose, logged.status, logged.attempts) == ("smtp_test", EmailStatus.FAILED, 1)
    assert "Connection refused" in logged.last_error
    [(level, text)] = messages_of(response)
    assert level == message_levels.ERROR
    assert logged.last_error in text
    assert "Connection refused" in response.content.decode()
    assert retries == []  # a test is answered now, never retried later


def test_send_test_email_never_shows_the_smtp_password(
    admin_client, smtp_configure, smtp_server, with_password
):
    smtp_configure(smtp_server, password=PASSWORD)

    page = admin_client.get(SEND_TEST_URL)
    sent = admin_client.post(SEND_TEST_URL, {"recipient": "ops@example.com"}, follow=True)

    assert PASSWORD not in page.content.decode()
    assert PASSWORD not in sent.content.decode()
    assert PASSWORD not in EmailMessage.objects.get().last_error


def test_send_test_email_refuses_a_malformed_address_and_sends_nothing(
    admin_client, smtp_configuration, smtp_server
):
    response = admin_client.post(SEND_TEST_URL, {"recipient": "not an address"})

    assert response.status_code == 200
    assert response.context["form"].errors["recipient"]
    assert not EmailMessage.objects.exists()
    assert smtp_server.received == []


def test_send_test_email_needs_the_permission_to_change_the_configuration(
    client, smtp_configuration, smtp_server
):
    StaffUserFactory(username="clerk")
    client.login(username="clerk", password="pw")

    response = client.post(SEND_TEST_URL, {"recipient": "ops@example.com"})

    assert response.status_code == 403
    assert not EmailMessage.objects.exists()
    assert smtp_server.received == []


def test_a_view_only_administrator_never_sees_the_password(client, with_password):
    from django.contrib.auth.models import Permission

    viewer = StaffUserFactory()
    viewer.user_permissions.add(Permission.objects.get(codename="view_smtpconfiguration"))
    client.force_login(viewer)

    response = client.get(CHANGE_URL)

    page = response.content.decode()
    assert response.status_code == 200
    assert "smtp.example.com" in page  # the viewer does see the settings...
    assert PASSWORD not in page  # ...but never the password


def test_retry_delivery_sends_failed_messages_once_and_never_resends_sent_ones(
    admin_client, project_email_backend, smtp_server
):
    from mailing.delivery import email_send

    admin_client.get(CHANGELIST_URL, follow=True)  # creates the singleton
    assert_saved(save_form(admin_client, smtp_server, username=""))
    sent = EmailMessage.objects.create(
        purpose="smtp_test", recipients=["a@example.com"], subject="sent", body_text="x"
    )
    assert email_send(email_id=sent.pk) is True
    failed = EmailMessage.objects.create(
        purpose="smtp_test",
        recipients=["b@example.com"],
        subject="failed",
        body_text="y",
        status=EmailStatus.FAILED,
        attempts=6,
    )
    already_received = len(smtp_server.received)

    admin_client.post(
        reverse("admin:mailing_emailmessage_changelist"),
        {"action": "retry_delivery", "_selected_action": [sent.pk, failed.pk]},
    )

    failed.refresh_from_db()
    assert failed.status == EmailStatus.SENT
    assert failed.attempts == 7
    assert [mail.rcpt_tos for mail in smtp_server.received[already_received:]] == [
        ["b@example.com"]
    ]
