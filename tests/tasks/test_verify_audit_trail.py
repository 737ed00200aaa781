"""verify_audit_trail: its options, the run (range, detection, run records, alerts), its
Celery task, and the command's text and JSON output."""

import datetime as dt
import json
import logging
import os
import smtplib
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.core.management import CommandError, call_command, load_command_class
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from auditing.hashing import compute_entry_hash
from auditing.models import AuditEntry, VerificationRun
from auditing.services import audit_entry_append
from mailing.delivery import email_deliver_now
from mailing.models import EmailMessage, EmailStatus
from mailing.selectors import EmailOutcomes
from tasks.inputs import InvalidInput
from tasks.operations.verify_audit_trail import (
    Options,
    Result,
    audit_trail_verify,
    options_parse,
    period_resolve,
)
from tasks.results import OperationStatus, Trigger, result_json
from tasks.tasks import verify_audit_trail
from tests.auditing.tampering import (
    APPEND_ONLY_TRIGGER,
    delete_entries,
    disable_append_only_trigger,
    renumber_from,
    set_column,
    swap_entries,
)
from tests.factories import StaffUserFactory, UserFactory

PROJECT_DIR = Path(__file__).resolve().parents[2]
COMMAND = "verify_audit_trail"


def local(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    """An aware datetime on the wall clock of settings.TIME_ZONE."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=timezone.get_default_timezone())


NOW = local(2026, 5, 20, 10, 0)
FIRST_DAY = local(2026, 5, 1)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]


@pytest.fixture(autouse=True)
def _now(clock):
    """Every run happens at NOW; the data is written at its own times."""
    return clock


@pytest.fixture(autouse=True)
def _enforcement_not_checked(monkeypatch):
    """The attacks here switch the append-only trigger off (inside the test's transaction)
    and leave it off; the check that reports that is the tamper matrix's
    (tests/auditing/test_tamper_matrix.py). Here each test looks at the chain's findings."""
    monkeypatch.setattr(
        "tasks.operations.verify_audit_trail.append_only_enforcement_problems", lambda: []
    )


def append_at(when: dt.datetime, **data) -> AuditEntry:
    with time_machine.travel(when, tick=False):
        return audit_entry_append(action="test.event", actor=None, data=data)


def append_daily(count: int, *, first: dt.datetime = FIRST_DAY) -> list[AuditEntry]:
    return [append_at(first + dt.timedelta(days=n), n=n + 1) for n in range(count)]


def verify(**arguments) -> Result:
    """The operation as beat runs it: the task's arguments checked, then the run."""
    return audit_trail_verify(options=options_parse(**arguments), trigger=Trigger.BEAT)


def latest_run() -> VerificationRun:
    return VerificationRun.objects.latest("pk")


def kinds(run_record: VerificationRun) -> set[tuple[int, str]]:
    return {(finding.sequence, finding.kind) for finding in run_record.findings.all()}


# --- Intact chains and ranges ----------------------------------------------------------


def test_intact_chain_prints_entries_checked_sequence_range_head_hash_and_time_taken(
    run_command,
):
    entries = append_daily(4)

    output = run_command(COMMAND).stdout

    record = latest_run()
    ranges = ", ".join(f"{first}-{last}" for first, last in record.ranges)
    assert f"Checked by sequence: {ranges} (4 entries)" in output
    assert f"#4  {entries[-1].current_hash}" in output
    assert "Time taken: " in output
    assert "Audit trail intact (run #" in output
    assert "TAMPERING" not in output


def test_each_run_is_stored_with_what_it_checked(run_command):
    entries = append_daily(3)

    run_command(COMMAND)
    run_command(COMMAND, "--full")

    first, second = VerificationRun.objects.order_by("pk")
    assert (first.trigger, first.full, first.intact) == ("manual", False, True)
    assert (first.range_start, first.range_end) == (dt.date(2026, 4, 20), dt.date(2026, 5, 20))
    assert (first.entries_checked, first.first_sequence, first.last_sequence) == (3, 1, 3)
    assert (first.head_sequence, first.head_hash) == (3, entries[-1].current_hash)
    assert (first.issue_count, first.findings.count()) == (0, 0)
    assert first.duration_ms is not None
    assert first.started_at == NOW
    assert first.finished_at is not None
    assert (second.full, second.range_start, second.range_end) == (True, None, None)


def test_default_range_is_the_last_30_local_days_and_excludes_older_entries(run_command):
    # today - 30 = 2026-04-20: its local midnight is 2026-04-19 21:00 UTC.
    append_at(local(2026, 4, 19, 23, 30))  # 1: the day before, though 20:30 UTC
    append_at(local(2026, 4, 20, 0, 30))  # 2: the first day of the range
    append_at(local(2026, 5, 20, 9, 0))  # 3: today
    run_command(COMMAND)  # the first run checks from entry 1 and signs the head

    output = run_command(COMMAND).stdout

    # From the entry before the period (1) to the head; nothing new since the checkpoint.
    record = latest_run()
    assert (record.entries_checked, record.first_sequence, record.last_sequence) == (3, 1, 3)
    assert record.ranges == [[1, 3]]
    assert (record.range_start, record.range_end) == (dt.date(2026, 4, 20), dt.date(2026, 5, 20))
    assert "Range: 2026-04-20 to 2026-05-20 (Indian/Antananarivo, end date included)" in output
    assert record.intact


def test_end_date_is_included_up_to_local_midnight(run_command):
    append_at(local(2026, 2, 28, 23, 30))  # 1: before the start date
    append_at(local(2026, 3, 1, 0, 30))  # 2: first day
    append_at(local(2026, 3, 10, 23, 30))  # 3: last day, late evening (20:30 UTC)
    append_at(local(2026, 3, 11, 0, 30))  # 4: next day, though still 03-10 in UTC
    append_at(local(2026, 3, 20))  # 5: later
    run_command(COMMAND)  # signs the head: later runs check the period and the new tail

    output = run_command(COMMAND, "--start-date", "2026-03-01", "--end-date", "2026-03-10").stdout

    # Entries 2 and 3 are in the period; 1 and 4 are its neighbours, checked with it.
    record = latest_run()
    assert (record.entries_checked, record.first_sequence, record.last_sequence) == (4, 1, 4)
    assert (record.range_start, record.range_end) == (dt.date(2026, 3, 1), dt.date(2026, 3, 10))
    assert "Checked by sequence: 1-4 (4 entries)" in output


def test_full_checks_the_entire_chain_whatever_its_age(run_command):
    append_at(local(2024, 1, 5))
    append_at(local(2025, 6, 1))
    append_at(local(2026, 5, 19))

    output = run_command(COMMAND, "--full").stdout

    record = latest_run()
    assert (record.entries_checked, record.first_sequence, record.last_sequence) == (3, 1, 3)
    assert record.full
    assert "entire audit trail" in output


def test_a_range_without_entries_still_checks_its_neighbour_and_the_tail(run_command):
    append_at(local(2025, 1, 1))

    run_command(COMMAND, "--start-date", "2026-01-01", "--end-date", "2026-01-31")

    # No checkpoint yet: the whole chain is the tail; the period adds its neighbour (1).
    record = latest_run()
    assert (record.entries_checked, record.intact, record.ranges) == (1, True, [[0, 1]])


def test_range_starting_mid_chain_raises_no_false_alarm(run_command):
    append_daily(10)

    run_command(COMMAND)
    output = run_command(COMMAND, "--start-date", "2026-05-05", "--end-date", "2026-05-08").stdout

    record = latest_run()
    assert record.intact, list(record.findings.values())
    assert (record.first_sequence, record.last_sequence) == (4, 9)
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
def test_bad_input_is_refused_with_exit_2_and_nothing_stored(args, message, run_command):
    append_daily(2)
    with connection.cursor() as cursor:
        # Tampered, so a run that went ahead anyway would also try to alert.
        disable_append_only_trigger()
        cursor.execute("UPDATE auditing_auditentry SET action = 'forged' WHERE sequence = 1")
    StaffUserFactory()

    result = run_command(COMMAND, *args, expect_exit=2)

    assert result.stderr.startswith("CommandError: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1  # one line
    assert result.stdout == ""
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


def test_modified_entry_is_reported_with_its_hashes_and_exit_code_3(run_command):
    entries = append_daily(5)
    disable_append_only_trigger()
    set_column(3, "data", {"n": 3, "amount": "1.00"})
    recomputed = compute_entry_hash(AuditEntry.objects.get(sequence=3))

    result = run_command(COMMAND, expect_exit=3)

    output = result.stdout
    assert "CommandError: Tampering detected: 1 issue in the audit trail." in result.stderr
    assert "TAMPERING DETECTED: 1 issue (run #" in output
    assert "Entry #3 at 2026-05-03 12:00:00: content mismatch" in output
    assert f"expected: {recomputed}" in output
    assert f"stored:   {entries[2].current_hash}" in output
    record = latest_run()
    assert record.intact is False
    assert kinds(record) == {(3, "content_mismatch")}
    assert record.findings.get().timestamp == local(2026, 5, 3)


def test_deleted_middle_entry_is_reported_as_a_gap(run_command):
    append_daily(5)
    disable_append_only_trigger()
    delete_entries(3)

    output = run_command(COMMAND, expect_exit=3).stdout

    assert kinds(latest_run()) == {(4, "gap"), (4, "broken_link")}
    assert "Entry #4 at 2026-05-04 12:00:00: gap in the sequence" in output
    assert "entry 3 is missing" in output


def test_inserted_forged_entry_is_reported(run_command):
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
    with override_settings(AUDIT_CHAIN_KEYS={"1": "an attacker's guess"}):
        forged.current_hash = compute_entry_hash(forged)
    forged.save(force_insert=True)

    output = run_command(COMMAND, expect_exit=3).stdout

    found = kinds(latest_run())
    assert (3, "content_mismatch") in found  # the forged entry
    assert (4, "content_mismatch") in found  # old entry 3, renumbered
    assert (4, "broken_link") in found
    assert "Entry #3 at 2026-05-02 18:00:00: content mismatch" in output


def test_swapped_entries_are_reported(run_command):
    append_daily(5)
    disable_append_only_trigger()
    swap_entries(2, 3)

    run_command(COMMAND, expect_exit=3)

    found = kinds(latest_run())
    assert {(2, "content_mismatch"), (3, "content_mismatch")} <= found
    assert {sequence for sequence, _ in found} <= {2, 3, 4}


def test_bad_link_of_the_first_entry_in_range_is_caught_against_the_one_before(run_command):
    append_daily(10)
    disable_append_only_trigger()
    delete_entries(4)  # just before the range

    run_command(COMMAND, "--start-date", "2026-05-05", "--end-date", "2026-05-08", expect_exit=3)

    record = latest_run()
    assert kinds(record) == {(5, "gap"), (5, "broken_link")}


def test_truncation_is_detected_through_the_checkpoint_a_previous_run_signed(run_command, clock):
    append_daily(5)
    run_command(COMMAND)
    signed = latest_run().checkpoint
    disable_append_only_trigger()
    delete_entries(4, 5)
    clock.shift(dt.timedelta(hours=1))

    output = run_command(COMMAND, expect_exit=3).stdout

    record = latest_run()
    assert record.head_sequence == 3
    finding = record.findings.get()
    assert (finding.sequence, finding.kind, finding.expected, finding.stored) == (
        4,
        "truncated",
        "5",
        "3",
    )
    assert finding.reference == f"checkpoint 5 {signed.head_hash}"
    assert "entries 4 to 5 were removed from the end" in finding.detail
    assert "Entry #4 at unknown time: truncated" in output


def test_truncation_of_the_whole_table_is_detected(run_command):
    append_daily(2)
    run_command(COMMAND)
    disable_append_only_trigger()
    delete_entries(1, 2)

    run_command(COMMAND, expect_exit=3)

    assert kinds(latest_run()) == {(1, "truncated")}


def test_truncated_then_appended_again_is_detected_by_the_checkpoint_hash(run_command):
    entries = append_daily(5)
    run_command(COMMAND)
    disable_append_only_trigger()
    delete_entries(5)
    replacement = append_at(local(2026, 5, 19), n="rewritten")

    run_command(COMMAND, expect_exit=3)

    record = latest_run()
    assert kinds(record) == {(5, "checkpoint_mismatch")}
    finding = record.findings.get()
    assert (finding.expected, finding.stored) == (entries[4].current_hash, replacement.current_hash)


def test_a_growing_chain_is_not_taken_for_truncation(run_command):
    append_daily(3)
    run_command(COMMAND)
    append_at(local(2026, 5, 19))

    run_command(COMMAND)

    assert latest_run().intact


def test_tampering_is_logged_at_error_level(caplog, run_command):
    append_daily(3)
    disable_append_only_trigger()
    set_column(2, "actor_name", "someone")

    with caplog.at_level(logging.INFO, logger="tasks"):
        run_command(COMMAND, expect_exit=3)

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


def test_alert_on_tampering_emails_every_admin_with_the_details(
    tampered, admins, mailoutbox, run_command
):
    result = run_command(COMMAND, "--alert-on-tampering", expect_exit=3)

    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert sorted(mail.to) == admins
    assert mail.subject == "[ALERT] Audit trail tampering detected on 2026-05-20 — 1 issue"
    html = mail.alternatives[0][0]
    for body in (mail.body, html):
        assert "1 issue" in body
        assert "#3" in body
        assert "2026-05-03 12:00:00" in body  # 09:00 UTC shown in TIME_ZONE
        assert "content mismatch (the entry was changed)" in body
        assert "content_mismatch" not in body
        assert tampered["expected"] in body
        assert tampered["stored"] in body
        assert settings.TIME_ZONE in body
    record = latest_run()
    logged = EmailMessage.objects.get()
    assert logged.purpose == "tampering_alert"
    assert logged.about == f"verification run #{record.pk}"
    assert (logged.subject_type, logged.subject_id) == ("auditing.verificationrun", str(record.pk))
    assert "ana.admin@example.com, zoe.admin@example.com" in result.stdout


def test_alert_lists_every_issue(admins, mailoutbox, run_command):
    append_daily(6)
    disable_append_only_trigger()
    set_column(2, "action", "forged")
    delete_entries(5)

    run_command(COMMAND, "--alert-on-tampering", expect_exit=3)

    mail = mailoutbox[0]
    assert mail.subject == "[ALERT] Audit trail tampering detected on 2026-05-20 — 3 issues"
    for text in (
        "#2",
        "#6",
        "content mismatch (the entry was changed)",
        "gap in the sequence (entries are missing)",
        "broken link (an entry before it was removed, inserted or replaced)",
        "2026-05-06 12:00:00",
    ):
        assert text in mail.body


def test_email_with_alert_flag_alerts_only_that_address(tampered, admins, mailoutbox, run_command):
    run_command(COMMAND, "--alert-on-tampering", "--email", " security@example.com ", expect_exit=3)

    assert [mail.to for mail in mailoutbox] == [["security@example.com"]]


def test_email_alone_alerts_that_address(tampered, admins, mailoutbox, run_command):
    run_command(COMMAND, "--email", "security@example.com", expect_exit=3)

    assert [mail.to for mail in mailoutbox] == [["security@example.com"]]
    assert tampered["stored"] in mailoutbox[0].body


def test_no_alert_without_the_flags(tampered, admins, mailoutbox, run_command):
    output = run_command(COMMAND, expect_exit=3).stdout

    assert mailoutbox == []
    assert not EmailMessage.objects.exists()
    assert "No alert sent (use --alert-on-tampering or --email)." in output


def test_no_alert_when_the_chain_is_intact(admins, mailoutbox, run_command):
    append_daily(3)

    run_command(COMMAND, "--alert-on-tampering", "--email", "security@example.com")

    assert mailoutbox == []
    assert not EmailMessage.objects.exists()


def test_alert_without_any_admin_address_says_nobody_was_alerted(tampered, mailoutbox, run_command):
    StaffUserFactory(email="")

    result = run_command(COMMAND, "--alert-on-tampering", expect_exit=3)

    assert mailoutbox == []
    assert "No alert sent: no active administrator has an email address" in result.stderr


# --- JSON ------------------------------------------------------------------------------


def test_json_summary_of_an_intact_run(run_command):
    entries = append_daily(3)

    summary = json.loads(run_command(COMMAND, "--json").stdout)

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


def test_json_summary_of_tampering_exits_3_and_lists_violations(tampered, run_command):
    summary = json.loads(run_command(COMMAND, "--json", expect_exit=3).stdout)

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


# --- Options: the task's arguments, checked once for every door ---------------------------


@pytest.mark.parametrize(
    ("arguments", "sentence"),
    [
        (
            {"start_date": "2026-02-30"},
            "--start-date '2026-02-30' is not a valid date; use YYYY-MM-DD.",
        ),
        ({"end_date": "20260301"}, "--end-date '20260301' is not a valid date; use YYYY-MM-DD."),
        (
            {"end_date": "9999-12-31"},
            "--end-date 9999-12-31 is out of range: use a year from 2000 to 2027.",
        ),
        (
            {"start_date": "2026-03-02", "end_date": "2026-03-01"},
            "The start date 2026-03-02 is after the end date 2026-03-01.",
        ),
        (
            {"full": True, "end_date": "2026-03-01"},
            "--full checks the entire chain and cannot be combined with --start-date or "
            "--end-date.",
        ),
        ({"email": "not-an-address"}, "'not-an-address' is not a valid email address."),
        (
            {"email": "a@example.com\nBcc: b@example.com"},
            "An email address cannot contain a line break.",
        ),
        # Straight to the Celery task: values no command line can give.
        ({"start_date": 20260301}, "--start-date 20260301 is not a valid date; use YYYY-MM-DD."),
        ({"full": "yes"}, "full must be true or false, not 'yes'."),
        ({"alert_on_tampering": 1}, "alert_on_tampering must be true or false, not 1."),
        ({"email": ["a@example.com"]}, "--email must be an email address, not ['a@example.com']."),
    ],
)
def test_options_parse_refuses_bad_arguments_with_the_sentence_the_command_prints(
    arguments, sentence
):
    with pytest.raises(InvalidInput) as raised:
        options_parse(**arguments)

    assert str(raised.value) == sentence


def test_options_parse_keeps_the_given_dates_and_the_stripped_address():
    options = options_parse(
        start_date="2026-03-01",
        end_date="2026-03-10",
        alert_on_tampering=True,
        email=" security@example.com ",
    )

    assert options == Options(
        start_date=dt.date(2026, 3, 1),
        end_date=dt.date(2026, 3, 10),
        alert_on_tampering=True,
        email="security@example.com",
    )


def test_an_empty_email_alerts_nobody_and_full_ignores_empty_dates():
    assert options_parse(email="").email is None
    assert options_parse(full=True, start_date="", end_date="") == Options(full=True)


# --- Range resolution ------------------------------------------------------------------


def test_default_range_runs_from_local_midnight_30_days_ago_until_now():
    period = period_resolve(options_parse(), now=NOW)

    assert (period.start_date, period.end_date) == (dt.date(2026, 4, 20), dt.date(2026, 5, 20))
    assert period.start == local(2026, 4, 20, 0, 0)
    assert period.end == NOW


def test_default_range_takes_the_local_date_not_utc():
    # 01:30 local on 20 May is still 19 May in UTC.
    early = local(2026, 5, 20, 1, 30)

    period = period_resolve(options_parse(), now=early)

    assert (period.start_date, period.end_date) == (dt.date(2026, 4, 20), dt.date(2026, 5, 20))


def test_given_dates_run_from_local_midnight_to_the_midnight_after_the_end_date():
    period = period_resolve(options_parse(start_date="2026-03-01", end_date="2026-03-10"), now=NOW)

    assert period.start == local(2026, 3, 1, 0, 0)
    assert period.end == local(2026, 3, 11, 0, 0)
    assert period.start.astimezone(dt.UTC) == dt.datetime(2026, 2, 28, 21, 0, tzinfo=dt.UTC)


def test_end_date_alone_checks_the_30_days_before_it():
    period = period_resolve(options_parse(end_date="2026-03-31"), now=NOW)

    assert (period.start_date, period.end_date) == (dt.date(2026, 3, 1), dt.date(2026, 3, 31))


def test_start_date_alone_runs_until_now():
    period = period_resolve(options_parse(start_date="2026-05-01"), now=NOW)

    assert (period.start_date, period.end_date, period.end) == (
        dt.date(2026, 5, 1),
        dt.date(2026, 5, 20),
        NOW,
    )


def test_a_single_day_is_a_valid_range():
    period = period_resolve(options_parse(start_date="2026-03-10", end_date="2026-03-10"), now=NOW)

    assert period.end - period.start == dt.timedelta(days=1)


def test_full_has_no_bounds():
    period = period_resolve(options_parse(full=True), now=NOW)

    assert period.full
    assert (period.start, period.end, period.start_date, period.end_date) == (None,) * 4


@pytest.mark.parametrize(
    ("start_date", "end_date", "full"),
    [
        ("2026-02-30", None, False),
        ("2026-2-3", None, False),
        (None, "2026-03-01T00:00", False),
        (None, "tomorrow", False),
        ("2026-03-05", "2026-03-04", False),
        ("2026-03-01", None, True),
    ],
)
def test_bad_ranges_are_refused(start_date, end_date, full):
    with pytest.raises(InvalidInput):
        options_parse(start_date=start_date, end_date=end_date, full=full)


# --- The run and the task --------------------------------------------------------------


def test_bad_input_is_refused_before_anything_is_stored():
    with pytest.raises(InvalidInput):
        verify(start_date="2026-02-30")
    with pytest.raises(InvalidInput):
        verify(email="nobody")

    assert not VerificationRun.objects.exists()


def test_scheduled_task_stores_a_beat_run_and_returns_a_json_summary():
    append_daily(3)

    summary = verify_audit_trail(trigger="beat")

    assert json.loads(json.dumps(summary)) == summary
    assert summary["status"] == "ok"
    assert summary["entries_checked"] == 3
    record = VerificationRun.objects.get()
    assert (record.trigger, record.intact, record.pk) == ("beat", True, summary["run_id"])


def test_task_given_a_bad_argument_fails_with_the_sentence_and_stores_nothing():
    outcome = verify_audit_trail.apply(kwargs={"start_date": "2026-02-30"})

    assert outcome.state == "FAILURE"
    assert isinstance(outcome.result, InvalidInput)
    assert str(outcome.result) == "--start-date '2026-02-30' is not a valid date; use YYYY-MM-DD."
    assert not VerificationRun.objects.exists()


def test_full_run_stops_at_the_head_seen_at_the_start():
    append_daily(3)

    result = verify(full=True)

    assert (result.head_sequence, result.last_sequence) == (3, 3)


def test_the_result_is_typed_and_its_json_has_the_summarys_keys(tampered):
    result = verify()

    assert result.status == OperationStatus.TAMPERING
    assert result.ran_at == NOW
    assert result.range_start == dt.date(2026, 4, 20)
    assert result.emails == EmailOutcomes()
    [row] = result.violations
    assert row.timestamp == local(2026, 5, 3)
    summary = result_json(result)
    assert set(summary) == {
        "operation", "trigger", "status", "run_id", "full", "range_start", "range_end",
        "time_zone", "ran_at", "ranges", "entries_checked", "first_sequence", "last_sequence",
        "last_hash", "head_sequence", "head_hash", "checkpoints_checked", "last_good_checkpoint",
        "checkpoint", "intact", "issues", "violations", "duration_ms", "alert", "emails",
        "message",
    }  # fmt: skip
    assert summary["ran_at"] == "2026-05-20T10:00:00+03:00"
    assert summary["message"] == "Tampering detected: 1 issue in the audit trail."
    assert summary["emails"] == {"queued": 0, "sending": 0, "sent": 0, "failed": 0}
    # The rows are the ones stored with the run.
    stored = VerificationRun.objects.get().findings.get()
    assert (summary["violations"][0]["sequence"], summary["violations"][0]["kind"]) == (
        stored.sequence,
        stored.kind,
    )
    assert set(summary["violations"][0]) == {
        "sequence", "timestamp", "kind", "expected", "stored", "detail"
    }  # fmt: skip


def test_an_intact_runs_json_has_no_message():
    append_daily(2)

    summary = result_json(verify())

    assert "message" not in summary
    assert (summary["status"], summary["alert"], summary["issues"]) == ("ok", None, 0)


def test_a_truncation_row_says_which_checkpoint_showed_it(clock):
    append_daily(3)
    seen = verify(full=True)
    disable_append_only_trigger()
    delete_entries(3)
    clock.shift(dt.timedelta(days=1))

    result = verify()

    [row] = result.violations
    assert result_json(row) | {"detail": "…"} == {
        "sequence": 3,
        "timestamp": None,
        "kind": "truncated",
        "expected": "3",
        "stored": "2",
        "detail": "…",
    }
    assert seen.checkpoint.sequence == 3
    assert "2026-05-20T07:00:00.000000Z holds entry 3" in row.detail


def test_the_alert_reports_to_whom_it_went(tampered, admins):
    result = verify(alert_on_tampering=True)

    assert result_json(result.alert) == {
        "to": "admins",
        "recipients": admins,
        "email_id": EmailMessage.objects.get().pk,
    }
    assert result.emails == EmailOutcomes(queued=1)


class RefusingBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise smtplib.SMTPServerDisconnected("the mail server is down")


# --- Committed for real: the run queues the alert; "sent" only once the server accepted ---


def tamper_and_commit() -> None:
    """Change entry 2 for good; the trigger is back on when the transaction commits."""
    with transaction.atomic(), connection.cursor() as cursor:
        disable_append_only_trigger()
        set_column(2, "action", "forged")
        cursor.execute(f"ALTER TABLE auditing_auditentry ENABLE TRIGGER {APPEND_ONLY_TRIGGER}")


@pytest.fixture
def instant_worker(monkeypatch):
    """A worker that delivers each message the moment its wake-up is sent, before the run
    prints: the fastest a real one can be."""
    monkeypatch.setattr(
        "mailing.services.worker_wake", lambda task, **kwargs: email_deliver_now(**kwargs)
    )


@pytest.mark.django_db(transaction=True)
def test_the_alert_is_reported_queued_and_a_worker_sends_it_after_the_run(mailoutbox, run_command):
    append_daily(3)
    StaffUserFactory(email="admin@example.com")
    tamper_and_commit()

    result = run_command(COMMAND, "--alert-on-tampering", expect_exit=3)

    assert "Alert to admin@example.com: queued (1)." in result.stdout
    assert [message.to for message in mailoutbox] == [["admin@example.com"]]
    assert EmailMessage.objects.get().status == EmailStatus.SENT


@pytest.mark.django_db(transaction=True)
def test_an_alert_a_worker_sent_before_the_run_printed_is_reported_sent(mailoutbox, instant_worker):
    append_daily(3)
    StaffUserFactory(email="admin@example.com")
    tamper_and_commit()
    out = StringIO()

    with pytest.raises(CommandError):
        call_command(COMMAND, "--alert-on-tampering", stdout=out, stderr=StringIO())

    assert "Alert to admin@example.com: sent (1)." in out.getvalue()
    assert [message.to for message in mailoutbox] == [["admin@example.com"]]


@pytest.mark.django_db(transaction=True)
def test_a_failed_alert_email_keeps_the_run_and_says_the_sweeper_retries_it(
    mailoutbox, instant_worker
):
    append_daily(3)
    tamper_and_commit()
    out, err = StringIO(), StringIO()

    with override_settings(EMAIL_BACKEND=f"{__name__}.RefusingBackend"):
        with pytest.raises(CommandError):
            call_command(COMMAND, "--email", "security@example.com", stdout=out, stderr=err)
        summary = result_json(verify(email="security@example.com"))

    assert (
        "Alert to security@example.com: failed, will be retried by the sweeper (1)."
        in err.getvalue()
    )
    assert summary["emails"] == {"queued": 0, "sending": 0, "sent": 0, "failed": 1}
    assert summary["status"] == "tampering"
    assert summary["alert"]["recipients"] == ["security@example.com"]
    for email in EmailMessage.objects.all():
        assert email.status == EmailStatus.FAILED
        assert email.next_attempt_at is not None
    assert VerificationRun.objects.filter(intact=False).count() == 2
    assert mailoutbox == []
