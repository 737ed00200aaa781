"""verify_audit_trail through the management command: range, detection, alerts, run records."""

import datetime as dt
import json
import logging
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from auditing.hashing import compute_entry_hash
from auditing.models import AuditEntry, VerificationRun
from auditing.services import audit_entry_append
from mailing.models import EmailMessage
from tests.auditing.tampering import (
    delete_entries,
    disable_append_only_trigger,
    renumber_from,
    set_column,
    swap_entries,
)
from tests.factories import StaffUserFactory, UserFactory

pytestmark = pytest.mark.django_db

PROJECT_DIR = Path(__file__).resolve().parents[2]
COMMAND = "verify_audit_trail"


def local(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    """An aware datetime on the wall clock of settings.TIME_ZONE."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=timezone.get_default_timezone())


NOW = local(2026, 5, 20, 10, 0)
FIRST_DAY = local(2026, 5, 1)


def append_at(when: dt.datetime, **data) -> AuditEntry:
    with time_machine.travel(when, tick=False):
        return audit_entry_append(action="test.event", actor=None, data=data)


def append_daily(count: int, *, first: dt.datetime = FIRST_DAY) -> list[AuditEntry]:
    return [append_at(first + dt.timedelta(days=n), n=n + 1) for n in range(count)]


def run(*args: str, now: dt.datetime = NOW) -> str:
    """Run the command at ``now``; return its stdout (a non-zero exit raises CommandError)."""
    stdout = StringIO()
    with time_machine.travel(now, tick=False):
        call_command(COMMAND, *args, stdout=stdout, stderr=StringIO())
    return stdout.getvalue()


def run_failing(*args: str, now: dt.datetime = NOW) -> tuple[CommandError, str, str]:
    stdout, stderr = StringIO(), StringIO()
    with time_machine.travel(now, tick=False), pytest.raises(CommandError) as raised:
        call_command(COMMAND, *args, stdout=stdout, stderr=stderr)
    return raised.value, stdout.getvalue(), stderr.getvalue()


def latest_run() -> VerificationRun:
    return VerificationRun.objects.latest("pk")


def kinds(run_record: VerificationRun) -> set[tuple[int, str]]:
    return {(row["sequence"], row["kind"]) for row in run_record.violations}


# --- Intact chains and ranges ----------------------------------------------------------


def test_intact_chain_prints_entries_checked_sequence_range_head_hash_and_time_taken():
    entries = append_daily(4)

    output = run()

    assert "Entries checked: 4 (sequence 1 to 4)" in output
    assert f"#4  {entries[-1].current_hash}" in output
    assert "Time taken: " in output
    assert "Audit trail intact (run #" in output
    assert "TAMPERING" not in output


def test_each_run_is_stored_with_what_it_checked():
    entries = append_daily(3)

    run()
    run("--full")

    first, second = VerificationRun.objects.order_by("pk")
    assert (first.trigger, first.full, first.intact) == ("manual", False, True)
    assert (first.range_start, first.range_end) == (dt.date(2026, 4, 20), dt.date(2026, 5, 20))
    assert (first.entries_checked, first.first_sequence, first.last_sequence) == (3, 1, 3)
    assert (first.head_sequence, first.head_hash) == (3, entries[-1].current_hash)
    assert first.violations == []
    assert first.duration_ms is not None
    assert first.started_at == NOW
    assert first.finished_at is not None
    assert (second.full, second.range_start, second.range_end) == (True, None, None)


def test_default_range_is_the_last_30_local_days_and_excludes_older_entries():
    # today - 30 = 2026-04-20: its local midnight is 2026-04-19 21:00 UTC.
    append_at(local(2026, 4, 19, 23, 30))  # 1: the day before, though 20:30 UTC
    append_at(local(2026, 4, 20, 0, 30))  # 2: the first day of the range
    append_at(local(2026, 5, 20, 9, 0))  # 3: today

    output = run()

    record = latest_run()
    assert (record.entries_checked, record.first_sequence, record.last_sequence) == (2, 2, 3)
    assert (record.range_start, record.range_end) == (dt.date(2026, 4, 20), dt.date(2026, 5, 20))
    assert "Range: 2026-04-20 to 2026-05-20 (Indian/Antananarivo, end date included)" in output
    assert record.intact


def test_end_date_is_included_up_to_local_midnight():
    append_at(local(2026, 2, 28, 23, 30))  # 1: before the start date
    append_at(local(2026, 3, 1, 0, 30))  # 2: first day
    append_at(local(2026, 3, 10, 23, 30))  # 3: last day, late evening (20:30 UTC)
    append_at(local(2026, 3, 11, 0, 30))  # 4: next day, though still 03-10 in UTC

    output = run("--start-date", "2026-03-01", "--end-date", "2026-03-10")

    record = latest_run()
    assert (record.entries_checked, record.first_sequence, record.last_sequence) == (2, 2, 3)
    assert (record.range_start, record.range_end) == (dt.date(2026, 3, 1), dt.date(2026, 3, 10))
    assert "Entries checked: 2 (sequence 2 to 3)" in output


def test_full_checks_the_entire_chain_whatever_its_age():
    append_at(local(2024, 1, 5))
    append_at(local(2025, 6, 1))
    append_at(local(2026, 5, 19))

    output = run("--full")

    record = latest_run()
    assert (record.entries_checked, record.first_sequence, record.last_sequence) == (3, 1, 3)
    assert record.full
    assert "entire audit trail" in output


def test_empty_range_says_so_and_exits_zero():
    append_at(local(2025, 1, 1))

    output = run("--start-date", "2026-01-01", "--end-date", "2026-01-31")

    assert "no audit entries in this range" in output.lower()
    record = latest_run()
    assert (record.entries_checked, record.intact) == (0, True)


def test_range_starting_mid_chain_raises_no_false_alarm():
    append_daily(10)

    output = run("--start-date", "2026-05-05", "--end-date", "2026-05-08")

    record = latest_run()
    assert record.intact, record.violations
    assert (record.first_sequence, record.last_sequence) == (5, 8)
    assert "intact" in output


# --- Bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start-date", "2026-13-01"], "--start-date '2026-13-01' is not a valid date"),
        (["--start-date", "2026-02-30"], "--start-date '2026-02-30' is not a valid date"),
        (["--end-date", "01/03/2026"], "--end-date '01/03/2026' is not a valid date"),
        (["--end-date", "20260301"], "--end-date '20260301' is not a valid date"),
        (
            ["--start-date", "2026-03-02", "--end-date", "2026-03-01"],
            "start date 2026-03-02 is after the end date 2026-03-01",
        ),
        (["--start-date", "2026-06-01"], "start date 2026-06-01 is after the end date 2026-05-20"),
        (["--full", "--start-date", "2026-03-01"], "cannot be combined"),
        (["--full", "--end-date", "2026-03-01"], "cannot be combined"),
        (["--email", "not-an-address", "--alert-on-tampering"], "not a valid email address"),
        (["--email", "a@example.com\nBcc: b@example.com"], "line break"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--end-date", "9999-12-31"], "out of range"),
        (["--start-date", "0001-01-01"], "out of range"),
        (["--start-date", ""], "is not a valid date"),
    ],
)
def test_bad_input_is_refused_with_exit_2_and_nothing_stored(args, message):
    append_daily(2)
    with connection.cursor() as cursor:
        # Tampered, so a run that went ahead anyway would also try to alert.
        disable_append_only_trigger()
        cursor.execute("UPDATE auditing_auditentry SET action = 'forged' WHERE sequence = 1")
    StaffUserFactory()

    error, stdout, _ = run_failing(*args)

    assert error.returncode == 2
    assert message in str(error)
    assert "\n" not in str(error)
    assert stdout == ""
    assert not VerificationRun.objects.exists()
    assert not EmailMessage.objects.exists()


def _manage(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_ENV": "test"}
    return subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", COMMAND, *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bad_date_from_the_shell_prints_one_line_and_exits_2():
    completed = _manage("--start-date", "2026-02-30")

    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.strip().splitlines() == [
        "CommandError: --start-date '2026-02-30' is not a valid date; use YYYY-MM-DD."
    ]


def test_help_lists_the_options_and_exit_codes():
    command = load_command_class("tasks", COMMAND)
    text = command.create_parser("manage.py", COMMAND).format_help()

    for option in ("--start-date", "--end-date", "--full", "--email", "--alert-on-tampering"):
        assert option in text
    assert "Email address to send alert to if tampering detected" in text
    assert "exit codes:" in text
    assert "3  tampering found" in text
    assert "2  bad input" in text


def test_help_from_the_shell_exits_zero():
    completed = _manage("--help")

    assert completed.returncode == 0
    assert "--alert-on-tampering" in completed.stdout
    assert "exit codes:" in completed.stdout


# --- Tampering -------------------------------------------------------------------------


def test_modified_entry_is_reported_with_its_hashes_and_exit_code_3():
    entries = append_daily(5)
    disable_append_only_trigger()
    set_column(3, "data", {"n": 3, "amount": "1.00"})
    recomputed = compute_entry_hash(AuditEntry.objects.get(sequence=3))

    error, output, _ = run_failing()

    assert error.returncode == 3
    assert "Tampering detected: 1 issue" in str(error)
    assert "TAMPERING DETECTED: 1 issue (run #" in output
    assert "Entry #3 at 2026-05-03 12:00:00: content mismatch" in output
    assert f"expected: {recomputed}" in output
    assert f"stored:   {entries[2].current_hash}" in output
    record = latest_run()
    assert record.intact is False
    assert kinds(record) == {(3, "content_mismatch")}
    assert record.violations[0]["timestamp"] == "2026-05-03T12:00:00+03:00"


def test_deleted_middle_entry_is_reported_as_a_gap():
    append_daily(5)
    disable_append_only_trigger()
    delete_entries(3)

    error, output, _ = run_failing()

    assert error.returncode == 3
    assert kinds(latest_run()) == {(4, "gap"), (4, "broken_link")}
    assert "Entry #4 at 2026-05-04 12:00:00: gap in the sequence" in output
    assert "entry 3 is missing" in output


def test_inserted_forged_entry_is_reported():
    entries = append_daily(5)
    disable_append_only_trigger()
    renumber_from(3, 1)
    forged = AuditEntry(
        sequence=3,
        timestamp=local(2026, 5, 2, 18, 0),
        action="test.event",
        actor_name="system",
        data={"n": 99},
        previous_hash=entries[1].current_hash,
    )
    with override_settings(AUDIT_CHAIN_KEY="an attacker's guess"):
        forged.current_hash = compute_entry_hash(forged)
    forged.save(force_insert=True)

    error, output, _ = run_failing()

    assert error.returncode == 3
    found = kinds(latest_run())
    assert (3, "content_mismatch") in found  # the forged entry
    assert (4, "content_mismatch") in found  # old entry 3, renumbered
    assert (4, "broken_link") in found
    assert "Entry #3 at 2026-05-02 18:00:00: content mismatch" in output


def test_swapped_entries_are_reported():
    append_daily(5)
    disable_append_only_trigger()
    swap_entries(2, 3)

    error, _, _ = run_failing()

    assert error.returncode == 3
    found = kinds(latest_run())
    assert {(2, "content_mismatch"), (3, "content_mismatch")} <= found
    assert {sequence for sequence, _ in found} <= {2, 3, 4}


def test_bad_link_of_the_first_entry_in_range_is_caught_against_the_one_before():
    append_daily(10)
    disable_append_only_trigger()
    delete_entries(4)  # just before the range

    error, _, _ = run_failing("--start-date", "2026-05-05", "--end-date", "2026-05-08")

    assert error.returncode == 3
    record = latest_run()
    assert kinds(record) == {(5, "gap"), (5, "broken_link")}
    assert record.first_sequence == 5


def test_truncation_is_detected_through_the_head_a_previous_run_recorded():
    append_daily(5)
    run()
    disable_append_only_trigger()
    delete_entries(4, 5)

    error, output, _ = run_failing()

    assert error.returncode == 3
    record = latest_run()
    assert record.head_sequence == 3
    assert record.violations == [
        {
            "sequence": 4,
            "timestamp": None,
            "kind": "truncated",
            "expected": "5",
            "stored": "3",
            "detail": record.violations[0]["detail"],
        }
    ]
    assert "entries 4 to 5 are missing from the end" in record.violations[0]["detail"]
    assert "Entry #4 at unknown time: truncated" in output


def test_truncation_of_the_whole_table_is_detected():
    append_daily(2)
    run()
    disable_append_only_trigger()
    delete_entries(1, 2)

    error, output, _ = run_failing()

    assert error.returncode == 3
    assert kinds(latest_run()) == {(1, "truncated")}
    assert "no audit entries in this range" in output.lower()


def test_truncated_then_appended_again_is_detected_by_the_recorded_head_hash():
    entries = append_daily(5)
    run()
    disable_append_only_trigger()
    delete_entries(5)
    replacement = append_at(local(2026, 5, 19), n="rewritten")

    error, _, _ = run_failing()

    assert error.returncode == 3
    record = latest_run()
    assert kinds(record) == {(5, "truncated")}
    assert record.violations[0]["expected"] == entries[4].current_hash
    assert record.violations[0]["stored"] == replacement.current_hash


def test_a_growing_chain_is_not_taken_for_truncation():
    append_daily(3)
    run()
    append_at(local(2026, 5, 19))

    run()

    assert latest_run().intact


def test_tampering_is_logged_at_error_level(caplog):
    append_daily(3)
    disable_append_only_trigger()
    set_column(2, "actor_name", "someone")

    with caplog.at_level(logging.INFO, logger="auditing"):
        run_failing()

    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert errors
    assert "TAMPERING" in errors[0].getMessage()
    assert "#2 content_mismatch" in errors[0].getMessage()


# --- Alerts ----------------------------------------------------------------------------


@pytest.fixture
def tampered():
    """Five daily entries, the third one's data changed."""
    entries = append_daily(5)
    disable_append_only_trigger()
    set_column(3, "data", {"n": 3, "amount": "1.00"})
    return {
        "stored": entries[2].current_hash,
        "expected": compute_entry_hash(AuditEntry.objects.get(sequence=3)),
    }


@pytest.fixture
def admins():
    """Two admins with an address, and people who must not receive alerts."""
    StaffUserFactory(email="zoe.admin@example.com")
    StaffUserFactory(email="ana.admin@example.com")
    StaffUserFactory(email="")
    StaffUserFactory(email="gone@example.com", is_active=False)
    UserFactory(email="agent@example.com")
    return ["ana.admin@example.com", "zoe.admin@example.com"]


def run_capturing_mail(django_capture_on_commit_callbacks, *args: str) -> str:
    with django_capture_on_commit_callbacks(execute=True):
        _, stdout, stderr = run_failing(*args)
    return stdout + stderr


def test_alert_on_tampering_emails_every_admin_with_the_details(
    tampered, admins, mailoutbox, django_capture_on_commit_callbacks
):
    output = run_capturing_mail(django_capture_on_commit_callbacks, "--alert-on-tampering")

    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert sorted(mail.to) == admins
    assert mail.subject == "[ALERT] Audit trail tampering detected on 2026-05-20 — 1 issue"
    html = mail.alternatives[0][0]
    for body in (mail.body, html):
        assert "1 issue" in body
        assert "#3" in body
        assert "2026-05-03 12:00:00" in body  # 09:00 UTC shown in TIME_ZONE
        assert "content_mismatch" in body
        assert tampered["expected"] in body
        assert tampered["stored"] in body
        assert settings.TIME_ZONE in body
    record = latest_run()
    logged = EmailMessage.objects.get()
    assert logged.purpose == "tampering_alert"
    assert logged.about == f"verification run #{record.pk}"
    assert (logged.subject_type, logged.subject_id) == ("auditing.verificationrun", str(record.pk))
    assert "ana.admin@example.com, zoe.admin@example.com" in output


def test_alert_lists_every_issue(admins, mailoutbox, django_capture_on_commit_callbacks):
    append_daily(6)
    disable_append_only_trigger()
    set_column(2, "action", "forged")
    delete_entries(5)

    run_capturing_mail(django_capture_on_commit_callbacks, "--alert-on-tampering")

    mail = mailoutbox[0]
    assert mail.subject == "[ALERT] Audit trail tampering detected on 2026-05-20 — 3 issues"
    for text in ("#2", "#6", "content_mismatch", "gap", "broken_link", "2026-05-06 12:00:00"):
        assert text in mail.body


def test_email_with_alert_flag_alerts_only_that_address(
    tampered, admins, mailoutbox, django_capture_on_commit_callbacks
):
    run_capturing_mail(
        django_capture_on_commit_callbacks,
        "--alert-on-tampering",
        "--email",
        " security@example.com ",
    )

    assert [mail.to for mail in mailoutbox] == [["security@example.com"]]


def test_email_alone_alerts_that_address(
    tampered, admins, mailoutbox, django_capture_on_commit_callbacks
):
    run_capturing_mail(django_capture_on_commit_callbacks, "--email", "security@example.com")

    assert [mail.to for mail in mailoutbox] == [["security@example.com"]]
    assert tampered["stored"] in mailoutbox[0].body


def test_no_alert_without_the_flags(
    tampered, admins, mailoutbox, django_capture_on_commit_callbacks
):
    output = run_capturing_mail(django_capture_on_commit_callbacks)

    assert mailoutbox == []
    assert not EmailMessage.objects.exists()
    assert "No alert sent" in output


def test_no_alert_when_the_chain_is_intact(admins, mailoutbox, django_capture_on_commit_callbacks):
    append_daily(3)

    with django_capture_on_commit_callbacks(execute=True):
        run("--alert-on-tampering", "--email", "security@example.com")

    assert mailoutbox == []
    assert not EmailMessage.objects.exists()


def test_alert_without_any_admin_address_says_nobody_was_alerted(
    tampered, mailoutbox, django_capture_on_commit_callbacks
):
    StaffUserFactory(email="")

    with django_capture_on_commit_callbacks(execute=True):
        error, _, stderr = run_failing("--alert-on-tampering")

    assert error.returncode == 3
    assert mailoutbox == []
    assert "No alert sent: no active administrator has an email address" in stderr


# --- JSON ------------------------------------------------------------------------------


def test_json_summary_of_an_intact_run():
    entries = append_daily(3)

    summary = json.loads(run("--json"))

    assert summary["operation"] == "verify_audit_trail"
    assert summary["status"] == "ok"
    assert summary["trigger"] == "manual"
    assert (summary["range_start"], summary["range_end"]) == ("2026-04-20", "2026-05-20")
    assert (summary["entries_checked"], summary["first_sequence"], summary["last_sequence"]) == (
        3,
        1,
        3,
    )
    assert summary["head_hash"] == entries[-1].current_hash
    assert summary["violations"] == []
    assert summary["run_id"] == latest_run().pk


def test_json_summary_of_tampering_exits_3_and_lists_violations(tampered):
    error, stdout, _ = run_failing("--json")

    assert error.returncode == 3
    summary = json.loads(stdout)
    assert summary["status"] == "tampering"
    assert summary["issues"] == 1
    [violation] = summary["violations"]
    assert violation["sequence"] == 3
    assert violation["kind"] == "content_mismatch"
    assert violation["timestamp"] == "2026-05-03T12:00:00+03:00"
    assert (violation["expected"], violation["stored"]) == (
        tampered["expected"],
        tampered["stored"],
    )
