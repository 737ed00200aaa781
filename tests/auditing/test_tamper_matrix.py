"""The tamper matrix (issue 13): every attack on the audit trail, run against the real
verification on PostgreSQL, with what each run reports, finding by finding.

Attacks are made as the database's owner would: raw SQL, the append-only trigger switched
off for the change and (for all but the enforcement cases) switched back on afterwards, so
that the findings show the chain's damage only. Runs happen at NOW (2026-05-20 10:00 local);
"the default run" is the scheduled daily one (the last 30 days, plus the tail since the last
good checkpoint, plus every checkpoint against the chain).

| Attack | How it is simulated | What is reported |
|---|---|---|
| Tail entries altered, timestamps +1/+2 years | run signs checkpoint at 5; entries 6-7 appended, their data and timestamps changed | 6 and 7: content_mismatch, timestamp_in_future |
| Entries older than the checkpoint altered, timestamps +1/+2 years | run signs checkpoint at 5; entries 2-3 changed | 2 and 3: content_mismatch, timestamp_in_future; 4: timestamp_regression |
| Entries older than the period and the checkpoint, timestamps +1/+2 years | entries 1-2 (January) changed after a run signed 4 | 1: content_mismatch, timestamp_in_future (the period's "entry just after"); 3: timestamp_regression |
| Every entry altered, timestamps +5 years | run signs 3; entries 1-3 changed | 1: content_mismatch, timestamp_in_future (not "nothing to verify") |
| Forged entry appended, stamped tomorrow | INSERT of entry 4 linked to 3, with a made-up hash | 4: content_mismatch, timestamp_in_future |
| First entry of the 30-day window deleted | DELETE of entry 2 (the window's first) | 3: gap, broken_link |
| Entries deleted at the end of a period | --start-date/--end-date 05-03..05-05; DELETE 4, 5 | 6: gap, broken_link |
| A whole period deleted | same period; DELETE 3, 4, 5 | 6: gap, broken_link |
| Verification records deleted, then the tail cut | DELETE runs, findings and (triggers off) auditing_checkpoint; DELETE 4-5 | 4: truncated, from the checkpoint file alone (default and --full) |
| Tail cut and appended again | run signs 5; DELETE 5; the application appends a new 5 | 5: checkpoint_mismatch on runs 1, 2 and 3; after a superuser's acknowledgement (an audit entry) run 4 is intact and signs 6 |
| Timestamp 'infinity' | UPDATE timestamp = 'infinity' | 2: undecodable; run finished; exit 3; alert queued |
| Data nested 5,000 levels | UPDATE data = '[[[...]]]'::jsonb | 2: undecodable; run finished; exit 3; alert queued |
| Unexpected error inside the run | chain_verify_ranges raises RuntimeError | run finished with error, intact None; alert queued; exit 1, one line; task FAILURE |
| Append-only trigger disabled | ALTER TABLE ... DISABLE TRIGGER | enforcement_off (no sequence), the chain intact |
| Trigger function replaced by a no-op | CREATE OR REPLACE FUNCTION auditing_refuse_change() | enforcement_off (no sequence), the chain intact |
| Weak or default chain key in production | check --deploy, DJANGO_ENV=production, AUDIT_CHAIN_KEY "", "x", 31 bytes, dev default | refused, naming AUDIT_CHAIN_KEY; 32 bytes accepted |
| Tampering seen by monitoring | verify_audit_trail / audit_checkpoint Celery tasks on a tampered chain | FAILURE, AuditTrailTampered naming the run and its admin link; intact: SUCCESS |
| Checkpoint file edited | head_hash changed in the file | 5: checkpoint_invalid |
| Checkpoint signed by an untrusted key | a file signed with another Ed25519 key | 5: checkpoint_invalid |

The refusal of weak keys is also tested case by case in tests/test_settings.py.
"""  # noqa: E501 - the table's rows are copied whole into the closing note

import base64
import datetime as dt
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from auditing.chain import Checkpoint, checkpoint_sign
from auditing.checkpoints import DirectorySink
from auditing.models import AuditEntry, VerificationRun
from auditing.selectors import CHECKPOINT_ACKNOWLEDGED
from auditing.services import audit_entry_append, checkpoint_finding_acknowledge
from mailing.models import EmailMessage
from project import key_rules
from tasks.operations.verify_audit_trail import (
    Result,
    VerificationIncomplete,
    audit_trail_verify,
    options_parse,
)
from tasks.results import Trigger
from tasks.tasks import AuditTrailTampered, audit_checkpoint, verify_audit_trail
from tests.auditing.tampering import (
    delete_entries,
    disable_append_only_trigger,
    set_column,
)
from tests.factories import StaffUserFactory

PROJECT_DIR = Path(__file__).resolve().parents[2]
COMMAND = "verify_audit_trail"


def local(year: int, month: int, day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=timezone.get_default_timezone())


NOW = local(2026, 5, 20, 10)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]


@pytest.fixture(autouse=True)
def _now(clock):
    return clock


# --- Helpers --------------------------------------------------------------------------------


def append_at(when: dt.datetime, **data) -> AuditEntry:
    with time_machine.travel(when, tick=False):
        return audit_entry_append(action="test.event", actor=None, data=data)


def append_daily(count: int, *, first: dt.datetime | None = None) -> list[AuditEntry]:
    first = first or local(2026, 5, 1)
    return [append_at(first + dt.timedelta(days=n), n=n + 1) for n in range(count)]


def verify(**arguments) -> Result:
    """The operation as beat runs it (no arguments: the scheduled daily run)."""
    return audit_trail_verify(options=options_parse(**arguments), trigger=Trigger.BEAT)


def findings(result: Result) -> list[tuple[int | None, str]]:
    """The stored run's findings, row by row, in order."""
    run = VerificationRun.objects.get(pk=result.run_id)
    return [(finding.sequence, finding.kind) for finding in run.findings.order_by("position")]


def enable_append_only_trigger(table: str = "auditing_auditentry") -> None:
    """Switch the trigger back on after the change, as a careful attacker would."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_no_update_delete")


def disable_trigger(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_no_update_delete")


def sql(statement: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def alter(sequence: int, *, years: int) -> None:
    """Change an entry's data and push its timestamp ``years`` ahead (trigger off)."""
    entry = AuditEntry.objects.get(sequence=sequence)
    set_column(sequence, "data", {"n": "altered"})
    set_column(sequence, "timestamp", entry.timestamp.replace(year=entry.timestamp.year + years))


# --- 1. Timestamps steering the scheduled check -----------------------------------------------


def test_altered_tail_entries_pushed_years_ahead_are_reported():
    append_daily(5)
    assert verify().checkpoint.sequence == 5
    append_at(local(2026, 5, 10), n=6)
    append_at(local(2026, 5, 11), n=7)
    disable_append_only_trigger()
    alter(6, years=1)
    alter(7, years=2)
    enable_append_only_trigger()

    result = verify()

    assert findings(result) == [
        (6, "content_mismatch"),
        (6, "timestamp_in_future"),
        (7, "content_mismatch"),
        (7, "timestamp_in_future"),
    ]


def test_altered_entries_older_than_the_checkpoint_pushed_years_ahead_are_reported():
    append_daily(5)
    assert verify().checkpoint.sequence == 5
    disable_append_only_trigger()
    alter(2, years=1)
    alter(3, years=2)
    enable_append_only_trigger()

    result = verify()

    assert findings(result) == [
        (2, "content_mismatch"),
        (2, "timestamp_in_future"),
        (3, "content_mismatch"),
        (3, "timestamp_in_future"),
        (4, "timestamp_regression"),
    ]


def test_altered_entries_older_than_the_period_pushed_years_ahead_are_reported():
    """Entries 1-2 (January) lie before the 30 days and before the checkpoint. Pushed into
    2027-2028, entry 1 is "the entry just after" the period, which the check must cover."""
    append_at(local(2026, 1, 10), n=1)
    append_at(local(2026, 1, 11), n=2)
    append_at(local(2026, 5, 5), n=3)
    append_at(local(2026, 5, 6), n=4)
    assert verify(full=True).checkpoint.sequence == 4
    disable_append_only_trigger()
    alter(1, years=1)
    alter(2, years=2)
    enable_append_only_trigger()

    result = verify()

    assert not result.intact
    assert findings(result) == [
        (1, "content_mismatch"),
        (1, "timestamp_in_future"),
        (2, "content_mismatch"),
        (2, "timestamp_in_future"),
        (3, "timestamp_regression"),
    ]


def test_every_entry_altered_five_years_ahead_is_reported_not_nothing_to_verify():
    append_daily(3)
    assert verify().checkpoint.sequence == 3
    disable_append_only_trigger()
    for sequence in (1, 2, 3):
        alter(sequence, years=5)
    enable_append_only_trigger()

    result = verify()

    assert result.entries_checked > 0
    assert findings(result) == [(1, "content_mismatch"), (1, "timestamp_in_future")]


def test_a_forged_entry_stamped_tomorrow_is_reported():
    append_daily(3)
    assert verify().checkpoint.sequence == 3
    sql(
        "INSERT INTO auditing_auditentry (sequence, timestamp, action, actor_id, actor_name, "
        "subject_type, subject_id, data, previous_hash, current_hash, key_id) "
        "SELECT 4, %s, 'payment.approved', NULL, 'system', '', '', '{\"forged\": true}', "
        "current_hash, %s, key_id FROM auditing_auditentry WHERE sequence = 3",
        [NOW + dt.timedelta(days=1), "f" * 64],
    )

    result = verify()

    assert findings(result) == [(4, "content_mismatch"), (4, "timestamp_in_future")]


def test_the_first_entry_of_the_30_day_window_deleted_is_reported():
    append_at(local(2026, 4, 10), n=1)  # before the window (2026-04-20 on)
    append_at(local(2026, 4, 21), n=2)  # the window's first entry
    append_at(local(2026, 5, 1), n=3)
    append_at(local(2026, 5, 2), n=4)
    assert verify().checkpoint.sequence == 4
    disable_append_only_trigger()
    delete_entries(2)
    enable_append_only_trigger()

    result = verify()

    assert findings(result) == [(3, "gap"), (3, "broken_link")]


@pytest.mark.parametrize("deleted", [(4, 5), (3, 4, 5)], ids=["end-of-period", "whole-period"])
def test_entries_deleted_at_the_end_of_a_period_or_the_whole_period_are_reported(deleted):
    append_daily(8)  # 2026-05-01 .. 05-08: the period 05-03..05-05 holds 3, 4, 5
    assert verify().checkpoint.sequence == 8
    disable_append_only_trigger()
    delete_entries(*deleted)
    enable_append_only_trigger()

    result = verify(start_date="2026-05-03", end_date="2026-05-05")

    assert findings(result) == [(6, "gap"), (6, "broken_link")]


# --- 2. Verification records deleted, then the tail cut -----------------------------------------


@pytest.mark.parametrize("arguments", [{}, {"full": True}], ids=["default", "full"])
def test_a_tail_cut_after_the_verification_records_were_deleted_shows_from_the_files(
    arguments, checkpoint_dir
):
    append_daily(5)
    assert verify().checkpoint.sequence == 5
    sql("DELETE FROM auditing_verificationfinding")
    sql("DELETE FROM auditing_verificationrun")
    disable_trigger("auditing_checkpoint")
    sql("DELETE FROM auditing_checkpoint")
    enable_append_only_trigger("auditing_checkpoint")
    disable_append_only_trigger()
    delete_entries(4, 5)
    enable_append_only_trigger()
    assert not VerificationRun.objects.exists()
    assert len(list(checkpoint_dir.glob("checkpoint-*.json"))) == 1

    result = verify(**arguments)

    assert findings(result) == [(4, "truncated")]


# --- 3. Cut and re-append, until acknowledged ---------------------------------------------


def test_a_tail_cut_and_appended_again_stays_reported_until_acknowledged(clock):
    superuser = get_user_model().objects.create_superuser(
        username="chief", email="chief@example.com", password="pw"
    )
    append_daily(5)
    assert verify().checkpoint.sequence == 5
    disable_append_only_trigger()
    delete_entries(5)
    enable_append_only_trigger()
    append_at(local(2026, 5, 19), n="rewritten")  # the application appends a new 5

    runs = []
    for _ in range(3):
        clock.shift(dt.timedelta(days=1))
        runs.append(verify())

    for result in runs:
        assert findings(result) == [(5, "checkpoint_mismatch")]
        assert result.checkpoint is None
    finding = VerificationRun.objects.get(pk=runs[-1].run_id).findings.get()
    reason = "Entry 5 was restored from a backup; see ticket 42."
    acknowledgement = checkpoint_finding_acknowledge(
        finding=finding, reason=reason, actor=superuser
    )
    clock.shift(dt.timedelta(days=1))

    fourth = verify()

    assert findings(fourth) == []
    assert fourth.intact
    assert fourth.checkpoint.sequence == acknowledgement.sequence == 6
    entry = AuditEntry.objects.get(sequence=6)
    assert (entry.action, entry.actor_id) == (CHECKPOINT_ACKNOWLEDGED, superuser.pk)
    assert entry.data["reference"] == finding.reference
    assert entry.data["reason"] == reason


# --- 4. The two crash rows ----------------------------------------------------------------------


def nested_5000_deep() -> str:
    return "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    "tamper",
    [
        lambda: sql("UPDATE auditing_auditentry SET timestamp = 'infinity' WHERE sequence = 2"),
        lambda: sql(
            "UPDATE auditing_auditentry SET data = %s::jsonb WHERE sequence = 2",
            [nested_5000_deep()],
        ),
    ],
    ids=["timestamp-infinity", "data-nested-5000"],
)
def test_a_malformed_row_is_reported_by_name_and_the_run_finishes_and_alerts(tamper, run_command):
    StaffUserFactory(email="admin@example.com")
    append_daily(3)
    disable_append_only_trigger()
    tamper()
    enable_append_only_trigger()

    result = run_command(COMMAND, "--alert-on-tampering", expect_exit=3)

    run = VerificationRun.objects.get()
    assert [(f.sequence, f.kind) for f in run.findings.order_by("position")] == [(2, "undecodable")]
    assert run.finished_at is not None
    assert run.intact is False
    assert not run.error
    assert "Traceback" not in result.stderr
    assert EmailMessage.objects.filter(purpose="tampering_alert").count() == 1


# --- 5. An unexpected error --------------------------------------------------------------------


@pytest.fixture
def failing_check(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("the disk caught fire")

    monkeypatch.setattr("tasks.operations.verify_audit_trail.chain_verify_ranges", boom)


def test_an_unexpected_error_finishes_the_run_as_failed_and_alerts(failing_check):
    StaffUserFactory(email="admin@example.com")
    append_daily(3)

    with pytest.raises(VerificationIncomplete, match="could not complete"):
        verify(alert_on_tampering=True)

    run = VerificationRun.objects.get()
    assert run.finished_at is not None
    assert run.intact is None
    assert run.error == "RuntimeError: the disk caught fire"
    alert = EmailMessage.objects.get(purpose="tampering_alert")
    assert "could not complete" in alert.subject
    assert "RuntimeError: the disk caught fire" in alert.body_text


def test_an_unexpected_error_exits_1_with_one_line_and_no_traceback(failing_check, run_command):
    """What cron sees: exit 1 and one sentence, not a traceback (the command turns the
    run's VerificationIncomplete into a CommandError)."""
    StaffUserFactory(email="admin@example.com")
    append_daily(3)

    result = run_command(COMMAND, "--alert-on-tampering", expect_exit=1)

    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "could not complete" in line
    assert VerificationRun.objects.get().error == "RuntimeError: the disk caught fire"
    assert EmailMessage.objects.filter(purpose="tampering_alert").count() == 1


def test_an_unexpected_error_ends_the_task_in_failure(failing_check):
    append_daily(3)

    outcome = verify_audit_trail.apply(kwargs={"trigger": "beat"})

    assert outcome.state == "FAILURE"
    assert isinstance(outcome.result, VerificationIncomplete)
    run = VerificationRun.objects.get()
    assert (run.intact, run.error) == (None, "RuntimeError: the disk caught fire")


# --- 6. Enforcement switched off ----------------------------------------------------------------

NO_OP = (
    "CREATE OR REPLACE FUNCTION auditing_refuse_change() RETURNS trigger AS $$ "
    "BEGIN IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
)


@pytest.mark.parametrize(
    "switch_off",
    [disable_append_only_trigger, lambda: sql(NO_OP)],
    ids=["trigger-disabled", "function-no-op"],
)
def test_switched_off_enforcement_is_reported_though_the_chain_is_intact(switch_off):
    append_daily(3)
    switch_off()

    result = verify(full=True)

    assert findings(result) == [(None, "enforcement_off")]
    assert not result.intact
    assert result.checkpoint is None


# --- 7. Weak and default chain keys in production ----------------------------------------------


@pytest.mark.parametrize(
    ("key", "refused"),
    [
        ("", True),
        ("x", True),
        ("k" * 31, True),
        (key_rules.DEV_CHAIN_KEY, True),
        ("k" * 32, False),
    ],
    ids=["empty", "x", "31-bytes", "dev-default", "32-bytes"],
)
def test_production_refuses_a_weak_or_default_chain_key(key, refused):
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AUDIT") and name not in {"DJANGO_ENV", "SECRET_KEY", "SITE_URL"}
    }
    database = settings.DATABASES["default"]
    env.update(
        DJANGO_ENV="production",
        SECRET_KEY="s" * 50,
        AUDIT_CHAIN_KEY=key,
        AUDIT_SIGNING_KEY=base64.b64encode(os.urandom(32)).decode(),
        AUDIT_CHECKPOINT_SINKS="file:///tmp/x",
        SITE_URL="https://cash.example.com",
        SMTP_PASSWORD_KEYS=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        ALLOWED_HOSTS="example.com",
        DATABASE_URL=os.environ.get(
            "DATABASE_URL",
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/postgres",
        ),
    )

    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "CRITICAL"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    if refused:
        assert result.returncode != 0
        assert "AUDIT_CHAIN_KEY" in result.stderr
    else:
        assert result.returncode == 0, result.stderr


# --- 8. Tampering is a FAILURE for the monitoring ------------------------------------------


@pytest.mark.parametrize("task", [verify_audit_trail, audit_checkpoint], ids=lambda t: t.name)
def test_a_task_that_finds_tampering_ends_in_failure_linking_the_run(task):
    append_daily(3)
    disable_append_only_trigger()
    set_column(2, "action", "forged")
    enable_append_only_trigger()

    outcome = task.apply(kwargs={"trigger": "beat"})

    assert outcome.state == "FAILURE"
    assert isinstance(outcome.result, AuditTrailTampered)
    run = VerificationRun.objects.get()
    assert f"#{run.pk}" in str(outcome.result)
    assert f"/admin/auditing/verificationrun/{run.pk}/change/" in str(outcome.result)
    assert [(f.sequence, f.kind) for f in run.findings.order_by("position")] == [
        (2, "content_mismatch")
    ]


@pytest.mark.parametrize("task", [verify_audit_trail, audit_checkpoint], ids=lambda t: t.name)
def test_a_task_on_an_intact_chain_succeeds(task):
    append_daily(3)

    outcome = task.apply(kwargs={"trigger": "beat"})

    assert outcome.state == "SUCCESS"
    assert outcome.result["status"] == "ok"


# --- 9. Checkpoint files tampered with ----------------------------------------------------


def test_an_edited_checkpoint_file_is_invalid(checkpoint_dir):
    append_daily(5)
    assert verify().checkpoint.sequence == 5
    [path] = checkpoint_dir.glob("checkpoint-*.json")
    document = json.loads(path.read_text())
    document["head_hash"] = "0" * 64
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    path.write_text(json.dumps(document))

    result = verify()

    assert findings(result) == [(5, "checkpoint_invalid")]


def test_a_checkpoint_signed_by_an_untrusted_key_is_invalid(checkpoint_dir):
    entries = append_daily(5)
    untrusted = base64.b64encode(bytes(range(40, 72))).decode()
    signed = checkpoint_sign(
        Checkpoint(sequence=5, head_hash=entries[-1].current_hash, entry_count=5, signed_at=NOW),
        signing_key=untrusted,
    )
    DirectorySink(checkpoint_dir).write(signed)

    result = verify()

    assert findings(result) == [(5, "checkpoint_invalid")]
