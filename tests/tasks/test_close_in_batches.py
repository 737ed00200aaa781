"""close_expired_sessions in batches: a transaction per batch, a failing session alone, the
batch edges, concurrent runs, and a run killed between two batches."""

import datetime as dt
from collections import Counter
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from auditing.models import AuditEntry
from auditing.verification import chain_verify
from mailing.models import EmailMessage
from payments import services
from payments.models import CashSession, Notification, SessionStatus
from payments.services import session_open, transaction_record
from tasks.operations import close_expired_sessions as operation
from tasks.operations.close_expired_sessions import Options, SessionAction, close_expired_sessions
from tasks.results import Trigger
from tests.concurrency import run_together
from tests.factories import AgentFactory, CashSessionFactory, CashTransactionFactory

LOCAL = ZoneInfo("Indian/Antananarivo")
NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=LOCAL)
HOUR = dt.timedelta(hours=1)
COMMAND = "close_expired_sessions"

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]


@pytest.fixture
def batch_of_two(monkeypatch):
    monkeypatch.setattr(operation, "BATCH_SIZE", 2)


def expired_sessions(count: int, *, now: dt.datetime = NOW) -> list[CashSession]:
    """Oldest first, so in the order the run takes them."""
    return [
        CashSessionFactory(opened_at=now - 13 * HOUR - dt.timedelta(minutes=count - index))
        for index in range(count)
    ]


def auto_closed_subjects() -> Counter:
    return Counter(
        AuditEntry.objects.filter(action="session.auto_closed").values_list("subject_id", flat=True)
    )


def statuses(sessions: list[CashSession]) -> list[str]:
    by_pk = dict(CashSession.objects.values_list("pk", "status"))
    return [by_pk[session.pk] for session in sessions]


def test_batch_edges_five_sessions_in_batches_of_two_close_in_three_transactions(
    clock, monkeypatch, batch_of_two, run_command
):
    sessions = expired_sessions(5)
    CashTransactionFactory(session=sessions[1])
    batches = []
    real_close = operation.sessions_close_expired

    def spy(*, sessions, **arguments):
        batches.append([session.number for session in sessions])
        return real_close(sessions=sessions, **arguments)

    monkeypatch.setattr(operation, "sessions_close_expired", spy)

    output = run_command(COMMAND, "--force").stdout

    numbers = [session.number for session in sessions]
    assert batches == [numbers[0:2], numbers[2:4], numbers[4:5]]
    assert statuses(sessions) == [SessionStatus.CLOSED] * 5
    # One entry each, in the order of the sessions, and the chain intact across batches.
    entries = AuditEntry.objects.filter(action="session.auto_closed").order_by("sequence")
    assert [entry.subject_id for entry in entries] == [str(session.pk) for session in sessions]
    assert [entry.data["forced"] for entry in entries] == [False, True, False, False, False]
    assert chain_verify().intact
    assert Notification.objects.filter(session__in=sessions).count() == 5
    assert EmailMessage.objects.count() == 5
    assert "Closed 5, skipped 0" in output


def test_a_session_the_database_refuses_fails_alone_and_the_rest_of_its_batch_commits(
    clock, batch_of_two, run_command
):
    first, refused, last = expired_sessions(3)
    before = CashSession.objects.values().get(pk=refused.pk)
    # A rule of the database that this one session breaks when it is closed, raised as
    # the project's rules raise theirs (check_violation: an IntegrityError).
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE FUNCTION test_refuse_closing() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.number = '{refused.number}' AND NEW.status = 'closed' THEN
                    RAISE EXCEPTION 'test rule: % may not close', NEW.number
                        USING ERRCODE = 'check_violation';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER test_refuse_closing BEFORE UPDATE ON payments_cashsession
                FOR EACH ROW EXECUTE FUNCTION test_refuse_closing();
            """
        )

    run = run_command(COMMAND, "--force", expect_exit=1)

    assert statuses([first, refused, last]) == [
        SessionStatus.CLOSED,
        SessionStatus.OPEN,
        SessionStatus.CLOSED,
    ]
    assert CashSession.objects.values().get(pk=refused.pk) == before
    assert auto_closed_subjects() == Counter({str(first.pk): 1, str(last.pk): 1})
    assert set(Notification.objects.values_list("session_id", flat=True)) == {first.pk, last.pk}
    assert set(EmailMessage.objects.values_list("subject_id", flat=True)) == {
        str(first.pk),
        str(last.pk),
    }
    assert chain_verify().intact
    [refused_line] = [line for line in run.stdout.splitlines() if refused.number in line]
    assert "-> FAILED: IntegrityError: test rule: " in refused_line
    assert "Closed 2, skipped 0 (has transactions; use --force), failed 1" in run.stdout


def test_a_session_that_fails_before_the_writes_fails_alone_in_its_batch(
    clock, monkeypatch, batch_of_two, run_command
):
    sessions = expired_sessions(4)
    broken = sessions[2]
    real_draft = services.agent_notice_draft

    def draft_all_but_broken(**kwargs):
        if kwargs["session"].pk == broken.pk:
            raise RuntimeError("template missing")
        return real_draft(**kwargs)

    monkeypatch.setattr(services, "agent_notice_draft", draft_all_but_broken)

    run = run_command(COMMAND, "--force", expect_exit=1)

    assert statuses(sessions) == [
        SessionStatus.CLOSED,
        SessionStatus.CLOSED,
        SessionStatus.OPEN,
        SessionStatus.CLOSED,
    ]
    assert str(broken.pk) not in auto_closed_subjects()
    assert not Notification.objects.filter(session=broken).exists()
    assert not EmailMessage.objects.filter(subject_id=str(broken.pk)).exists()
    assert "-> FAILED: RuntimeError: template missing" in run.stdout
    assert chain_verify().intact


class Killed(BaseException):
    """What SIGKILL leaves: the process ends there, no handler runs."""


@pytest.mark.django_db(transaction=True)
def test_a_run_killed_between_batches_leaves_its_batches_closed_and_a_rerun_closes_the_rest(
    monkeypatch, batch_of_two
):
    sessions = expired_sessions(5, now=timezone.now())
    real_close = operation.sessions_close_expired
    calls = []

    def killed_at_the_third_batch(**arguments):
        calls.append(1)
        if len(calls) == 3:
            raise Killed
        return real_close(**arguments)

    monkeypatch.setattr(operation, "sessions_close_expired", killed_at_the_third_batch)
    with pytest.raises(Killed):
        close_expired_sessions(options=Options(force=True), trigger=Trigger.MANUAL)

    assert statuses(sessions) == [SessionStatus.CLOSED] * 4 + [SessionStatus.OPEN]
    assert sum(auto_closed_subjects().values()) == 4

    monkeypatch.setattr(operation, "sessions_close_expired", real_close)
    result = close_expired_sessions(options=Options(force=True), trigger=Trigger.MANUAL)

    assert (result.closed, result.failed) == (1, 0)
    assert statuses(sessions) == [SessionStatus.CLOSED] * 5
    assert auto_closed_subjects() == Counter({str(session.pk): 1 for session in sessions})
    assert Notification.objects.count() == 5
    assert chain_verify().intact


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_never_close_a_session_twice(monkeypatch, batch_of_two):
    sessions = expired_sessions(12, now=timezone.now())
    for session in sessions[::3]:
        CashTransactionFactory(session=session)

    def run():
        # The operation itself, without the runner's lock that keeps a second run out.
        return close_expired_sessions(options=Options(force=True), trigger=Trigger.MANUAL)

    outcomes = run_together(run, run)

    assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
    closed_by = [
        {row.session for row in result.sessions if row.action == SessionAction.CLOSED}
        for _, result in outcomes
    ]
    assert not closed_by[0] & closed_by[1]
    assert closed_by[0] | closed_by[1] == {session.number for session in sessions}
    assert statuses(sessions) == [SessionStatus.CLOSED] * 12
    assert auto_closed_subjects() == Counter({str(session.pk): 1 for session in sessions})
    assert Notification.objects.count() == 12
    assert EmailMessage.objects.count() == 12
    assert chain_verify().intact


def test_after_a_close_in_batches_a_full_verification_finds_the_trail_intact(
    clock, batch_of_two, run_command
):
    """Sessions and payments made by the services, so that every row has its entries."""
    clock.move_to(NOW - 14 * HOUR)
    for index in range(5):
        session = session_open(
            agent=AgentFactory(), opening_balance=Decimal("10000.00"), actor=None
        )
        if index % 2 == 0:
            transaction_record(
                session=session,
                payer_reference=f"NIF-{index}",
                tax_amount=Decimal("2500.00"),
                amount_tendered=Decimal("3000.00"),
                actor=None,
            )
    clock.move_to(NOW)

    output = run_command(COMMAND, "--force").stdout
    verification = run_command("verify_audit_trail", "--full").stdout

    assert "Closed 5, skipped 0" in output
    assert CashSession.objects.filter(status=SessionStatus.OPEN).count() == 0
    assert "Audit trail intact" in verification
