"""Time the audit trail's verification at scale, and print the figures as a markdown table.

Run through `make bench` (after scripts/bench.py, in the same dedicated PostgreSQL
database). BENCH_AUDIT_ENTRIES sets the chain's length (default 1,000,000) and
BENCH_AUDIT_NEW how many entries follow the last signed checkpoint (default 10,000).

The chain is computed here with the application's rules (auditing/chain.py) and loaded
with COPY; a chain of the wanted length from an earlier run is reused, so a rerun only
times. Its timestamps span the last 400 days, so the scheduled check's default 30-day
period holds about 1/13th of it.

Checkpoints go to var/bench-checkpoints/ (recreated on every run), never to the
development directory var/checkpoints/.
"""

import csv
import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT_DIR = ROOT / "var" / "bench-checkpoints"

sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# Set before Django reads its settings: the bench's checkpoints stay in their own directory.
os.environ["AUDIT_CHECKPOINT_SINKS"] = f"file://{CHECKPOINT_DIR}"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.mail import EmailMultiAlternatives  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from auditing.chain import (  # noqa: E402
    COLUMNS_AS_TEXT,
    GENESIS_HASH,
    Entry,
    StoredRow,
    Violation,
    ViolationKind,
    entry_hmac,
    entry_message,
    row_decode,
)
from auditing.selectors import ChainHead, audit_chain_head  # noqa: E402
from auditing.services import (  # noqa: E402
    checkpoint_sign_and_store,
    verification_run_finish,
    verification_run_start,
)
from auditing.verification import VerificationResult  # noqa: E402
from mailing.models import EmailMessage  # noqa: E402
from tasks.audit_emails import tampering_alert_queue  # noqa: E402
from tasks.operations import audit_checkpoint  # noqa: E402
from tasks.operations.verify_audit_trail import audit_trail_verify, options_parse  # noqa: E402
from tasks.results import Trigger  # noqa: E402

ENTRIES = int(os.environ.get("BENCH_AUDIT_ENTRIES", "1000000"))
NEW = int(os.environ.get("BENCH_AUDIT_NEW", "10000"))
SPAN = dt.timedelta(days=400)
COPY_BATCH = 50_000
ALERT_FINDINGS = int(os.environ.get("BENCH_AUDIT_ALERT_FINDINGS", "100000"))
# The first entry's action marks a chain this script made (and may therefore replace).
MARKER_ACTION = "bench.chain_seeded"
ACTIONS = ("transaction.recorded", "transaction.recorded", "session.opened", "session.closed")
COLUMNS = (
    "sequence, timestamp, action, actor_id, actor_name, subject_type, subject_id, data, "
    "previous_hash, current_hash, key_id"
)


# The chain ----------------------------------------------------------------------------------


def chain_reusable() -> bool:
    """An earlier run's chain of exactly ENTRIES entries, whose head still verifies under
    the current key (a changed AUDIT_CHAIN_KEY means seeding again)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), max(sequence) FROM auditing_auditentry")
        count, head = cursor.fetchone()
        if count != ENTRIES or head != ENTRIES:
            return False
        cursor.execute("SELECT action FROM auditing_auditentry WHERE sequence = 1")
        if cursor.fetchone() != (MARKER_ACTION,):
            return False
        cursor.execute(
            f"SELECT {COLUMNS_AS_TEXT} FROM auditing_auditentry WHERE sequence = %s",  # noqa: S608
            [ENTRIES],
        )
        entry = row_decode(StoredRow(*cursor.fetchone()))
    key = settings.AUDIT_CHAIN_KEYS.get(entry.key_id)
    return key is not None and entry_hmac(entry_message(entry), key) == entry.current_hash


def chain_seed() -> None:
    """Replace the trail with ENTRIES entries computed with the real rules, loaded by COPY.

    The audit table refuses TRUNCATE through its append-only triggers. This is the bench's
    own database, so the triggers are skipped for this one transaction with
    session_replication_role = replica (SET LOCAL: superuser only, reset at commit).
    Never do this to a real trail: emptying it is exactly what the triggers stop.
    """
    key_id = settings.AUDIT_CHAIN_KEY_ID
    key = settings.AUDIT_CHAIN_KEYS[key_id]
    step = SPAN / ENTRIES
    first = timezone.now() - dt.timedelta(minutes=10) - step * ENTRIES
    previous = GENESIS_HASH
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        _checkpoint_state_clear(cursor)
        cursor.execute("TRUNCATE auditing_auditentry")
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for sequence in range(1, ENTRIES + 1):
            if sequence == 1:
                action, data = MARKER_ACTION, {"entries": ENTRIES}
            else:
                action = ACTIONS[sequence % len(ACTIONS)]
                data = {
                    "receipt_number": f"BR-{sequence:08d}",
                    "session": f"BS-{sequence // 40:07d}",
                    "tax_amount": f"{(sequence * 7919) % 240000 + 5000}.00",
                }
            entry = Entry(
                sequence=sequence,
                timestamp=first + step * sequence,
                action=action,
                actor_id=None,
                actor_name="system",
                subject_type="payments.cashtransaction",
                subject_id=str(sequence),
                data=data,
                previous_hash=previous,
                current_hash="",
                key_id=key_id,
            )
            current = entry_hmac(entry_message(entry), key)
            # An empty unquoted field is NULL in COPY's CSV: actor_id (None) only.
            writer.writerow(
                (
                    sequence,
                    entry.timestamp.isoformat(),
                    action,
                    None,
                    "system",
                    entry.subject_type,
                    entry.subject_id,
                    json.dumps(data, separators=(",", ":")),
                    previous,
                    current,
                    key_id,
                )
            )
            previous = current
            if sequence % COPY_BATCH == 0 or sequence == ENTRIES:
                buffer.seek(0)
                cursor.copy_expert(
                    f"COPY auditing_auditentry ({COLUMNS}) FROM STDIN WITH (FORMAT csv)", buffer
                )
                buffer.seek(0)
                buffer.truncate()
        cursor.execute("ANALYZE auditing_auditentry")


def _checkpoint_state_clear(cursor) -> None:
    # auditing_checkpoint is append-only too (triggers), and the runs point at its rows:
    # the three go together. The caller has set session_replication_role = replica.
    cursor.execute(
        "TRUNCATE auditing_verificationfinding, auditing_verificationrun, auditing_checkpoint"
    )


def checkpoint_state_reset() -> None:
    """No checkpoint but one at ENTRIES - NEW, in the bench's directory and the database.

    Every timed case starts here: a run that finds the chain intact signs its head, which
    would leave the next case nothing new to check. The checkpoint table is append-only,
    so it is emptied with its triggers skipped (bench database only, see chain_seed).
    """
    shutil.rmtree(CHECKPOINT_DIR, ignore_errors=True)
    CHECKPOINT_DIR.mkdir(parents=True)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        _checkpoint_state_clear(cursor)
    sequence = ENTRIES - NEW
    if sequence < 1:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_hash FROM auditing_auditentry WHERE sequence = %s", [sequence]
        )
        (head_hash,) = cursor.fetchone()
    written = checkpoint_sign_and_store(
        head=ChainHead(sequence=sequence, current_hash=head_hash), signed_at=timezone.now()
    )
    if written.failures:
        sys.exit(f"The bench's checkpoint could not be written: {written.failures}")


def alert_size(findings: int) -> tuple[float, int, int]:
    """The tampering alert of a run with ``findings`` content mismatches: seconds to store
    the findings and queue the alert, the MIME message's bytes, and its attachment's bytes.
    Everything is rolled back: the outbox and the runs are left as they were."""
    recipients = ["bench-auditor@example.com"]
    head = audit_chain_head()
    violations = [
        Violation(
            kind=ViolationKind.CONTENT_MISMATCH,
            sequence=sequence,
            timestamp=timezone.now(),
            detail="the entry's content does not match its stored hash",
            expected="a" * 64,
            stored="b" * 64,
        )
        for sequence in range(1, findings + 1)
    ]
    with transaction.atomic():
        started = time.perf_counter()
        run = verification_run_start(
            started_at=timezone.now(),
            trigger=Trigger.MANUAL,
            full=True,
            range_start=None,
            range_end=None,
            head=head,
        )
        run = verification_run_finish(
            run=run, result=VerificationResult(), violations=violations, duration_ms=0
        )
        email_id = tampering_alert_queue(run=run, recipients=recipients, head=head, last_good=None)
        seconds = time.perf_counter() - started
        email = EmailMessage.objects.get(pk=email_id)
        message = EmailMultiAlternatives(subject=email.subject, body=email.body_text, to=recipients)
        message.attach_alternative(email.body_html, "text/html")
        attached = 0
        for attachment in email.attachments:
            message.attach(attachment["filename"], attachment["content"], attachment["mimetype"])
            attached += len(attachment["content"].encode())
        size = len(message.message().as_bytes())
        transaction.set_rollback(True)
    return seconds, size, attached


# The cases ----------------------------------------------------------------------------------


def timed(work) -> tuple[float, object]:
    checkpoint_state_reset()
    started = time.perf_counter()
    outcome = work()
    return time.perf_counter() - started, outcome


def result_checked(result) -> int:
    if not result.intact:
        sys.exit(f"The bench's chain is reported tampered: {result.violations[:3]}")
    return result.entries_checked


def verifier_run(*, with_keys: bool) -> int | None:
    """cash-audit-verify on the bench database; None when the verifier is not installed."""
    program = Path(sys.executable).with_name("cash-audit-verify")
    if not (ROOT / "auditing" / "verifier.py").exists() or not program.exists():
        return None
    environment = dict(os.environ)
    environment.pop("AUDIT_CHAIN_KEYS_JSON", None)
    if with_keys:
        environment["AUDIT_CHAIN_KEYS_JSON"] = json.dumps(settings.AUDIT_CHAIN_KEYS)
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "out.json"
        with open(output, "w") as handle:
            completed = subprocess.run(  # noqa: S603 - our own console script
                [
                    str(program),
                    "--database-url",
                    os.environ["DATABASE_URL"],
                    "--public-key",
                    settings.AUDIT_PUBLIC_KEY,
                    "--checkpoints",
                    str(CHECKPOINT_DIR),
                    "--json",
                ],
                env=environment,
                stdout=handle,
                check=False,
            )
        text = output.read_text()
    if completed.returncode != 0:
        sys.exit(f"cash-audit-verify exited {completed.returncode}: {text[:500]}")
    return json.loads(text)["entries_checked"]


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("The audit bench runs on PostgreSQL: set DATABASE_URL")
    print(f"\n=== Audit trail: {ENTRIES:,} entries, {NEW:,} after the last checkpoint ===\n")
    if chain_reusable():
        print("  chain reused from an earlier run")
    else:
        print(f"  seeding {ENTRIES:,} entries (computed in Python, loaded with COPY)...")
        started = time.perf_counter()
        chain_seed()
        print(f"  seeded in {time.perf_counter() - started:.1f} s")

    rows = []
    # Each case starts from the same state: one checkpoint, NEW entries before the head.
    seconds, result = timed(
        lambda: audit_trail_verify(options=options_parse(), trigger=Trigger.MANUAL)
    )
    rows.append(("scheduled check (last 30 days + tail)", result_checked(result), seconds))
    seconds, result = timed(
        lambda: audit_checkpoint.audit_checkpoint(
            options=audit_checkpoint.options_parse(), trigger=Trigger.MANUAL
        )
    )
    rows.append(("hourly audit_checkpoint (tail only)", result_checked(result), seconds))
    seconds, result = timed(
        lambda: audit_trail_verify(options=options_parse(full=True), trigger=Trigger.MANUAL)
    )
    rows.append(("verify_audit_trail --full", result_checked(result), seconds))
    for with_keys, label in ((True, "with HMAC keys"), (False, "without keys")):
        seconds, checked = timed(lambda with_keys=with_keys: verifier_run(with_keys=with_keys))
        if checked is None:
            print("  cash-audit-verify is not installed here (auditing/verifier.py): skipped")
            break
        rows.append((f"cash-audit-verify --database-url, {label}", checked, seconds))
    checkpoint_state_reset()  # leave the state every case starts from

    seconds, size, attached = alert_size(ALERT_FINDINGS)
    csv_note = (
        f"CSV attachment {attached / 1e6:.2f} MB"
        if attached
        else "no CSV attached: over the alert's limit, the email links the admin's CSV"
    )
    print(
        f"\n  tampering alert for {ALERT_FINDINGS:,} findings: {size / 1e6:.2f} MB as sent "
        f"({csv_note}); findings stored and alert queued in {seconds:.1f} s"
    )

    print("\n| case | entries checked | seconds | entries/s |")
    print("|---|---:|---:|---:|")
    for label, checked, seconds in rows:
        print(f"| {label} | {checked:,} | {seconds:.2f} | {checked / seconds:,.0f} |")


if __name__ == "__main__":
    main()
