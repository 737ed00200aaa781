"""Keying reminders by session and day (payments 0003) keeps an existing database's
reminders readable, links their sessions so today's are not reminded twice, lets the
database enforce the new uniqueness, and goes back only when the old key still holds.

The tests migrate the test database back to 0002, write rows with the historical models,
then migrate forward (or the other way round). The database always ends at the latest
migrations: later tests share it.
"""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction

from payments.models import ReconciliationReminder, ReminderKind, SessionReminder
from tasks.operations.reconciliation_reminder import (
    Options,
    ReminderAction,
    reconciliation_reminder,
)
from tasks.results import Trigger
from tests.factories import AgentFactory, CashSessionFactory
from tests.migrations import migrated

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("payments", "0002_expiry_notices_and_reminders")
AFTER = ("payments", "0003_sessions_reminded_once_a_day")
LOCAL = ZoneInfo("Indian/Antananarivo")
TODAY = dt.date(2026, 11, 25)
YESTERDAY = TODAY - dt.timedelta(days=1)


def at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=LOCAL)


def unique_index_names(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes"
            " WHERE schemaname = current_schema() AND tablename = %s",
            [table],
        )
        return {name for (name,) in cursor.fetchall()}


def test_existing_reminders_stay_readable_and_their_sessions_are_linked(at_latest_afterwards):
    apps = migrated(BEFORE).loader.project_state(BEFORE).apps
    User = apps.get_model("auth", "User")
    Agent = apps.get_model("payments", "Agent")
    CashSession = apps.get_model("payments", "CashSession")
    OldReminder = apps.get_model("payments", "ReconciliationReminder")
    hery = Agent.objects.create(
        user=User.objects.create(username="hery"), code="AG1", full_name="H"
    )
    tiana = Agent.objects.create(
        user=User.objects.create(username="tiana"), code="AG2", full_name="T"
    )

    def closed(agent, number: str, day: dt.date):
        return CashSession.objects.create(
            number=number,
            agent=agent,
            status="closed",
            opened_at=at(day, 8),
            closed_at=at(day, 17),
            opening_balance="1000.00",
            expected_balance="1000.00",
        )

    old = closed(hery, "CS-OLD", YESTERDAY - dt.timedelta(days=1))
    fresh = closed(hery, "CS-FRESH", YESTERDAY)
    theirs = closed(tiana, "CS-THEIRS", YESTERDAY)
    rows = [
        OldReminder.objects.create(
            kind="agent", agent=hery, day=YESTERDAY, session_numbers=["CS-OLD"]
        ),
        OldReminder.objects.create(
            kind="agent", agent=hery, day=TODAY, session_numbers=["CS-OLD", "CS-FRESH"]
        ),
        # A number that is another agent's, or none at all, links nothing.
        OldReminder.objects.create(
            kind="agent", agent=tiana, day=TODAY, session_numbers=["CS-FRESH", "CS-GONE"]
        ),
        OldReminder.objects.create(
            kind="admin_summary", day=TODAY, session_numbers=["CS-OLD", "CS-FRESH", "CS-THEIRS"]
        ),
    ]
    before = list(OldReminder.objects.order_by("pk").values())

    migrated(AFTER)

    assert list(ReconciliationReminder.objects.order_by("pk").values()) == before
    links = set(SessionReminder.objects.values_list("reminder_id", "session_id", "day"))
    assert links == {
        (rows[0].pk, old.pk, YESTERDAY),
        (rows[1].pk, old.pk, TODAY),
        (rows[1].pk, fresh.pk, TODAY),
    }
    assert "payments_one_reminder_per_session_a_day" in unique_index_names(
        "payments_sessionreminder"
    )
    assert "payments_one_agent_reminder_a_day" not in unique_index_names(
        "payments_reconciliationreminder"
    )
    # The database now holds the new key...
    with pytest.raises(IntegrityError), transaction.atomic():
        SessionReminder.objects.create(reminder_id=rows[2].pk, session_id=fresh.pk, day=TODAY)
    # ...and a run today reminds only what the old reminders did not: Tiana's session.
    with time_machine.travel(at(TODAY, 14), tick=False):
        result = reconciliation_reminder(options=Options(days=1), trigger=Trigger.BEAT)
    actions = {row.number: row.action for r in result.reminders for row in r.sessions}
    assert actions == {
        "CS-OLD": ReminderAction.ALREADY_REMINDED,
        "CS-FRESH": ReminderAction.ALREADY_REMINDED,
        "CS-THEIRS": ReminderAction.REMINDED,
    }
    assert theirs.pk in set(
        SessionReminder.objects.filter(day=TODAY).values_list("session_id", flat=True)
    )


def test_going_back_restores_one_reminder_per_agent_a_day(at_latest_afterwards):
    session = CashSessionFactory(closed=True, opened_at=at(YESTERDAY, 8))
    reminder = ReconciliationReminder.objects.create(
        kind=ReminderKind.AGENT, agent=session.agent, day=TODAY, session_numbers=[session.number]
    )
    SessionReminder.objects.create(reminder=reminder, session=session, day=TODAY)

    migrated(BEFORE)

    assert "payments_one_agent_reminder_a_day" in unique_index_names(
        "payments_reconciliationreminder"
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT session_numbers FROM payments_reconciliationreminder")
        assert [row[0] for row in cursor.fetchall()] == [f'["{session.number}"]']


def test_going_back_refuses_clearly_when_an_agent_had_two_reminders_a_day(at_latest_afterwards):
    agent = AgentFactory(code="AG0042")
    for number in ("CS-1", "CS-2"):
        session = CashSessionFactory(agent=agent, number=number, closed=True)
        reminder = ReconciliationReminder.objects.create(
            kind=ReminderKind.AGENT, agent=agent, day=TODAY, session_numbers=[number]
        )
        SessionReminder.objects.create(reminder=reminder, session=session, day=TODAY)

    with pytest.raises(RuntimeError, match=rf"agent id {agent.pk} has 2 reminders on {TODAY}"):
        migrated(BEFORE)

    assert ReconciliationReminder.objects.count() == 2
    assert SessionReminder.objects.count() == 2
