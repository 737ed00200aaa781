"""Moving the email log and the SMTP configuration from `reporting` to `mailing` keeps an
existing database's rows, permissions and constraints, and can be undone.

The tests migrate the test database back to just before the move, write rows with the
historical models, migrate forward (or the other way round) and read everything back.
The database always ends at the latest migrations: later tests share it.
"""

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, models, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.graph import MigrationGraph

from mailing.models import EmailAttempt, EmailMessage, SmtpConfiguration
from mailing.passwords import smtp_password_decrypt, smtp_password_encrypt

pytestmark = pytest.mark.django_db(transaction=True)

MOVED_MODELS = ("emailattempt", "emailmessage", "smtpconfiguration")
OLD_TABLES = {f"reporting_{model}" for model in MOVED_MODELS}
NEW_TABLES = {f"mailing_{model}" for model in MOVED_MODELS}
BEFORE_MOVE = ("reporting", "0002_smtp_configuration")

T0 = dt.datetime(2026, 11, 2, 6, 30, tzinfo=dt.UTC)
ATTACHMENTS = [
    {
        "filename": "commissions-2026-10.csv",
        "mimetype": "text/csv",
        "content": "agent,earned\nA-001,1250.00\nA-002,980.50\n",
    }
]

Migrations = list[tuple[str, str | None]]


def targets_before_move(graph: MigrationGraph) -> Migrations:
    """Every app's latest migration that does not need `mailing`, and `mailing` unapplied."""
    targets: Migrations = []
    for app, name in sorted(graph.leaf_nodes()):
        if app == "mailing":
            targets.append((app, None))
            continue
        node: tuple[str, str] | None = (app, name)
        while node and any(parent[0] == "mailing" for parent in graph.forwards_plan(node)):
            earlier = [p.key for p in graph.node_map[node].parents if p.key[0] == app]
            node = earlier[0] if earlier else None
        targets.append((app, node[1] if node else None))
    return targets


def migrated(targets: Migrations) -> MigrationExecutor:
    """Migrate to ``targets``; a new executor, which reads the applied migrations afresh."""
    MigrationExecutor(connection).migrate(targets)
    return MigrationExecutor(connection)


def migrated_before_move() -> tuple[MigrationExecutor, Migrations]:
    targets = targets_before_move(MigrationExecutor(connection).loader.graph)
    assert BEFORE_MOVE in targets and ("mailing", None) in targets, targets
    executor = migrated(targets)
    assert not any(app == "mailing" for app, _ in executor.loader.applied_migrations)
    return executor, targets


def migrated_to_latest() -> MigrationExecutor:
    executor = migrated(MigrationExecutor(connection).loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()
    return executor


@pytest.fixture
def at_latest_afterwards(transactional_db) -> Iterator[None]:
    """Whatever happens, put the schema back at the latest migrations before the flush."""
    yield
    executor = migrated_to_latest()
    assert not executor.migration_plan(executor.loader.graph.leaf_nodes())


# Added after the move by mailing 0003 (the outbox); tests/mailing/test_outbox_migration.py
# checks how they are filled in.
OUTBOX_FIELDS = {
    "message_id",
    "attempt_limit",
    "next_attempt_at",
    "attempt_id",
    "claimed_at",
    "finished_at",
}


def values(instance: models.Model) -> dict[str, Any]:
    """The fields the move carries (every field but the outbox's)."""
    instance.refresh_from_db()
    return {
        field.attname: getattr(instance, field.attname)
        for field in instance._meta.concrete_fields
        if field.attname not in OUTBOX_FIELDS
    }


def tables() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_name = ANY(%s)",
            [sorted(OLD_TABLES | NEW_TABLES)],
        )
        return {name for (name,) in cursor.fetchall()}


def check_constraints(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c'",
            [table],
        )
        return {name for (name,) in cursor.fetchall()}


def index_names(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes"
            " WHERE schemaname = current_schema() AND tablename = %s",
            [table],
        )
        return {name for (name,) in cursor.fetchall()}


def rows(sql: str) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def group_permissions(group_id: int) -> list[tuple[str, str]]:
    """(app_label, codename) of the group's permissions, read with SQL: works at any state."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ct.app_label, p.codename FROM auth_group_permissions gp"
            " JOIN auth_permission p ON p.id = gp.permission_id"
            " JOIN django_content_type ct ON ct.id = p.content_type_id"
            " WHERE gp.group_id = %s ORDER BY 1, 2",
            [group_id],
        )
        return list(cursor.fetchall())


def content_types(app_label: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT model FROM django_content_type WHERE app_label = %s AND model = ANY(%s)"
            " ORDER BY model",
            [app_label, list(MOVED_MODELS)],
        )
        return [model for (model,) in cursor.fetchall()]


def email_log_write(message_model, attempt_model) -> dict[str, Any]:
    """One message sent at the first attempt, one failed after two; returns them all."""
    sent = message_model.objects.create(
        purpose="commission_report",
        about="October 2026",
        subject_type="reporting.commissionreport",
        subject_id="17",
        recipients=["director@example.com", "Compta <accounts@example.com>"],
        subject="Rapport des commissions — octobre 2026",
        body_text="Bonjour,\n\nLe rapport d'octobre est joint.\n",
        body_html="<p>Bonjour,</p><p>Le rapport d&#x27;octobre est joint.</p>",
        attachments=ATTACHMENTS,
        status="sent",
        attempts=1,
        last_attempt_at=T0,
        sent_at=T0,
    )
    failed = message_model.objects.create(
        purpose="session_expired",
        about="Session S-0042",
        subject_type="payments.cashsession",
        subject_id="42",
        recipients=["supervisor@example.com"],
        subject="Session S-0042 closed automatically",
        body_text="The session expired with 3 payments pending.",
        attachments=[],
        status="failed",
        attempts=2,
        last_error="SMTPRecipientsRefused: 550 mailbox unavailable",
        last_attempt_at=T0 + dt.timedelta(minutes=5),
    )
    attempts = [
        attempt_model.objects.create(email=sent, attempted_at=T0, succeeded=True),
        attempt_model.objects.create(
            email=failed, attempted_at=T0, succeeded=False, error="Connection refused"
        ),
        attempt_model.objects.create(
            email=failed,
            attempted_at=T0 + dt.timedelta(minutes=5),
            succeeded=False,
            error="SMTPRecipientsRefused: 550 mailbox unavailable",
        ),
    ]
    return {
        "messages": [values(sent), values(failed)],
        "attempts": [values(attempt) for attempt in attempts],
    }


SMTP_FIELDS = {
    "enabled": True,
    "host": "smtp.example.com",
    "port": 2525,
    "username": "cash-office",
    "password": "s3cret: pa$$ word ✓",
    "use_tls": True,
    "use_ssl": False,
    "timeout": 12,
    "from_email": "Cash office <cash-office@example.com>",
    "reply_to": "accounts@example.com",
}


def test_moving_the_email_tables_keeps_rows_permissions_and_constraints(at_latest_afterwards):
    executor, targets = migrated_before_move()
    assert tables() == OLD_TABLES
    old = executor.loader.project_state([t for t in targets if t[1] is not None]).apps

    log = email_log_write(
        old.get_model("reporting", "EmailMessage"), old.get_model("reporting", "EmailAttempt")
    )
    smtp = values(
        old.get_model("reporting", "SmtpConfiguration").objects.create(pk=1, **SMTP_FIELDS)
    )

    # A database from before the move knows only reporting's content types; its groups hold
    # permissions on them.
    OldContentType = old.get_model("contenttypes", "ContentType")
    OldPermission = old.get_model("auth", "Permission")
    OldContentType.objects.filter(app_label="mailing", model__in=MOVED_MODELS).delete()
    content_type, _ = OldContentType.objects.get_or_create(
        app_label="reporting", model="emailmessage"
    )
    permission, _ = OldPermission.objects.get_or_create(
        content_type=content_type,
        codename="change_emailmessage",
        defaults={"name": "Can change email message"},
    )
    clerks = old.get_model("auth", "Group").objects.create(name="Mail clerks")
    clerks.permissions.add(permission)
    clerk = old.get_model("auth", "User").objects.create(username="clerk", password="!")
    clerk.groups.add(clerks)
    assert group_permissions(clerks.pk) == [("reporting", "change_emailmessage")]

    migrated_to_latest()

    # The rows, field by field, read through the current models.
    messages = EmailMessage.objects.order_by("pk")
    assert [values(message) for message in messages] == log["messages"]
    assert [values(attempt) for attempt in EmailAttempt.objects.order_by("pk")] == log["attempts"]
    sent, failed = messages
    assert sent.recipients == ["director@example.com", "Compta <accounts@example.com>"]
    assert sent.attachments == ATTACHMENTS
    assert (sent.subject_type, sent.subject_id, sent.status) == (
        "reporting.commissionreport",
        "17",
        "sent",
    )
    assert [a.pk for a in sent.attempt_log.all()] == [log["attempts"][0]["id"]]
    assert [(a.succeeded, a.error) for a in failed.attempt_log.all()] == [
        (False, "Connection refused"),
        (False, "SMTPRecipientsRefused: 550 mailbox unavailable"),
    ]
    config = SmtpConfiguration.objects.get()
    moved = values(config)
    # The same configuration, its password now encrypted (mailing 0004).
    assert smtp_password_decrypt(moved.pop("password")) == smtp.pop("password")
    assert moved == smtp
    assert config.pk == 1
    assert {name: getattr(config, name) for name in SMTP_FIELDS} == {
        **SMTP_FIELDS,
        "password": config.password,
    }

    # The tables, the index and the check constraint carry mailing's names.
    assert tables() == NEW_TABLES
    assert {index.name for index in EmailMessage._meta.indexes} <= index_names(
        "mailing_emailmessage"
    )
    constraints = check_constraints("mailing_smtpconfiguration")
    assert "mailing_smtp_tls_xor_ssl" in constraints
    assert "reporting_smtp_tls_xor_ssl" not in constraints
    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE mailing_smtpconfiguration SET use_tls = true, use_ssl = true WHERE id = 1"
            )
    with pytest.raises(IntegrityError), transaction.atomic():
        EmailAttempt.objects.create(email_id=failed.pk + 1000, attempted_at=T0, succeeded=True)

    # The permission went with its content type.
    assert list(
        Group.objects.get(pk=clerks.pk).permissions.values_list(
            "content_type__app_label", "codename"
        )
    ) == [("mailing", "change_emailmessage")]
    assert ContentType.objects.filter(app_label="mailing", model="emailmessage").count() == 1
    assert content_types("mailing") == sorted(MOVED_MODELS)
    assert content_types("reporting") == []
    user = get_user_model().objects.get(pk=clerk.pk)
    assert user.has_perm("mailing.change_emailmessage")
    assert not Permission.objects.filter(content_type__app_label="reporting").filter(
        codename__endswith="emailmessage"
    )

    # New rows take ids after the old ones.
    newer = EmailMessage.objects.create(
        purpose="test", recipients=["a@example.com"], subject="After the move", body_text="."
    )
    assert newer.pk > failed.pk
    attempt = EmailAttempt.objects.create(email=newer, attempted_at=T0, succeeded=True)
    assert attempt.pk > max(a["id"] for a in log["attempts"])


def test_the_move_can_be_undone_and_redone(at_latest_afterwards):
    log = email_log_write(EmailMessage, EmailAttempt)
    config = SmtpConfiguration(
        **{**SMTP_FIELDS, "password": smtp_password_encrypt(SMTP_FIELDS["password"])}
    )
    config.save()
    smtp = values(config)
    content_type, _ = ContentType.objects.get_or_create(app_label="mailing", model="emailmessage")
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type,
        codename="change_emailmessage",
        defaults={"name": "Can change email message"},
    )
    clerks = Group.objects.create(name="Mail clerks")
    clerks.permissions.add(permission)

    migrated_before_move()

    assert tables() == OLD_TABLES
    assert [
        {**row, "recipients": json.loads(row["recipients"])}
        for row in rows(
            "SELECT id, subject, recipients::text, body_text, status, attempts, sent_at"
            " FROM reporting_emailmessage ORDER BY id"
        )
    ] == [
        {
            name: message[name]
            for name in (
                "id",
                "subject",
                "recipients",
                "body_text",
                "status",
                "attempts",
                "sent_at",
            )
        }
        for message in log["messages"]
    ]
    assert rows(
        "SELECT id, email_id, attempted_at, succeeded, error FROM reporting_emailattempt"
        " ORDER BY id"
    ) == [
        {name: attempt[name] for name in ("id", "email_id", "attempted_at", "succeeded", "error")}
        for attempt in log["attempts"]
    ]
    assert rows(
        "SELECT id, enabled, host, port, username, password, use_tls, use_ssl, timeout,"
        " from_email, reply_to FROM reporting_smtpconfiguration"
    ) == [{"id": 1, **SMTP_FIELDS}]
    constraints = check_constraints("reporting_smtpconfiguration")
    assert "reporting_smtp_tls_xor_ssl" in constraints
    assert "mailing_smtp_tls_xor_ssl" not in constraints
    assert "reporting_e_subject_50a588_idx" in index_names("reporting_emailmessage")
    assert content_types("reporting") == sorted(MOVED_MODELS)
    assert content_types("mailing") == []
    assert group_permissions(clerks.pk) == [("reporting", "change_emailmessage")]

    migrated_to_latest()

    assert tables() == NEW_TABLES
    assert [values(message) for message in EmailMessage.objects.order_by("pk")] == log["messages"]
    assert [values(attempt) for attempt in EmailAttempt.objects.order_by("pk")] == log["attempts"]
    # The same configuration; undone, mailing 0004 left the password in clear, redone, it
    # encrypted it again (another token).
    moved = values(SmtpConfiguration.objects.get())
    assert smtp_password_decrypt(moved.pop("password")) == smtp_password_decrypt(
        smtp.pop("password")
    )
    assert moved == smtp
    assert group_permissions(clerks.pk) == [("mailing", "change_emailmessage")]
    assert content_types("reporting") == []
