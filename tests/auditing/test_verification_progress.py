"""verify_audit_trail's progress bar: on a terminal, a bar with its rate and the time left;
under cron (stdout not a terminal) and with --json, only the summary."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from auditing.services import audit_entry_append

pytestmark = pytest.mark.django_db


class Terminal(StringIO):
    """What the command writes to, as a terminal would be seen by it."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def entries(monkeypatch):
    monkeypatch.setattr(
        "tasks.operations.verify_audit_trail.append_only_enforcement_problems", lambda: []
    )
    for day in range(1, 4):
        audit_entry_append(action="day.closed", actor=None, data={"day": day})


def test_on_a_terminal_a_full_run_shows_a_progress_bar_then_the_summary(entries):
    out = Terminal()

    call_command("verify_audit_trail", "--full", stdout=out)

    output = out.getvalue()
    bar = output.index("Checking the chain")
    assert "/3.00 " in output and " entries/s" in output  # the total and the rate
    assert output.index("Audit trail intact") > bar
    # Redrawn in place, never one line per update.
    assert "\r" in output


def test_under_cron_only_the_summary_is_written(entries):
    out = StringIO()  # a file or a pipe: not a terminal

    call_command("verify_audit_trail", "--full", stdout=out)

    output = out.getvalue()
    assert "Checking the chain" not in output and "\r" not in output
    assert "Audit trail intact" in output


def test_with_json_on_a_terminal_only_the_json_is_written(entries):
    out = Terminal()

    call_command("verify_audit_trail", "--full", "--json", stdout=out)

    assert json.loads(out.getvalue())["entries_checked"] == 3
