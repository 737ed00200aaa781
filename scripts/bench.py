"""`make bench`: every operation through its real entry point at production size, each
beside its floor measured in the same run, and the table written to bench/results.json.

BENCH_SCALE scales every size (1.0 = the issue's national network: 1,000 agents, 1,000,000
payments and as many audit entries, 10,000 expired open sessions on 10,000 agents, half of
them with a payment). BENCH_RUNS sets how many interleaved rounds (default 3, the median is
reported). BENCH_RESULTS names the JSON file (default bench/results.json). BENCH_WRITERS
(default 8) and BENCH_APPENDS_PER_WRITER size the concurrent appends. bench/README.md
explains the columns.

The data set is made once in the database of DATABASE_URL (make bench: BENCH_DATABASE_URL)
and reused while its marker, the first audit entry, names the same sizes:
- the closed sessions, their payments and commissions and the chain recording them are
  scripts/bench_audit.py's chain_seed (computed with the project's rules and hashing,
  loaded with COPY, every database rule on), its span narrowed to the last 30 days;
- the expired open sessions, their payments and the entries recording them are bulk
  inserted as the services write them, again before every closing run (closing uses
  them up).
"""

import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# The checkpoints that the verifications sign go to a folder of the bench database's own,
# set before Django reads its settings and inherited by every child: never the development
# folder var/checkpoints/, and a checkpoint of one bench database is no other one's chain.
# Not under var/bench-checkpoints/, which the audit bench empties on every case.
CHECKPOINTS = (
    ROOT
    / "var"
    / f"bench-checkpoints-{urlsplit(os.environ.get('DATABASE_URL', '')).path.strip('/')}"
)
CHECKPOINT_SINKS = f"file://{CHECKPOINTS}"
os.environ["AUDIT_CHECKPOINT_SINKS"] = CHECKPOINT_SINKS

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402
from tqdm import tqdm  # noqa: E402

from auditing.chain import GENESIS_HASH  # noqa: E402
from auditing.hashing import compute_entry_hash, normalize_data  # noqa: E402
from auditing.models import AuditEntry  # noqa: E402
from auditing.services import CHAIN_LOCK_KEY, SYSTEM_ACTOR_NAME  # noqa: E402
from payments.audited import states_after  # noqa: E402
from payments.models import (  # noqa: E402
    Agent,
    CashSession,
    CashTransaction,
    Commission,
    SessionStatus,
    SystemConfiguration,
)
from payments.money import commission_for  # noqa: E402

SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
RESULTS = Path(os.environ.get("BENCH_RESULTS", ROOT / "bench" / "results.json"))
PAYMENTS = max(40, round(1_000_000 * SCALE))
AGENTS = max(3, round(1_000 * SCALE))
EXPIRED = max(2, round(10_000 * SCALE))
# BENCH_WRITERS and BENCH_APPENDS_PER_WRITER override the appends' sizes: the smoke test
# wants the shape, not the rate, and each writer is a Django start-up.
WRITERS = int(os.environ.get("BENCH_WRITERS", "8"))
# Enough entries even at a tiny scale for a rate, not a start-up, to be measured.
APPENDS_PER_WRITER = int(
    os.environ.get("BENCH_APPENDS_PER_WRITER") or max(100, round(1_000 * SCALE))
)
REMINDER_DAYS = 7
SPAN = dt.timedelta(days=30)
EXPIRED_AGENT_PREFIX = "BX"
BULK = 2000
# GNU time measures each child's peak RSS (see run()).
TIME = "/usr/bin/time"
CHILD = [sys.executable, str(ROOT / "scripts" / "bench_child.py")]


# Seeding ------------------------------------------------------------------------------------


def _bench_audit():
    """scripts/bench_audit.py, sized for this scale. Imported here, not at the top: it
    points the checkpoints at its own folder as it is imported, and we point them back."""
    import bench_audit  # noqa: PLC0415 - see the docstring

    os.environ["AUDIT_CHECKPOINT_SINKS"] = CHECKPOINT_SINKS

    bench_audit.PAYMENTS = PAYMENTS
    bench_audit.AGENTS = AGENTS
    bench_audit.SESSIONS = max(1, PAYMENTS // bench_audit.PER_SESSION)
    bench_audit.ENTRIES = 1 + bench_audit.SESSIONS * (bench_audit.PER_SESSION + 2)
    bench_audit.SPAN = SPAN
    return bench_audit


def seed_matches() -> bool:
    """The marker entry (sequence 1) names this scale's sizes, and the expired sessions'
    agents are all there. Entries appended by earlier runs (closings, appends) are kept."""
    bench_audit = _bench_audit()
    with connection.cursor() as cursor:
        cursor.execute("SELECT action, data::text FROM auditing_auditentry WHERE sequence = 1")
        marker = cursor.fetchone()
    if marker is None or marker[0] != bench_audit.MARKER_ACTION:
        return False
    sizes = json.loads(marker[1])
    return (
        sizes == {"entries": bench_audit.ENTRIES, "payments": PAYMENTS}
        and Agent.objects.filter(code__startswith="BA").count() == AGENTS
        and Agent.objects.filter(code__startswith=EXPIRED_AGENT_PREFIX).count() == EXPIRED
    )


def seed() -> None:
    bench_audit = _bench_audit()
    print(f"Seeding {PAYMENTS:,} payments and {bench_audit.ENTRIES:,} audit entries (COPY)...")
    started = time.perf_counter()
    # The trail is replaced (chain_seed empties the checkpoint tables too): the signed
    # heads of the chain before are no longer this chain's.
    shutil.rmtree(CHECKPOINTS, ignore_errors=True)
    bench_audit.chain_seed()
    User = get_user_model()
    have = Agent.objects.filter(code__startswith=EXPIRED_AGENT_PREFIX).count()
    users = User.objects.bulk_create(
        [User(username=f"bench-expired-{n:05d}") for n in range(have, EXPIRED)]
    )
    Agent.objects.bulk_create(
        [
            # With an address: closing then queues each agent's email in the outbox.
            Agent(
                user=user,
                code=f"{EXPIRED_AGENT_PREFIX}{n:05d}",
                full_name=f"Expired {n}",
                email=f"x{n:05d}@agents.example.com",
            )
            for n, user in zip(range(have, EXPIRED), users, strict=True)
        ]
    )
    print(f"  seeded in {time.perf_counter() - started:.1f} s")


def expired_sessions_seed() -> int:
    """One expired open session for each expired-session agent without an open one, every
    other one with a payment and its commission, and the audit entries that record them
    linked onto the chain's head, in a few bulk statements under the chain lock.

    The rows are those session_open and transaction_record write (every database rule on,
    tests/test_bench_seed.py checks them), and each entry records their state as
    states_after does, so that a verification after the bench finds the trail clean. Going
    through the services instead took about 0.1 s a session (some twenty round trips),
    17 minutes at full size before each of the six closing runs."""
    config = SystemConfiguration.load()
    agents = list(
        Agent.objects.filter(code__startswith=EXPIRED_AGENT_PREFIX)
        .exclude(sessions__status=SessionStatus.OPEN)
        .order_by("code")
    )
    now = timezone.now()
    opened_at = now - dt.timedelta(hours=config.session_timeout_hours + 2)
    rate = config.default_commission_rate
    tax = Decimal("12500.00")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
        head = (
            AuditEntry.objects.order_by("-sequence")
            .values("sequence", "current_hash", "timestamp")
            .first()
        )
        batch = head["sequence"] if head else 0
        sessions = CashSession.objects.bulk_create(
            [
                CashSession(
                    number=f"BX-{batch}-{index:05d}",
                    agent=agent,
                    opened_at=opened_at,
                    opening_balance=Decimal("5000.00"),
                )
                for index, agent in enumerate(agents)
            ],
            batch_size=BULK,
        )
        payments = CashTransaction.objects.bulk_create(
            [
                CashTransaction(
                    receipt_number=f"{session.number}-0001",
                    session=session,
                    agent_id=session.agent_id,
                    payer_reference=f"NIF-{session.number}",
                    tax_amount=tax,
                    amount_tendered=tax,
                    change_given=Decimal("0.00"),
                    created_at=opened_at + dt.timedelta(minutes=5),
                )
                for session in sessions[::2]
            ],
            batch_size=BULK,
        )
        commissions = Commission.objects.bulk_create(
            [
                Commission(
                    cash_transaction=payment,
                    agent_id=payment.agent_id,
                    session_id=payment.session_id,
                    base_amount=tax,
                    rate=rate,
                    amount=commission_for(
                        base_amount=tax, rate_percent=rate, currency=config.currency_code
                    ),
                    created_at=payment.created_at,
                )
                for payment in payments
            ],
            batch_size=BULK,
        )
        codes = {agent.pk: agent.code for agent in agents}
        records = [
            (
                "session.opened",
                session,
                {
                    "number": session.number,
                    "agent": codes[session.agent_id],
                    "opening_balance": session.opening_balance,
                    "after": states_after(session),
                },
            )
            for session in sessions
        ] + [
            (
                "transaction.recorded",
                payment,
                {
                    "receipt_number": payment.receipt_number,
                    "session": payment.session.number,
                    "agent": codes[payment.agent_id],
                    "payer_reference": payment.payer_reference,
                    "tax_amount": payment.tax_amount,
                    "amount_tendered": payment.amount_tendered,
                    "change_given": payment.change_given,
                    "commission_rate": rate,
                    "commission_amount": commission.amount,
                    "after": states_after(payment, commission),
                },
            )
            for payment, commission in zip(payments, commissions, strict=True)
        ]
        previous = head["current_hash"] if head else GENESIS_HASH
        # Never before the head's timestamp: timestamps do not decrease along the chain.
        timestamp = max(now, head["timestamp"]) if head else now
        entries = []
        for offset, (action, subject, data) in enumerate(records, start=1):
            entry = AuditEntry(
                sequence=batch + offset,
                previous_hash=previous,
                timestamp=timestamp,
                action=action,
                actor=None,
                actor_name=SYSTEM_ACTOR_NAME,
                subject_type=subject._meta.label_lower,
                subject_id=str(subject.pk),
                data=normalize_data(data),
                key_id=settings.AUDIT_CHAIN_KEY_ID,
            )
            entry.current_hash = previous = compute_entry_hash(entry)
            entries.append(entry)
        AuditEntry.objects.bulk_create(entries, batch_size=BULK)
    return CashSession.objects.filter(
        status=SessionStatus.OPEN, agent__code__startswith=EXPIRED_AGENT_PREFIX
    ).count()


# Measuring ----------------------------------------------------------------------------------


def run(argvs: list[list[str]]) -> dict:
    """Start the processes together and wait for all: wall seconds, the largest peak RSS
    among them, and the statements they sent.

    The peak RSS is GNU time's %M, not this process's wait4 or RUSAGE_CHILDREN: Linux
    carries a forked child's high-water mark across exec, so a child forked from this
    process (Django loaded, about 90 MB) would report at least our own size."""
    with tempfile.TemporaryDirectory() as scratch:
        files = [Path(scratch) / str(n) for n in range(len(argvs))]
        started = time.perf_counter()
        children = []
        for file, argv in zip(files, argvs, strict=True):
            environment = {**os.environ, "BENCH_REPORT_FILE": f"{file}.json"}
            if len(argvs) > 1:
                environment["BENCH_READY_DIR"] = scratch
            output = file.with_suffix(".out").open("w+")
            children.append(
                (
                    subprocess.Popen(  # noqa: S603 - our own scripts under GNU time
                        [TIME, "-f", "%M", "-o", f"{file}.rss", *argv],
                        env=environment,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                    ),
                    output,
                )
            )
        if len(argvs) > 1:
            _start_together(Path(scratch), children)
        failures = []
        for process, output in children:
            if process.wait() != 0:
                output.seek(0)
                failures.append(f"exit {process.returncode}: {output.read()[-2000:]}")
            output.close()
        seconds = time.perf_counter() - started
        peak_kb = max(_peak_kb(Path(f"{file}.rss")) for file in files)
        reports = [
            json.loads(path.read_text())
            for file in files
            if (path := Path(f"{file}.json")).exists()
        ]
    return {
        "seconds": seconds,
        # From the first child's start of work to the last one's end: start-up excluded.
        "work_seconds": (
            max(r["work"][1] for r in reports) - min(r["work"][0] for r in reports)
            if reports
            else seconds
        ),
        "peak_rss_mb": peak_kb / 1024,
        "queries": sum(r["queries"] for r in reports),
        "failures": failures,
    }


def _start_together(scratch: Path, children: list) -> None:
    """Let concurrent children start their work at once, when all are loaded (otherwise
    the first ones would run alone while the others are still starting up)."""
    while len(list(scratch.glob("ready-*"))) < len(children):
        if any(process.poll() not in (None, 0) for process, _ in children):
            break  # one died while starting: its failure is reported by the caller
        time.sleep(0.005)
    (scratch / "go").touch()


def _peak_kb(path: Path) -> int:
    """GNU time's %M (its last line; a failed child's file starts with its exit status)."""
    lines = path.read_text().split() if path.exists() else []
    return int(lines[-1]) if lines and lines[-1].isdigit() else 0


def count(sql: str, params: list | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchone()[0]


def report_month() -> tuple[int, int]:
    """The calendar month holding the middle of the seeded span: most of its payments."""
    middle = timezone.localtime(timezone.now() - SPAN / 2)
    return middle.year, middle.month


def operations() -> list[dict]:
    year, month = report_month()
    manage = [*CHILD, "manage"]
    return [
        {
            "operation": "start-up (manage.py version)",
            "real": [[*manage, "version"]],
            "floor": None,
            "rows": lambda: 0,
        },
        {
            "operation": f"generate_commission_report --dry-run ({year}-{month:02d})",
            "real": [
                [*manage, "generate_commission_report", "--dry-run", "--json"]
                + ["--month", str(month), "--year", str(year)]
            ],
            "floor": [[*CHILD, "floor-report", str(year), str(month)]],
            "rows": lambda: count(
                "SELECT count(*) FROM payments_cashtransaction WHERE created_at >= %s"
                " AND created_at < %s",
                [
                    dt.datetime(year, month, 1, tzinfo=dt.UTC),
                    (dt.datetime(year, month, 1, tzinfo=dt.UTC) + dt.timedelta(days=32)).replace(
                        day=1
                    ),
                ],
            ),
        },
        {
            "operation": f"reconciliation_reminder --dry-run --days {REMINDER_DAYS} --email-admins",
            "real": [
                [*manage, "reconciliation_reminder", "--dry-run"]
                + ["--days", str(REMINDER_DAYS), "--email-admins"]
            ],
            "floor": [[*CHILD, "floor-reminder", str(REMINDER_DAYS)]],
            "rows": lambda: count(
                "SELECT count(*) FROM payments_cashsession WHERE status = 'closed'"
                " AND closed_at < %s",
                [timezone.now() - dt.timedelta(days=REMINDER_DAYS)],
            ),
        },
        {
            "operation": "verify_audit_trail --full",
            "real": [[*manage, "verify_audit_trail", "--full"]],
            "floor": [[*CHILD, "floor-verify"]],
            "rows": lambda: count("SELECT count(*) FROM auditing_auditentry"),
        },
        {
            "operation": "close_expired_sessions --force",
            "real": [[*manage, "close_expired_sessions", "--force"]],
            "floor": [[*CHILD, "floor-close"]],
            "prepare": expired_sessions_seed,
        },
        {
            "operation": f"audit appends, {WRITERS} concurrent writers",
            "real": [[*CHILD, "append", str(APPENDS_PER_WRITER)]] * WRITERS,
            "floor": [[*CHILD, "floor-append", str(APPENDS_PER_WRITER)]] * WRITERS,
            "rows": lambda: WRITERS * APPENDS_PER_WRITER,
        },
    ]


def measure() -> list[dict]:
    cases = operations()
    for case in cases:
        case["runs"], case["floor_runs"] = [], []
    steps = RUNS * sum(2 if case["floor"] else 1 for case in cases)
    # disable=None: a bar on a terminal only; under cron, the table alone.
    with tqdm(total=steps, desc="bench", unit="run", disable=None) as progress:
        for _ in range(RUNS):
            # Interleaved: each operation, then its floor, so both see the same machine.
            for case in cases:
                for side in ("runs", "floor_runs"):
                    argvs = case["real"] if side == "runs" else case["floor"]
                    if argvs is None:
                        continue
                    rows = case["prepare"]() if "prepare" in case else case["rows"]()
                    progress.set_postfix_str(case["operation"][:40])
                    outcome = run(argvs)
                    outcome["rows"] = rows
                    case[side].append(outcome)
                    progress.update()
    return [summary(case) for case in cases]


def summary(case: dict) -> dict:
    def median(runs: list[dict], key: str):
        return statistics.median(r[key] for r in runs) if runs else None

    def ratio(ours, floor):
        return None if floor is None else round(ours / floor, 2)

    seconds = median(case["runs"], "seconds")
    floor = median(case["floor_runs"], "seconds")
    work = median(case["runs"], "work_seconds")
    floor_work = median(case["floor_runs"], "work_seconds")
    return {
        "operation": case["operation"],
        "rows": max(r["rows"] for r in case["runs"]),
        "seconds": round(seconds, 3),
        "floor_seconds": None if floor is None else round(floor, 3),
        "ratio": ratio(seconds, floor),
        "work_seconds": round(work, 3),
        "floor_work_seconds": None if floor_work is None else round(floor_work, 3),
        "work_ratio": ratio(work, floor_work),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in case["runs"]), 1),
        "floor_peak_rss_mb": (
            round(max(r["peak_rss_mb"] for r in case["floor_runs"]), 1)
            if case["floor_runs"]
            else None
        ),
        "queries": max(r["queries"] for r in case["runs"]),
        "floor_queries": max((r["queries"] for r in case["floor_runs"]), default=None),
        "runs_seconds": [round(r["seconds"], 3) for r in case["runs"]],
        "runs_work_seconds": [round(r["work_seconds"], 3) for r in case["runs"]],
        "floor_runs_seconds": [round(r["seconds"], 3) for r in case["floor_runs"]],
        "failures": [f for r in case["runs"] + case["floor_runs"] for f in r["failures"]],
    }


def table(results: list[dict]) -> str:
    def shown(value, form):
        return "-" if value is None else format(value, form)

    lines = [
        "| operation | rows | seconds | floor seconds | ratio | work s | floor work s "
        "| work ratio | peak RSS MB | queries |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['operation']} | {r['rows']:,} | {r['seconds']:.2f} | "
            f"{shown(r['floor_seconds'], '.2f')} | {shown(r['ratio'], '.2f')} | "
            f"{r['work_seconds']:.2f} | {shown(r['floor_work_seconds'], '.2f')} | "
            f"{shown(r['work_ratio'], '.2f')} | {r['peak_rss_mb']:.0f} | {r['queries']:,} |"
        )
    return "\n".join(lines)


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("make bench runs on PostgreSQL: set DATABASE_URL")
    database = connection.settings_dict["NAME"]
    # Seeding replaces the cash tables and the trail: never outside a bench's or a test's
    # own database.
    if "bench" not in database and not database.startswith("test_"):
        sys.exit(f"make bench replaces the trail and cash tables of {database}: use a bench DB")
    if not seed_matches():
        seed()
    results = measure()
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (postgresql,) = cursor.fetchone()
    document = {
        "date": timezone.now().isoformat(timespec="seconds"),
        "scale": SCALE,
        "runs": RUNS,
        "machine": {
            "cores": os.cpu_count(),
            "postgresql": postgresql,
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "operations": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(
        f"\nBENCH_SCALE={SCALE}, median of {RUNS}, {os.cpu_count()} cores, PostgreSQL {postgresql}"
    )
    print(table(results))
    print(f"\nWritten to {RESULTS}")
    failures = [(r["operation"], f) for r in results for f in r["failures"]]
    for operation, failure in failures:
        print(f"\nFAILED {operation}: {failure}", file=sys.stderr)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
