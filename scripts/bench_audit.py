"""Time the audit trail's verification at scale, and print the figures as a markdown table.

Run through `make bench`, in a dedicated PostgreSQL database of its own
(BENCH_AUDIT_DATABASE_URL): it replaces the trail and the cash tables there.
BENCH_AUDIT_PAYMENTS sets the number of payments (default 1,000,000; 40 a session, 1,000
agents) and BENCH_AUDIT_NEW how many entries follow the last signed checkpoint (default
10,000).

The sessions, payments and commissions, and the chain that records them (one
session.opened, one transaction.recorded per payment, one session.closed, each with the
rows' states as the services write them, auditing/rows.py) are computed here with the
application's rules and loaded with COPY; a chain of the wanted length from an earlier run
is reused, so a rerun only times. Its timestamps span the last 400 days, so the scheduled
check's default 30-day period holds about 1/13th of it.

Checkpoints go to var/bench-checkpoints/ (recreated on every run), never to the
development directory var/checkpoints/.

Every run also cross-checks, on a sample of rows, the fast canonical form (orjson, the
timestamp's text) against the reference (plain json, strftime), and stops on a difference;
then it times `verify_audit_trail --full` and the chain alone against their floor, a bare
psycopg2 process streaming the rows as text plus one HMAC-SHA256 each, interleaved, median
of BENCH_AUDIT_ROUNDS (3) whole-process runs with their peak RSS.
"""

import csv
import datetime as dt
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT_DIR = ROOT / "var" / "bench-checkpoints"

sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# Set before Django reads its settings: the bench's checkpoints stay in their own directory.
os.environ["AUDIT_CHECKPOINT_SINKS"] = f"file://{CHECKPOINT_DIR}"

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
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
    canonical_bytes_fast,
    entry_hmac,
    entry_message,
    row_decode,
    timestamp_format,
    timestamp_text_canonical,
)
from auditing.rows import rows_check  # noqa: E402
from auditing.selectors import ChainHead, audit_chain_head  # noqa: E402
from auditing.services import (  # noqa: E402
    checkpoint_sign_and_store,
    verification_run_finish,
    verification_run_start,
)
from auditing.verification import (  # noqa: E402
    CHAIN_START,
    VerificationResult,  # noqa: E402
    chain_verify_ranges,
)
from mailing.models import EmailMessage  # noqa: E402
from payments.audited import AUDITED_TABLES  # noqa: E402
from payments.models import Agent  # noqa: E402
from tasks.audit_emails import tampering_alert_queue  # noqa: E402
from tasks.operations import audit_checkpoint  # noqa: E402
from tasks.operations.verify_audit_trail import audit_trail_verify, options_parse  # noqa: E402
from tasks.results import Trigger  # noqa: E402

PAYMENTS = int(os.environ.get("BENCH_AUDIT_PAYMENTS", "1000000"))
PER_SESSION = 40
AGENTS = 1000
SESSIONS = max(1, PAYMENTS // PER_SESSION)
# The marker, then per session: opened, its payments, closed.
ENTRIES = 1 + SESSIONS * (PER_SESSION + 2)
NEW = int(os.environ.get("BENCH_AUDIT_NEW", "10000"))
SPAN = dt.timedelta(days=400)
ALERT_FINDINGS = int(os.environ.get("BENCH_AUDIT_ALERT_FINDINGS", "100000"))
ROUNDS = int(os.environ.get("BENCH_AUDIT_ROUNDS", "3"))
CROSS_CHECK_SAMPLE = 5000
# The first entry's action marks a chain this script made (and may therefore replace).
MARKER_ACTION = "bench.chain_seeded"
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
    """Replace the cash tables and the trail with SESSIONS closed sessions of PER_SESSION
    payments and the ENTRIES entries that record them, computed with the real rules and
    loaded by COPY.

    The audit table refuses TRUNCATE through its append-only triggers. This is the bench's
    own database, so the triggers are skipped for the TRUNCATEs only with
    session_replication_role = replica (SET LOCAL: superuser only). Never do this to a real
    trail: emptying it is exactly what the triggers stop. The rows are then loaded with
    every rule of the payments tables on (payments/database_rules.py), in the services'
    order: a wave of sessions opened, one per agent (an agent has one open session at a
    time), their payments and commissions, then the wave closed.
    """
    key_id = settings.AUDIT_CHAIN_KEY_ID
    key = settings.AUDIT_CHAIN_KEYS[key_id]
    step = SPAN / ENTRIES
    first = timezone.now() - dt.timedelta(minutes=10) - step * ENTRIES
    agents = _agents()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        _checkpoint_state_clear(cursor)
        cursor.execute("TRUNCATE auditing_auditentry")
        cursor.execute(
            "TRUNCATE payments_commission, payments_cashtransaction, payments_cashsession CASCADE"
        )
        cursor.execute("SET LOCAL session_replication_role = origin")
        # The deferred rules (foreign keys among them) check at each COPY, not all at the
        # commit: the queue of pending checks stays one wave long.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "CREATE TEMPORARY TABLE bench_closing (id bigint, closed_at timestamptz, "
            "counted_balance numeric, expected_balance numeric, discrepancy numeric) "
            "ON COMMIT DROP"
        )
        tables = {name: io.StringIO() for name in COPY_COLUMNS}
        writers = {name: csv.writer(buffer) for name, buffer in tables.items()}
        previous = GENESIS_HASH

        def append(sequence: int, action: str, subject: tuple[str, object], data: dict) -> None:
            nonlocal previous
            entry = Entry(
                sequence=sequence,
                timestamp=first + step * sequence,
                action=action,
                actor_id=None,
                actor_name="system",
                subject_type=subject[0],
                subject_id=str(subject[1]),
                data=data,
                previous_hash=previous,
                current_hash="",
                key_id=key_id,
            )
            current = entry_hmac(entry_message(entry), key)
            # An empty unquoted field is NULL in COPY's CSV: actor_id (None) only.
            writers["auditing_auditentry"].writerow(
                (
                    sequence,
                    entry.timestamp.isoformat(),
                    action,
                    None,
                    "system",
                    entry.subject_type,
                    entry.subject_id,
                    json.dumps(data, separators=(",", ":"), ensure_ascii=False),
                    previous,
                    current,
                    key_id,
                )
            )
            previous = current

        append(1, MARKER_ACTION, ("", ""), {"entries": ENTRIES, "payments": PAYMENTS})
        sequence = 1
        for session_id in range(1, SESSIONS + 1):
            sequence = _session_seed(
                session_id, agents[session_id % len(agents)], sequence, append, writers, first, step
            )
            if session_id % len(agents) == 0:
                _copy(cursor, tables)
        _copy(cursor, tables)
        for table in ("payments_cashsession", "payments_cashtransaction", "payments_commission"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - constant
                f"(SELECT max(id) FROM {table}))"
            )
        cursor.execute("ANALYZE")


# In this order: a wave's sessions open, then their payments, their commissions, and the
# closing of the sessions (bench_closing, applied by _copy).
COPY_COLUMNS = {
    "auditing_auditentry": COLUMNS,
    "payments_cashsession": (
        "id, number, agent_id, status, opened_at, opening_balance, closed_at, auto_closed, "
        "counted_balance, expected_balance, discrepancy, closing_notes, reconciliation_notes"
    ),
    "payments_cashtransaction": (
        "id, receipt_number, session_id, agent_id, payer_reference, tax_amount, "
        "amount_tendered, change_given, status, created_at, void_reason"
    ),
    "payments_commission": (
        "id, cash_transaction_id, agent_id, session_id, base_amount, rate, amount, status, "
        "created_at"
    ),
    "bench_closing": "id, closed_at, counted_balance, expected_balance, discrepancy",
}
# An empty unquoted CSV field is NULL to COPY: these text columns take it as ''.
EMPTY_TEXT = {
    "auditing_auditentry": "subject_type, subject_id",
    "payments_cashsession": "closing_notes, reconciliation_notes",
    "payments_cashtransaction": "void_reason",
    "payments_commission": "status",
    "bench_closing": "",
}
OPENING = Decimal("20000.00")
RATE = Decimal("2.00")


def _agents() -> list[tuple[int, str]]:
    """AGENTS agents (id, code), created once."""
    User = get_user_model()
    have = Agent.objects.filter(code__startswith="BA").count()
    if have < AGENTS:
        users = User.objects.bulk_create(
            [User(username=f"bench-audit-{n:04d}") for n in range(have, AGENTS)]
        )
        Agent.objects.bulk_create(
            [
                Agent(user=user, code=f"BA{n:04d}", full_name=f"Bench agent {n}")
                for n, user in zip(range(have, AGENTS), users, strict=True)
            ]
        )
    return list(
        Agent.objects.filter(code__startswith="BA").order_by("code").values_list("id", "code")
    )


def _session_seed(session_id, agent, sequence, append, writers, first, step) -> int:
    """One session's rows and entries, as the services write them; returns the last
    sequence used."""
    agent_id, code = agent
    number = f"BS-{session_id:07d}"
    sequence += 1
    opened_at = first + step * sequence
    session = {
        "id": session_id,
        "number": number,
        "agent_id": agent_id,
        "status": "open",
        "opened_at": timestamp_format(opened_at),
        "opening_balance": str(OPENING),
        "closed_at": None,
        "auto_closed": False,
        "expected_balance": None,
        "counted_balance": None,
        "discrepancy": None,
        "reconciled_at": None,
    }
    append(
        sequence,
        "session.opened",
        ("payments.cashsession", session_id),
        {
            "number": number,
            "agent": code,
            "opening_balance": str(OPENING),
            "after": {"payments.cashsession": [session]},
        },
    )
    collected = Decimal(0)
    for index in range(PER_SESSION):
        sequence += 1
        payment_id = (session_id - 1) * PER_SESSION + index + 1
        created_at = timestamp_format(first + step * sequence)
        tax = Decimal((payment_id * 7919) % 240000 + 5000).quantize(Decimal("0.01"))
        tendered = tax + (Decimal("500.00") if payment_id % 3 == 0 else Decimal("0.00"))
        commission = (tax * RATE / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        receipt = f"{number}-{index + 1:04d}"
        payment_state = {
            "id": payment_id,
            "receipt_number": receipt,
            "session_id": session_id,
            "agent_id": agent_id,
            "payer_reference": f"NIF-{payment_id:08d}",
            "tax_amount": str(tax),
            "amount_tendered": str(tendered),
            "change_given": str(tendered - tax),
            "status": "completed",
            "created_at": created_at,
            "voided_at": None,
        }
        commission_state = {
            "id": payment_id,
            "cash_transaction_id": payment_id,
            "session_id": session_id,
            "agent_id": agent_id,
            "base_amount": str(tax),
            "rate": str(RATE),
            "amount": str(commission),
            "status": "pending",
            "created_at": created_at,
            "paid_at": None,
            "cancelled_at": None,
        }
        append(
            sequence,
            "transaction.recorded",
            ("payments.cashtransaction", payment_id),
            {
                "receipt_number": receipt,
                "session": number,
                "agent": code,
                "payer_reference": payment_state["payer_reference"],
                "tax_amount": str(tax),
                "amount_tendered": str(tendered),
                "change_given": str(tendered - tax),
                "commission_rate": str(RATE),
                "commission_amount": str(commission),
                "after": {
                    "payments.cashtransaction": [payment_state],
                    "payments.commission": [commission_state],
                },
            },
        )
        writers["payments_cashtransaction"].writerow(
            (
                payment_id,
                receipt,
                session_id,
                agent_id,
                payment_state["payer_reference"],
                tax,
                tendered,
                tendered - tax,
                "completed",
                created_at,
                "",
            )
        )
        writers["payments_commission"].writerow(
            (
                payment_id,
                payment_id,
                agent_id,
                session_id,
                tax,
                RATE,
                commission,
                "pending",
                created_at,
            )
        )
        collected += tax
    sequence += 1
    expected = OPENING + collected
    counted = expected - (Decimal("1000.00") if session_id % 7 == 0 else Decimal("0.00"))
    session.update(
        status="closed",
        closed_at=timestamp_format(first + step * sequence),
        expected_balance=str(expected),
        counted_balance=str(counted),
        discrepancy=str(counted - expected),
    )
    append(
        sequence,
        "session.closed",
        ("payments.cashsession", session_id),
        {
            "number": number,
            "agent": code,
            "expected_balance": str(expected),
            "counted_balance": str(counted),
            "discrepancy": str(counted - expected),
            "notes": "",
            "after": {"payments.cashsession": [session]},
        },
    )
    # Opened, then closed once its payments are in (payments_payment_session_is_open).
    writers["payments_cashsession"].writerow(
        (session_id, number, agent_id, "open", session["opened_at"], OPENING)
        + (None, "f", None, None, None, "", "")
    )
    writers["bench_closing"].writerow(
        (session_id, session["closed_at"], counted, expected, counted - expected)
    )
    return sequence


def _copy(cursor, tables: dict[str, io.StringIO]) -> None:
    for name, buffer in tables.items():
        buffer.seek(0)
        not_null = f", FORCE_NOT_NULL ({EMPTY_TEXT[name]})" if EMPTY_TEXT[name] else ""
        cursor.copy_expert(
            f"COPY {name} ({COPY_COLUMNS[name]}) FROM STDIN WITH (FORMAT csv{not_null})",
            buffer,
        )
        buffer.seek(0)
        buffer.truncate()
    cursor.execute(
        "UPDATE payments_cashsession s SET status = 'closed', closed_at = c.closed_at, "
        "counted_balance = c.counted_balance, expected_balance = c.expected_balance, "
        "discrepancy = c.discrepancy FROM bench_closing c WHERE s.id = c.id"
    )
    cursor.execute("TRUNCATE bench_closing")


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


# The floor and the cross-check ----------------------------------------------------------

# The floor of a full verification, written plainly: one process without Django, a named
# cursor inside a transaction (not WITH HOLD: nothing is materialized), the rows as text,
# and one HMAC-SHA256 of each row's data. No checks, no canonical form: nothing to tune.
FLOOR = """
import hashlib, hmac, os, psycopg2
connection = psycopg2.connect(os.environ["DATABASE_URL"])
connection.set_session(readonly=True, isolation_level="REPEATABLE READ")
key = os.environ["BENCH_FLOOR_KEY"].encode()
with connection.cursor() as cursor:
    cursor.execute("SET TIME ZONE 'UTC'")
with connection.cursor(name="floor") as cursor:
    cursor.itersize = 5000
    cursor.execute("SELECT %s FROM auditing_auditentry ORDER BY sequence")
    for row in cursor:
        hmac.digest(key, row[7].encode(), hashlib.sha256)
"""


def fast_against_reference(sample: int = CROSS_CHECK_SAMPLE) -> int:
    """M built the fast way (what ChainChecker's fast path hashes) against the reference
    (plain json, strftime) for ``sample`` rows spread over the chain; exits on the first
    difference. Returns the rows compared."""
    step = max(1, ENTRIES // sample)
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.execute(
            f"SELECT {COLUMNS_AS_TEXT} FROM auditing_auditentry "  # noqa: S608 - constants
            "WHERE sequence %% %s = 1 OR sequence > %s ORDER BY sequence",
            [step, ENTRIES - 50],
        )
        rows = [StoredRow(*values) for values in cursor.fetchall()]
    for row in rows:
        reference = entry_message(row_decode(row))
        text, _ = timestamp_text_canonical(row.timestamp) or (None, None)
        fast = canonical_bytes_fast(
            {
                "sequence": row.sequence,
                "timestamp": text,
                "action": row.action,
                "actor_id": row.actor_id,
                "actor_name": row.actor_name,
                "subject_type": row.subject_type or "",
                "subject_id": row.subject_id or "",
                "data": orjson.loads(row.data),
                "previous_hash": row.previous_hash,
            }
        )
        if fast != reference:
            sys.exit(
                f"The fast canonical form differs from the reference at entry {row.sequence}:"
                f"\n  fast      {fast!r}\n  reference {reference!r}"
            )
    return len(rows)


def process_timed(command: list[str], *, environment: dict | None = None) -> tuple[float, int]:
    """Seconds and peak RSS (MB) of a whole process, under /usr/bin/time."""
    with tempfile.NamedTemporaryFile("r") as rss:
        started = time.perf_counter()
        completed = subprocess.run(  # noqa: S603 - our own commands
            ["/usr/bin/time", "-f", "%M", "-o", rss.name, *command],
            env=environment or os.environ,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        seconds = time.perf_counter() - started
        if completed.returncode != 0:
            sys.exit(f"{' '.join(command)} exited {completed.returncode}: {completed.stderr!r}")
        return seconds, int(rss.read().split()[-1]) // 1024


def floor_against_ours() -> list[tuple[str, float, int]]:
    """(case, median seconds, peak RSS MB), each case run ROUNDS times, interleaved."""
    environment = dict(os.environ, BENCH_FLOOR_KEY=settings.AUDIT_CHAIN_KEY)
    floor = [sys.executable, "-c", FLOOR % COLUMNS_AS_TEXT]
    verify = [sys.executable, str(ROOT / "manage.py"), "verify_audit_trail", "--full", "--json"]
    chain = [
        sys.executable,
        "-c",
        "import django; django.setup(); from auditing.verification import chain_verify; "
        "assert chain_verify().intact",
    ]
    cases = {"floor": floor, "verify_audit_trail --full": verify, "chain alone": chain}
    timings: dict[str, list[tuple[float, int]]] = {name: [] for name in cases}
    for _ in range(ROUNDS):
        for name, command in cases.items():
            checkpoint_state_reset()
            timings[name].append(process_timed(command, environment=environment))
    checkpoint_state_reset()
    return [
        (
            name,
            statistics.median(seconds for seconds, _ in runs),
            max(rss for _, rss in runs),
        )
        for name, runs in timings.items()
    ]


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("The audit bench runs on PostgreSQL: set DATABASE_URL")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        (database,) = cursor.fetchone()
    # It empties the trail and the cash tables: only ever in a bench's own database.
    if "bench" not in database:
        sys.exit(
            f"The audit bench replaces the audit trail and the cash tables of {database}; "
            "point DATABASE_URL at a database of its own whose name says bench "
            "(make bench uses cash_office_bench_audit)."
        )
    print(
        f"\n=== Audit trail: {PAYMENTS:,} payments in {SESSIONS:,} sessions, {ENTRIES:,} "
        f"entries, {NEW:,} after the last checkpoint ===\n"
    )
    if chain_reusable():
        print("  chain reused from an earlier run")
    else:
        print(
            f"  seeding {ENTRIES:,} entries and their rows (computed in Python, loaded with "
            "COPY)..."
        )
        started = time.perf_counter()
        chain_seed()
        print(f"  seeded in {time.perf_counter() - started:.1f} s")

    compared = fast_against_reference()
    print(f"  fast canonical form identical to the reference on {compared:,} sampled rows")
    floor_rows = floor_against_ours()
    floor_seconds = floor_rows[0][1]
    print(f"\n| whole process, {ENTRIES:,} entries | median s | x floor | peak RSS MB |")
    print("|---|---:|---:|---:|")
    for label, seconds, rss in floor_rows:
        print(f"| {label} | {seconds:.2f} | {seconds / floor_seconds:.2f} | {rss} |")
    if os.environ.get("BENCH_AUDIT_FLOOR_ONLY"):
        return

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
    rows.append(("verify_audit_trail --full (chain and rows)", result_checked(result), seconds))
    seconds, result = timed(lambda: chain_verify_ranges([(CHAIN_START, ENTRIES)]))
    rows.append(("the chain alone (chain_verify_ranges)", result_checked(result), seconds))
    seconds, report = timed(lambda: rows_check(AUDITED_TABLES))
    if report.findings:
        sys.exit(f"The bench's rows are reported changed: {report.findings[:3]}")
    checked_rows = sum(table.rows for table in report.checked)
    rows.append(
        (
            "the rows alone (rows_check: "
            + ", ".join(f"{table.rows:,} {table.table}" for table in report.checked)
            + ")",
            checked_rows,
            seconds,
        )
    )
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

    print("\n| case | entries or rows checked | seconds | per second |")
    print("|---|---:|---:|---:|")
    for label, checked, seconds in rows:
        print(f"| {label} | {checked:,} | {seconds:.2f} | {checked / seconds:,.0f} |")


if __name__ == "__main__":
    main()
