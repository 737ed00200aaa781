"""The SMTP password is encrypted at rest with SMTP_PASSWORD_KEYS (mailing/passwords.py):
the database holds a Fernet token only, the admin never shows it back, a real SMTP server
receives the password typed in the admin, a wrong key is one sentence on the message where
the operator looks, a key is rotated without typing the password again, and a password
stored in clear before is encrypted by the migration."""

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from auditing.models import AuditEntry
from mailing.checks import smtp_password_readable_check
from mailing.models import EmailAttempt, EmailMessage, EmailStatus, SmtpConfiguration
from mailing.passwords import (
    SmtpPasswordUndecryptable,
    smtp_password_decrypt,
    smtp_password_encrypt,
)
from project import key_rules
from tests.mailing.test_smtp_admin import CHANGE_URL, SEND_TEST_URL, assert_saved, save_form
from tests.migrations import migrated, migrated_to_latest
from tests.smtp_server import SmtpServer
from tests.test_settings import _production, _refused

pytestmark = pytest.mark.django_db

# ASCII: smtplib encodes the AUTH exchange as ASCII.
LOGIN = ("mailer", "s3cret Pa55, with spaces: &!")
UNDECRYPTABLE = "The SMTP password cannot be decrypted with SMTP_PASSWORD_KEYS"
# aiosmtpd warns that AUTH without TLS is unsafe: on a loopback test server it is what we want.
auth_without_tls = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def stored_column() -> str:
    """What the database itself holds, read past the model."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM mailing_smtpconfiguration WHERE id = 1")
        return cursor.fetchone()[0]


def new_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def auth_server():
    server = SmtpServer(login=LOGIN).start()
    yield server
    server.stop()


# --- At rest ---------------------------------------------------------------------------


def test_the_database_holds_a_token_never_the_password_typed_in_the_admin(admin_client):
    SmtpConfiguration.load()

    assert_saved(save_form(admin_client, password=LOGIN[1]))

    column = stored_column()
    assert column
    assert LOGIN[1] not in column
    assert smtp_password_decrypt(column) == LOGIN[1]
    page = admin_client.get(CHANGE_URL).content.decode()
    assert LOGIN[1] not in page
    assert column not in page  # not even the token


def test_each_save_of_a_new_password_draws_a_fresh_token_and_empty_stays_empty():
    first, second = smtp_password_encrypt("same"), smtp_password_encrypt("same")

    assert first != second  # a token says nothing about whether two passwords are equal
    assert smtp_password_encrypt("") == "" and smtp_password_decrypt("") == ""


# --- Used for AUTH after the round-trip -------------------------------------------------


@auth_without_tls
def test_the_password_typed_in_the_admin_is_the_one_the_smtp_server_receives(
    admin_client, project_email_backend, auth_server
):
    SmtpConfiguration.load()
    assert_saved(save_form(admin_client, auth_server, username=LOGIN[0], password=LOGIN[1]))

    response = admin_client.post(SEND_TEST_URL, {"recipient": "ops@example.com"}, follow=True)

    logged = EmailMessage.objects.get()
    assert logged.status == EmailStatus.SENT, logged.last_error
    assert auth_server.authenticator.logins == [LOGIN[0]]
    [received] = auth_server.received
    assert received.rcpt_tos == ["ops@example.com"]
    assert "the server accepted it" in response.content.decode()


# --- A key that does not fit ------------------------------------------------------------


@auth_without_tls
def test_a_password_no_key_decrypts_is_one_sentence_on_the_message_and_nothing_is_sent(
    admin_client, smtp_configure, auth_server, settings
):
    smtp_configure(auth_server, username=LOGIN[0], password=LOGIN[1])
    settings.SMTP_PASSWORD_KEYS = [new_key()]  # the key that encrypted it is gone

    response = admin_client.post(SEND_TEST_URL, {"recipient": "ops@example.com"}, follow=True)

    logged = EmailMessage.objects.get()
    assert logged.status == EmailStatus.FAILED
    assert logged.last_error.startswith(f"SmtpPasswordUndecryptable: {UNDECRYPTABLE}")
    assert "Traceback" not in logged.last_error
    assert EmailAttempt.objects.get(email=logged).error == logged.last_error
    assert response.status_code == 200
    assert UNDECRYPTABLE in response.content.decode()
    assert auth_server.authenticator.logins == [] and auth_server.received == []


def test_a_token_that_is_not_one_is_refused_the_same_way(settings):
    with pytest.raises(SmtpPasswordUndecryptable, match=UNDECRYPTABLE):
        smtp_password_decrypt("left in clear by hand")


# --- Rotation ---------------------------------------------------------------------------


def test_a_new_key_first_still_reads_the_old_token_and_the_command_moves_it_to_the_new_key(
    settings,
):
    old, new = settings.SMTP_PASSWORD_KEYS[0], new_key()
    config = SmtpConfiguration.load()
    config.password = smtp_password_encrypt(LOGIN[1])
    config.save()
    settings.SMTP_PASSWORD_KEYS = [new, old]
    assert smtp_password_decrypt(SmtpConfiguration.load().password) == LOGIN[1]

    out = StringIO()
    call_command("smtp_password_reencrypt", stdout=out)

    assert "encrypted again with the first key" in out.getvalue()
    settings.SMTP_PASSWORD_KEYS = [new]  # the old key dropped
    assert smtp_password_decrypt(stored_column()) == LOGIN[1]
    entry = AuditEntry.objects.filter(action="smtp_configuration.password_reencrypted").get()
    assert LOGIN[1] not in str(entry.data)


def test_reencrypting_with_no_key_that_reads_the_password_fails_and_changes_nothing(settings):
    config = SmtpConfiguration.load()
    config.password = smtp_password_encrypt(LOGIN[1])
    config.save()
    before = stored_column()
    settings.SMTP_PASSWORD_KEYS = [new_key()]

    with pytest.raises(CommandError, match=UNDECRYPTABLE) as raised:
        call_command("smtp_password_reencrypt", stdout=StringIO())

    assert raised.value.returncode == 1
    assert stored_column() == before


def test_reencrypting_without_a_stored_password_says_so():
    SmtpConfiguration.load()
    out = StringIO()

    call_command("smtp_password_reencrypt", stdout=out)

    assert out.getvalue() == "No SMTP password is stored: nothing to encrypt.\n"
    assert stored_column() == ""


# --- The migration ----------------------------------------------------------------------


@pytest.fixture
def at_latest_afterwards(transactional_db):
    yield
    migrated_to_latest()


@pytest.mark.django_db(transaction=True)
def test_a_password_stored_in_clear_is_encrypted_by_the_migration_and_back(at_latest_afterwards):
    before = [("mailing", "0003_outbox")]
    old = migrated(*before).loader.project_state(before).apps
    old.get_model("mailing", "SmtpConfiguration").objects.create(
        pk=1, host="smtp.example.com", username="mailer", password=LOGIN[1]
    )

    migrated_to_latest()

    assert LOGIN[1] not in stored_column()
    assert smtp_password_decrypt(stored_column()) == LOGIN[1]

    migrated(*before)

    assert stored_column() == LOGIN[1]


@pytest.mark.django_db(transaction=True)
def test_a_long_password_keeps_its_whole_token_through_every_migration(at_latest_afterwards):
    """A password of 200 characters gives a token longer than 255: no later migration may
    cast the column back to varchar(255), which PostgreSQL would truncate without a word."""
    long_password = "p" * 200
    before = [("mailing", "0003_outbox")]
    old = migrated(*before).loader.project_state(before).apps
    old.get_model("mailing", "SmtpConfiguration").objects.create(
        pk=1, host="smtp.example.com", username="mailer", password=long_password
    )

    migrated_to_latest()

    assert len(stored_column()) > 255
    assert smtp_password_decrypt(stored_column()) == long_password


# --- Settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("", "SMTP_PASSWORD_KEYS is empty"),
        ("not-a-key", "SMTP_PASSWORD_KEYS key 1 is not a Fernet key"),
        (f"{Fernet.generate_key().decode()},nope", "SMTP_PASSWORD_KEYS key 2 is not a Fernet"),
        (key_rules.DEV_SMTP_PASSWORD_KEY, "SMTP_PASSWORD_KEYS key 1 is the development key"),
    ],
    ids=["empty", "malformed", "second-malformed", "dev-key"],
)
def test_production_refuses_smtp_password_keys_that_do_not_protect_it(keys, message):
    result = _production(SMTP_PASSWORD_KEYS=keys)

    _refused(result, message)
    assert "nope" not in result.stderr.replace("SMTP_PASSWORD_KEYS", "")


def test_production_starts_with_two_keys_for_a_rotation():
    result = _production(SMTP_PASSWORD_KEYS=f"{new_key()},{new_key()}")

    assert result.returncode == 0, result.stderr


def test_the_reencrypt_command_explains_itself_and_its_exit_codes():
    shown = subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", "smtp_password_reencrypt", "--help"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "first key of SMTP_PASSWORD_KEYS" in text
    assert "0 done (or no password stored), 1 no key decrypts it" in text


def test_check_deploy_errors_when_no_key_decrypts_the_stored_password(settings):
    config = SmtpConfiguration.load()
    config.password = smtp_password_encrypt(LOGIN[1])
    config.save()
    assert smtp_password_readable_check(None) == []

    settings.SMTP_PASSWORD_KEYS = [new_key()]
    [error] = smtp_password_readable_check(None)

    assert error.id == "mailing.E002"
    assert UNDECRYPTABLE in error.msg
