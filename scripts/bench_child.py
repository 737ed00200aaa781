"""One process of `make bench` (scripts/bench.py): a real entry point, or its floor.

    bench_child.py manage <command> [options]   manage.py <command>, as cron runs it
    bench_child.py append <count>                <count> appends through audit_entry_append
    bench_child.py floor-report <year> <month>   the report's GROUP BY agent, status
    bench_child.py floor-reminder <days>         the reminder's grouping query
    bench_child.py floor-verify                  named cursor + one HMAC-SHA256 a row
    bench_child.py floor-close                   one bare transaction a session
    bench_child.py floor-append <count>          the append protocol in bare SQL

Each one writes to the file named by BENCH_REPORT_FILE when its work began and ended
(after Python and Django are loaded) and how many SQL statements it sent through Django.
They are counted with a connection.execute_wrapper installed on every connection as it
opens, before the command runs: the statements the command sends, with no server-side log
to parse and no extension to install. A statement on a raw psycopg2 cursor is not seen
(floor-verify counts its own), and a server-side cursor's fetches count once.
"""

import atexit
import datetime as dt
import hmac
import json
import os
import sys
import time
from decimal import Decimal
from hashlib import sha256
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import execute_from_command_line  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.backends.signals import connection_created  # noqa: E402
from django.utils import timezone  # noqa: E402

from auditing.hashing import compute_entry_hash, normalize_data  # noqa: E402
from auditing.models import AuditEntry  # noqa: E402
from auditing.services import CHAIN_LOCK_KEY, audit_entry_append  # noqa: E402
from payments.audited import states_after  # noqa: E402
from payments.models import CashSession, SystemConfiguration  # noqa: E402
from payments.selectors import expected_balance  # noqa: E402

queries = 0
# The work starts here, once Python and Django are loaded: start-up is timed apart.
work_started = time.time()


def _count(execute, sql, params, many, context):
    global queries
    queries += 1
    return execute(sql, params, many, context)


def _wrap(sender, connection, **kwargs):
    connection.execute_wrappers.append(_count)


connection_created.connect(_wrap)


@atexit.register
def _report() -> None:
    path = os.environ.get("BENCH_REPORT_FILE")
    if path:
        Path(path).write_text(json.dumps({"queries": queries, "work": [work_started, time.time()]}))


def floor_report(year: int, month: int) -> None:
    start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT agent_id, status, count(*), sum(tax_amount) FROM payments_cashtransaction"
            " WHERE created_at >= %s AND created_at < %s GROUP BY agent_id, status",
            [start, end],
        )
        cursor.fetchall()


def floor_reminder(days: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT agent_id, count(*), min(closed_at) FROM payments_cashsession"
            " WHERE status = 'closed' AND closed_at < %s GROUP BY agent_id",
            [timezone.now() - dt.timedelta(days=days)],
        )
        cursor.fetchall()


def floor_verify() -> None:
    """Stream every entry as text through a server-side cursor inside a transaction (not
    WITH HOLD, so nothing is materialized) and compute one HMAC-SHA256 a row over the
    columns as read. It neither decodes JSON nor rebuilds the canonical form: the floor is
    the fetch plus the MAC, and the verification does strictly more."""
    global queries
    key = settings.AUDIT_CHAIN_KEYS[settings.AUDIT_CHAIN_KEY_ID].encode()
    with transaction.atomic(), connection.connection.cursor(name="bench_floor") as cursor:
        cursor.itersize = 10000
        cursor.execute(
            "SELECT sequence, timestamp::text, action, actor_name, subject_type, subject_id,"
            " data::text, previous_hash, current_hash FROM auditing_auditentry ORDER BY sequence"
        )
        queries += 1
        for row in cursor:
            hmac.new(key, "|".join(map(str, row[:8])).encode(), sha256).hexdigest()


def _append_bare(cursor, *, action: str, data: dict) -> None:
    """The append protocol of audit_entry_append in bare SQL: the chain lock, the head,
    the entry with its HMAC (the project's own), inside the caller's transaction."""
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
    cursor.execute(
        "SELECT sequence, current_hash, timestamp FROM auditing_auditentry"
        " ORDER BY sequence DESC LIMIT 1"
    )
    sequence, previous, last = cursor.fetchone()
    entry = AuditEntry(
        sequence=sequence + 1,
        previous_hash=previous,
        timestamp=max(timezone.now(), last),
        action=action,
        actor_id=None,
        actor_name="system",
        subject_type=data.pop("subject_type", ""),
        subject_id=data.pop("subject_id", ""),
        data=normalize_data(data),
        key_id=settings.AUDIT_CHAIN_KEY_ID,
    )
    entry.current_hash = compute_entry_hash(entry)
    cursor.execute(
        "INSERT INTO auditing_auditentry (sequence, timestamp, action, actor_id, actor_name,"
        " subject_type, subject_id, data, previous_hash, current_hash, key_id)"
        " VALUES (%s, %s, %s, NULL, %s, %s, %s, %s::jsonb, %s, %s, %s)",
        [
            entry.sequence,
            entry.timestamp,
            entry.action,
            entry.actor_name,
            entry.subject_type,
            entry.subject_id,
            json.dumps(entry.data),
            entry.previous_hash,
            entry.current_hash,
            entry.key_id,
        ],
    )


def floor_close() -> None:
    """Close every expired session, one bare transaction each: lock it, sum its payments,
    update it, and append its audit entry with the same after-state as the service, so the
    trail still verifies. No notification, outbox row or rendered notes: the floor is the
    closing and its audit entry."""
    config = SystemConfiguration.load()
    cutoff = timezone.now() - dt.timedelta(hours=config.session_timeout_hours)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM payments_cashsession WHERE status = 'open' AND opened_at < %s"
            " ORDER BY id",
            [cutoff],
        )
        ids = [row[0] for row in cursor.fetchall()]
    columns = [field.attname for field in CashSession._meta.concrete_fields]
    for session_id in ids:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT s.opening_balance, a.code FROM payments_cashsession s JOIN"
                " payments_agent a ON a.id = s.agent_id WHERE s.id = %s AND s.status = 'open'"
                " FOR UPDATE OF s SKIP LOCKED",
                [session_id],
            )
            locked = cursor.fetchone()
            if locked is None:
                continue
            opening, code = locked
            cursor.execute(
                "SELECT coalesce(sum(tax_amount), 0) FROM payments_cashtransaction"
                " WHERE session_id = %s AND status = 'completed'",
                [session_id],
            )
            expected = expected_balance(
                opening_balance=opening, collected=Decimal(cursor.fetchone()[0])
            )
            returning = ", ".join(columns)  # the model's own column names
            cursor.execute(
                "UPDATE payments_cashsession SET status = 'closed', closed_at = now(),"  # noqa: S608
                " auto_closed = true, expected_balance = %s, closing_notes = 'bench floor'"
                f" WHERE id = %s RETURNING {returning}",
                [expected, session_id],
            )
            session = CashSession(**dict(zip(columns, cursor.fetchone(), strict=True)))
            _append_bare(
                cursor,
                action="session.auto_closed",
                data={
                    "subject_type": "payments.cashsession",
                    "subject_id": str(session_id),
                    "number": session.number,
                    "agent": code,
                    "expected_balance": expected,
                    "after": states_after(session),
                },
            )


def append(count: int) -> None:
    for index in range(count):
        audit_entry_append(
            action="bench.appended", actor=None, data={"writer": os.getpid(), "index": index}
        )


def floor_append(count: int) -> None:
    for index in range(count):
        with transaction.atomic(), connection.cursor() as cursor:
            _append_bare(
                cursor, action="bench.appended", data={"writer": os.getpid(), "index": index}
            )


def start_together() -> None:
    """Concurrent writers start their work together, once every one of them is loaded:
    each says it is ready in BENCH_READY_DIR and waits there for the file "go"."""
    global work_started
    ready = Path(os.environ["BENCH_READY_DIR"])
    (ready / f"ready-{os.getpid()}").touch()
    while not (ready / "go").exists():
        time.sleep(0.005)
    work_started = time.time()


def main() -> None:
    verb, *args = sys.argv[1:]
    if os.environ.get("BENCH_READY_DIR"):
        start_together()
    if verb == "manage":
        execute_from_command_line(["manage.py", *args])
    elif verb == "append":
        append(int(args[0]))
    elif verb == "floor-report":
        floor_report(int(args[0]), int(args[1]))
    elif verb == "floor-reminder":
        floor_reminder(int(args[0]))
    elif verb == "floor-verify":
        floor_verify()
    elif verb == "floor-close":
        floor_close()
    elif verb == "floor-append":
        floor_append(int(args[0]))
    else:
        sys.exit(f"unknown verb {verb!r}")


if __name__ == "__main__":
    main()
