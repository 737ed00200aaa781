"""mailing 0003 turns an existing email log into the outbox: every message gets its own
Message-ID, failed mail with attempts left is due again (its Celery retry may be lost),
mail whose attempts ran out counts as "gave up", logged attempts are finished; undone, a
message being sent is queued again. The database always ends at the latest migrations."""

import datetime as dt
from collections.abc import Iterator

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from mailing.models import EmailAttempt, EmailMessage, EmailStatus

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("mailing", "0002_tables_renamed")]
T0 = dt.datetime(2026, 11, 2, 6, 30, tzinfo=dt.UTC)


def migrate(targets) -> MigrationExecutor:
    MigrationExecutor(connection).migrate(targets)
    return MigrationExecutor(connection)


@pytest.fixture
def at_latest_afterwards(transactional_db) -> Iterator[None]:
    yield
    executor = migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    assert not executor.migration_plan(executor.loader.graph.leaf_nodes())


def message(model, **fields):
    return model.objects.create(
        purpose="session_expired",
        recipients=["rova@agents.example.com"],
        subject=f"Message {fields.get('status', 'queued')}",
        body_text=".",
        **fields,
    )


def test_an_existing_log_becomes_an_outbox(at_latest_afterwards):
    old = migrate(BEFORE).loader.project_state(BEFORE).apps
    OldMessage = old.get_model("mailing", "EmailMessage")
    OldAttempt = old.get_model("mailing", "EmailAttempt")
    sent = message(OldMessage, status="sent", attempts=1, sent_at=T0)
    queued = message(OldMessage, status="queued")
    retrying = message(OldMessage, status="failed", attempts=2, last_error="Connection refused")
    exhausted = message(OldMessage, status="failed", attempts=6, last_error="Connection refused")
    OldAttempt.objects.create(email=sent, attempted_at=T0, succeeded=True)
    OldAttempt.objects.create(email=retrying, attempted_at=T0, succeeded=False, error="refused")
    before = timezone.now()

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    rows = {row.pk: row for row in EmailMessage.objects.all()}
    ids = [row.message_id for row in rows.values()]
    assert len(set(ids)) == 4
    assert all(mid.startswith("<") and mid.endswith("@localhost>") for mid in ids), ids
    assert rows[sent.pk].status == EmailStatus.SENT
    assert rows[queued.pk].status == EmailStatus.QUEUED
    assert rows[queued.pk].next_attempt_at is None
    assert rows[retrying.pk].next_attempt_at >= before  # due now
    assert rows[retrying.pk].gave_up is False
    assert rows[exhausted.pk].next_attempt_at is None
    assert rows[exhausted.pk].gave_up is True
    for row in rows.values():
        assert (row.attempt_limit, row.attempt_id, row.claimed_at) == (6, None, None)
    assert [(a.finished_at, a.succeeded) for a in EmailAttempt.objects.order_by("pk")] == [
        (T0, True),
        (T0, False),
    ]
    # A new message draws a fresh one; the column refuses a copy.
    fresh = EmailMessage.objects.create(purpose="x", recipients=["a@example.com"], subject=".")
    assert fresh.message_id not in ids
    with pytest.raises(IntegrityError), transaction.atomic():
        EmailMessage.objects.filter(pk=fresh.pk).update(message_id=ids[0])


def test_the_database_refuses_a_claim_outside_sending_and_a_retry_time_outside_failed(
    at_latest_afterwards,
):
    email = EmailMessage.objects.create(purpose="x", recipients=["a@example.com"], subject=".")
    for changes in (
        {"status": EmailStatus.SENDING},  # sending without a claim
        {"claimed_at": T0},  # a claim without sending
        {"status": EmailStatus.QUEUED, "next_attempt_at": T0},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            EmailMessage.objects.filter(pk=email.pk).update(**changes)


def test_undone_a_message_being_sent_is_queued_again(at_latest_afterwards):
    email = EmailMessage.objects.create(purpose="x", recipients=["a@example.com"], subject=".")
    EmailMessage.objects.filter(pk=email.pk).update(
        status=EmailStatus.SENDING,
        attempt_id="9b2f3c1e-7a3d-4c55-9a7e-2f0d8c6b1a01",
        claimed_at=T0,
        attempts=1,
    )

    old = migrate(BEFORE).loader.project_state(BEFORE).apps

    assert old.get_model("mailing", "EmailMessage").objects.get(pk=email.pk).status == "queued"
