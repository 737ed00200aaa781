"""`make bench` end to end at a tiny scale, as CI runs it: every operation through its
entry point beside its floor, the table printed and bench/results.json written. No timing
is asserted: the figures belong to `make bench` on a quiet machine, not to a test."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = [
    "start-up (manage.py version)",
    "generate_commission_report --dry-run",
    "reconciliation_reminder --dry-run --days 7 --email-admins",
    "verify_audit_trail --full",
    "close_expired_sessions --force",
    "audit appends, 2 concurrent writers",
]
COLUMNS = (
    "| operation | rows | seconds | floor seconds | ratio | work s | floor work s "
    "| work ratio | peak RSS MB | queries |"
)


# The bench's processes read what the test database holds committed.
@pytest.mark.django_db(transaction=True)
def test_the_bench_runs_every_operation_beside_its_floor_and_writes_its_table(tmp_path):
    database = connection.settings_dict
    environment = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}"
            f"/{database['NAME']}"
        ),
        "BENCH_SCALE": "0.0005",
        "BENCH_RUNS": "1",
        "BENCH_APPENDS_PER_WRITER": "10",
        # Two writers, not eight: each is a Django start-up, and the test wants the shape.
        "BENCH_WRITERS": "2",
        "BENCH_RESULTS": str(tmp_path / "results.json"),
        "APP_LOG_LEVEL": "WARNING",
        "EMAIL_URL": "dummymail://",
    }
    if database["PASSWORD"]:
        environment["PGPASSWORD"] = database["PASSWORD"]

    completed = subprocess.run(  # noqa: S603 - the project's own script
        [sys.executable, str(ROOT / "scripts" / "bench.py")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["scale"] == 0.0005
    assert document["machine"]["cores"] >= 1
    assert document["machine"]["postgresql"]
    results = document["operations"]
    assert [r["operation"].split(" (20")[0] for r in results] == OPERATIONS
    for result in results:
        assert result["failures"] == []
        assert result["seconds"] > 0
        assert result["peak_rss_mb"] > 0
        has_floor = not result["operation"].startswith("start-up")
        assert (result["floor_seconds"] is not None) == has_floor
        assert (result["ratio"] is not None) == has_floor
    by_name = {r["operation"].split(" (20")[0]: r for r in results}
    # 0.0005 of the network: 500 payments, 5 expired sessions; 2 writers of 10 entries.
    assert by_name["close_expired_sessions --force"]["rows"] == 5
    assert by_name["audit appends, 2 concurrent writers"]["rows"] == 20
    assert by_name["verify_audit_trail --full"]["rows"] > 500
    for name in OPERATIONS[1:]:
        assert by_name[name]["queries"] > 0, name
    lines = completed.stdout.splitlines()
    header = lines.index(COLUMNS)
    assert len([line for line in lines[header + 2 :] if line.startswith("| ")]) == len(OPERATIONS)
