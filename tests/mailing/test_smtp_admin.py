"""The SMTP configuration in the admin: a write-only password, refused combinations, an
audit entry naming what changed, and a "send test email" page that reports the server's
answer. Sends go to a real SMTP server (aiosmtpd)."""

import datetime as dt
import html
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
from mailing.models import EmailAttempt, EmailMessage, EmailStatus, SmtpConfiguration
from mailing.passwords import smtp_password_decrypt
from mailing.selectors import outbox_status
from tests.commands import command_run
from tests.factories import AgentFactory, CashSessionFactory, StaffUserFactory
from tests.mailing.outbox import outbox_deliver_queued
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
def wakeups(monkeypatch) -> list[tuple[str, dict[str, Any]]]:
    """Worker wake-ups, captured instead of sent to the broker."""
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        "mailing.services.worker_wake", lambda task, **kwargs: sent.append((task.name, kwargs))
    )
    return sent


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
    assert smtp_password_decrypt(with_password.password) == PASSWORD

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
    assert smtp_password_decrypt(config.password) == PASSWORD


def test_a_new_password_replaces_the_stored_one(admin_client, with_password):
    assert_saved(save_form(admin_client, password="n3w-Pa55"))

    assert smtp_password_decrypt(SmtpConfiguration.load().password) == "n3w-Pa55"


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
    outbox_deliver_queued()  # the worker woken on commit

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
    admin_client, smtp_configuration, smtp_server, wakeups
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
    assert received.message["Message-ID"] == logged.message_id
    assert wakeups == []  # sent here, not handed to a worker


def test_send_test_email_with_the_server_down_shows_the_smtp_error(
    admin_client, smtp_configure, smtp_server_down, wakeups
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
    # A test is answered now, never retried later, and is no backlog.
    assert (logged.next_attempt_at, logged.gave_up) == (None, True)
    assert wakeups == []
    assert outbox_status().undelivered == 0


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


def retry(admin_client, *emails: EmailMessage):
    return admin_client.post(
        reverse("admin:mailing_emailmessage_changelist"),
        {"action": "retry_delivery", "_selected_action": [email.pk for email in emails]},
        follow=True,
    )


def logged(status: EmailStatus, **fields: Any) -> EmailMessage:
    return EmailMessage.objects.create(
        purpose="session_expired",
        recipients=["b@example.com"],
        subject=f"{status} {fields}",
        body_text="y",
        status=status,
        **fields,
    )


def test_retry_delivery_marks_failed_mail_due_and_wakes_the_sweeper_without_sending(
    admin_client, wakeups, django_capture_on_commit_callbacks
):
    now = timezone.now()
    sent = logged(EmailStatus.SENT, attempts=1, sent_at=now)
    retrying = logged(EmailStatus.FAILED, attempts=2, next_attempt_at=now + dt.timedelta(minutes=4))
    gave_up = logged(EmailStatus.FAILED, attempts=6)
    queued = logged(EmailStatus.QUEUED)
    sending = logged(
        EmailStatus.SENDING,
        attempts=1,
        attempt_id="9b2f3c1e-7a3d-4c55-9a7e-2f0d8c6b1a01",
        claimed_at=now,
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = retry(admin_client, sent, retrying, gave_up, queued, sending)

    assert [text for _, text in messages_of(response)] == [
        "3 message(s) will be retried by the sweeper within a minute.",
        "Left as they are: 1 already sent, 1 being sent now.",
    ]
    assert wakeups == [("mailing.email_sweep", {"trigger": "task"})]
    for email in (sent, retrying, gave_up, queued, sending):
        email.refresh_from_db()
    assert retrying.next_attempt_at <= timezone.now()  # due now, not in 4 minutes
    assert (retrying.attempts, retrying.attempt_limit) == (2, 6)
    # A message that gave up gets a fresh budget of six attempts.
    assert (gave_up.status, gave_up.attempts, gave_up.attempt_limit) == ("failed", 6, 12)
    assert gave_up.next_attempt_at <= timezone.now()
    assert (sent.status, queued.status, sending.status) == ("sent", "queued", "sending")
    assert sending.claimed_at == now  # the delivery holding it keeps it
    assert EmailAttempt.objects.count() == 0  # nothing was sent in the request
    [entry] = AuditEntry.objects.filter(action="email.retry_requested")
    assert entry.actor_name == "admin"
    assert entry.data == {"email_ids": [retrying.pk, gave_up.pk], "fresh_budget": [gave_up.pk]}


def test_retry_delivery_of_sent_mail_only_says_so(admin_client, wakeups):
    sent = logged(EmailStatus.SENT, attempts=1, sent_at=timezone.now())

    response = retry(admin_client, sent)

    assert [text for _, text in messages_of(response)] == ["Left as they are: 1 already sent."]
    assert wakeups == []
    assert not AuditEntry.objects.filter(action="email.retry_requested").exists()


def test_a_retried_message_that_gave_up_is_delivered_once_by_the_next_sweep(
    admin_client, project_email_backend, smtp_configuration, smtp_server
):
    gave_up = logged(EmailStatus.FAILED, attempts=6, last_error="Connection refused")

    retry(admin_client, gave_up)
    first = command_run("deliver_pending_email")
    second = command_run("deliver_pending_email")

    assert "Outbox: 1 sent" in first.stdout
    assert "Outbox: 0 sent" in second.stdout
    assert [mail.rcpt_tos for mail in smtp_server.received] == [["b@example.com"]]
    gave_up.refresh_from_db()
    assert (gave_up.status, gave_up.attempts, gave_up.last_error) == ("sent", 7, "")


def test_the_email_log_shows_where_each_message_stands_and_filters_by_it(admin_client):
    now = timezone.now()
    retrying = logged(EmailStatus.FAILED, attempts=1, next_attempt_at=now)
    gave_up = logged(EmailStatus.FAILED, attempts=6)
    sending = logged(
        EmailStatus.SENDING,
        attempts=1,
        attempt_id="9b2f3c1e-7a3d-4c55-9a7e-2f0d8c6b1a01",
        claimed_at=now,
    )
    logged(EmailStatus.SENT, attempts=1, sent_at=now)
    url = reverse("admin:mailing_emailmessage_changelist")

    page = admin_client.get(url).content.decode()
    filtered = {
        value: list(admin_client.get(url, {"delivery": value}).context["cl"].result_list)
        for value in ("retrying", "gave_up", "sending", "undelivered")
    }

    assert "gave up after 6 attempt(s)" in page
    assert "retry at" in page and "being sent since" in page
    assert filtered["retrying"] == [retrying]
    assert filtered["gave_up"] == [gave_up]
    assert filtered["sending"] == [sending]
    assert set(filtered["undelivered"]) == {retrying, gave_up, sending}
    detail = admin_client.get(reverse("admin:mailing_emailmessage_change", args=[gave_up.pk]))
    assert html.escape(gave_up.message_id) in detail.content.decode()


def test_the_outbox_sweeps_page_shows_the_last_run(admin_client):
    from mailing.delivery import outbox_sweep

    outbox_sweep(trigger="beat")

    page = admin_client.get(reverse("admin:mailing_outboxsweep_changelist"))

    assert page.status_code == 200
    assert "beat" in page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_send_test_email_talks_smtp_outside_the_requests_transaction(
    admin_client, smtp_configuration, smtp_server, monkeypatch
):
    from django.db import transaction

    from mailing import admin as mailing_admin

    seen = []
    real_send = mailing_admin.smtp_test_send

    def send(**kwargs):
        seen.append(transaction.get_connection().in_atomic_block)
        return real_send(**kwargs)

    monkeypatch.setattr(mailing_admin, "smtp_test_send", send)

    admin_client.post(SEND_TEST_URL, {"recipient": "ops@example.com"})

    assert seen == [False]
    assert EmailMessage.objects.get().status == EmailStatus.SENT
