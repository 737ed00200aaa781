"""A second `make demo` adds nothing, whenever it runs.

"Nothing" is precise: no table of the demo's SQLite file gains a row (no payment, report,
reminder, notification, email, audit entry, verification run or checkpoint) and no email
is written. A rerun on a later day is the case that matters: the operations do each new
day's or month's work (a day's reminders, last month's report), so a demo run again a day
or a month later would invent both; `manage.py demo_operations` runs each of them once on
the demo data. The commands are the Makefile's own, read from its `demo` recipe, run on a
SQLite file of this test's at pinned clocks (time-machine, as the seed itself travels).
"""

import datetime as dt
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.commands import command_run

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ZoneInfo("Indian/Antananarivo")
FIRST_RUN = dt.datetime(2026, 3, 10, 10, 0, tzinfo=LOCAL)
# manage.py, with the clock at DEMO_TEST_CLOCK (ticking from there).
AT_CLOCK = """
import datetime as dt, os, sys
import time_machine
from django.core.management import execute_from_command_line
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
with time_machine.travel(dt.datetime.fromisoformat(os.environ["DEMO_TEST_CLOCK"]), tick=True):
    execute_from_command_line(["manage.py", *sys.argv[1:]])
"""


def demo_commands() -> list[list[str]]:
    """The manage.py arguments of each line of the Makefile's demo recipe, in order."""
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, "the Makefile has no demo recipe"
    commands = []
    for line in recipe.group(1).splitlines():
        words = shlex.split(line.strip())
        if "manage.py" in words:
            commands.append(words[words.index("manage.py") + 1 :])
    return commands


def make_demo(folder: Path, *, at: dt.datetime) -> None:
    env = {
        **os.environ,
        "DJANGO_ENV": "dev",
        "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        "AUDIT_CHECKPOINT_SINKS": f"file://{folder / 'checkpoints'}",
        # django-environ drops one slash of the path: four make it absolute.
        "EMAIL_URL": f"filemail:///{folder / 'sent-mail'}",
        "APP_LOG_LEVEL": "WARNING",
        "DEMO_TEST_CLOCK": at.isoformat(),
    }
    for arguments in demo_commands():
        run = subprocess.run(  # noqa: S603 - our own manage.py
            [sys.executable, "-c", AT_CLOCK, *arguments],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 0, f"{arguments}: {run.stdout}{run.stderr}"


def rows_by_table(folder: Path) -> dict[str, int]:
    connection = sqlite3.connect(folder / "db.sqlite3")
    try:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {
            table: connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]  # noqa: S608
            for table in tables
        }
    finally:
        connection.close()


def emails_written(folder: Path) -> int:
    """Messages, not files: Django's file backend appends the messages of one second and
    one connection object to the same file."""
    mail = folder / "sent-mail"
    if not mail.is_dir():
        return 0
    header = re.compile(rb"^Message-ID: ", re.MULTILINE)
    return sum(len(header.findall(path.read_bytes())) for path in mail.iterdir())


@pytest.fixture(scope="module")
def first_demo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    make_demo(folder, at=FIRST_RUN)
    return folder


def test_the_demo_recipe_runs_the_operations_through_demo_operations_then_delivers():
    assert [arguments[0] for arguments in demo_commands()] == [
        "migrate",
        "sync_schedules",
        "seed_demo",
        "demo_operations",
        "deliver_pending_email",
    ]


@pytest.mark.parametrize(
    "later",
    [dt.timedelta(minutes=5), dt.timedelta(days=1), dt.timedelta(days=32)],
    ids=["same-day", "next-day", "next-month"],
)
def test_a_second_make_demo_adds_no_row_to_any_table_and_sends_no_email(
    first_demo, tmp_path, later
):
    folder = tmp_path / "demo"
    shutil.copytree(first_demo, folder)
    before, mail_before = rows_by_table(folder), emails_written(folder)
    # Not vacuous: the first run stored the report, reminded, verified and mailed.
    for table in (
        "reporting_commissionreport",
        "payments_reconciliationreminder",
        "auditing_verificationrun",
        "auditing_checkpoint",
        "mailing_emailmessage",
    ):
        assert before[table] >= 1, table
    assert mail_before == before["mailing_emailmessage"]

    make_demo(folder, at=FIRST_RUN + later)

    after = rows_by_table(folder)
    assert {t: (before[t], n) for t, n in after.items() if n != before.get(t)} == {}
    assert emails_written(folder) == mail_before


def test_demo_operations_explains_itself_and_refuses_production(settings):
    shown = subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", "demo_operations", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    settings.IS_PRODUCTION = True

    refused = command_run("demo_operations", expect_exit=1)

    assert shown.returncode == 0, shown.stderr
    assert "adds nothing" in " ".join(shown.stdout.split())
    assert "refuses production" in refused.stderr
