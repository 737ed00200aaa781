"""A schedule due this very second, with no run record yet, is pending: the watchdog,
/health/ready/ and the admin's dashboard all read it, and none of them may fail on it."""

import datetime as dt
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.utils import timezone

from tasks.health.selectors import JobState, jobs_status
from tasks.models import JobHealth

# 10:00 sharp in Antananarivo: close_expired_sessions (every hour at minute 0) is due now.
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.frozen_at(dt.datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Indian/Antananarivo"))),
]


def test_a_schedule_due_this_second_without_a_run_record_is_pending(clock):
    call_command("sync_schedules", stdout=StringIO())
    JobHealth.objects.all().delete()

    jobs = {job.name: job for job in jobs_status(now=timezone.now())}

    assert jobs["close_expired_sessions"].state == JobState.PENDING
    assert jobs["close_expired_sessions"].due_at == timezone.now()
    assert not jobs["close_expired_sessions"].catch_up_wanted
