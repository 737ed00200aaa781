"""Every task's arguments are checked at the boundary, with the commands' rules: a task sent
from Flower's API, ``send_task`` or an edited schedule gets no coercion. A bad value, a
misspelt or foreign argument name, an overlong address: the task fails with one short
sentence (a FAILURE in the results) and not one row of any table changes.

The tasks run through ``apply()``, as a worker runs a message, on a database holding work
each of them would do: expired sessions with payments (``force`` would close them), an
October without its report, unreconciled sessions and an audit trail."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection

from payments.services import session_open, transaction_record
from tasks.inputs import InvalidInput
from tasks.tasks import (
    close_expired_sessions,
    generate_commission_report,
    reconciliation_reminder,
    verify_audit_trail,
)
from tests.reporting.helpers import NOW, october_takings, report_staff, three_agents

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]

LONG_EMAIL = "a" * 988 + "@example.com"
TRUNCATED_EMAIL = "'" + "a" * 38 + "\N{HORIZONTAL ELLIPSIS}"
MAX_SENTENCE = 220

CLOSE_ARGUMENTS = "it takes dry_run, force, trigger."
REPORT_ARGUMENTS = "it takes year, month, email, dry_run, resend, trigger."
VERIFY_ARGUMENTS = "it takes start_date, end_date, full, alert_on_tampering, email, trigger."


@pytest.fixture
def work_to_do(clock, config):
    """Something for every operation to change, were it to run."""
    report_staff()
    agents = october_takings(three_agents())
    with time_machine.travel(NOW - dt.timedelta(hours=13), tick=False):
        agent = agents["C"]
        session = session_open(agent=agent, opening_balance=Decimal("0.00"), actor=agent.user)
        transaction_record(
            session=session,
            payer_reference="NIF-OPEN-1",
            tax_amount=Decimal("1000.00"),
            amount_tendered=Decimal("1000.00"),
            actor=agent.user,
        )
        session_open(agent=agents["B"], opening_balance=Decimal("500.00"), actor=agents["B"].user)


def database_fingerprint() -> dict[str, tuple[int, str]]:
    """Each table's row count and a digest of all its rows."""
    fingerprint = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            name = connection.ops.quote_name(table)
            cursor.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''))"  # noqa: S608 - names from introspection
                f" FROM {name} t"
            )
            fingerprint[table] = cursor.fetchone()
    return fingerprint


def failure_of(task, kwargs: dict) -> InvalidInput:
    result = task.apply(kwargs=kwargs)
    assert result.state == "FAILURE", result.result
    assert isinstance(result.result, InvalidInput), repr(result.result)
    return result.result


def test_the_fingerprint_sees_a_run_that_writes(work_to_do, mailoutbox):
    """The check below can fail: the same tasks with good arguments change the tables."""
    for task, kwargs in [
        (close_expired_sessions, {"force": True}),
        (generate_commission_report, {"trigger": "beat"}),
        (verify_audit_trail, {}),
        (reconciliation_reminder, {}),
    ]:
        before = database_fingerprint()
        result = task.apply(kwargs=kwargs)
        assert result.state == "SUCCESS", result.result
        assert database_fingerprint() != before, task.name


BAD_ARGUMENTS = [
    # close_expired_sessions
    (
        close_expired_sessions,
        {"force": "no"},
        "force must be true or false, not 'no'.",
    ),
    (close_expired_sessions, {"force": 1}, "force must be true or false, not 1."),
    (close_expired_sessions, {"force": None}, "force must be true or false, not None."),
    (close_expired_sessions, {"dry_run": "no"}, "dry_run must be true or false, not 'no'."),
    (close_expired_sessions, {"dry_run": 0}, "dry_run must be true or false, not 0."),
    (
        close_expired_sessions,
        {"dry_rn": True},
        f"close_expired_sessions takes no argument 'dry_rn'; {CLOSE_ARGUMENTS}",
    ),
    (
        close_expired_sessions,
        {"email": LONG_EMAIL},
        f"close_expired_sessions takes no argument 'email'; {CLOSE_ARGUMENTS}",
    ),
    # generate_commission_report
    (
        generate_commission_report,
        {"force": "no"},
        f"generate_commission_report takes no argument 'force'; {REPORT_ARGUMENTS}",
    ),
    (generate_commission_report, {"dry_run": "no"}, "dry_run must be true or false, not 'no'."),
    (generate_commission_report, {"dry_run": None}, "dry_run must be true or false, not None."),
    (generate_commission_report, {"dry_run": 1}, "dry_run must be true or false, not 1."),
    (generate_commission_report, {"resend": "yes"}, "resend must be true or false, not 'yes'."),
    (generate_commission_report, {"month": "10"}, "--month must be a whole number, not '10'."),
    (generate_commission_report, {"month": 10.0}, "--month must be a whole number, not 10.0."),
    (
        generate_commission_report,
        {"month": 10, "year": 10**30},
        f"The year must be between 2000 and 2026 (got {10**30}).",
    ),
    (
        generate_commission_report,
        {"email": LONG_EMAIL},
        f"--email: {TRUNCATED_EMAIL} is not a valid email address (longer than 254 characters).",
    ),
    (
        generate_commission_report,
        {"email": "evil@attacker.example\nBcc: all@example.com"},
        "--email: an email address cannot contain a line break.",
    ),
    (
        generate_commission_report,
        {"x" * 1000: True, "dry_rn": True},
        "generate_commission_report takes no arguments 'dry_rn', "
        f"'{'x' * 38}\N{HORIZONTAL ELLIPSIS}; {REPORT_ARGUMENTS}",
    ),
    # verify_audit_trail
    (
        verify_audit_trail,
        {"force": "no"},
        f"verify_audit_trail takes no argument 'force'; {VERIFY_ARGUMENTS}",
    ),
    (
        verify_audit_trail,
        {"dry_run": "no"},
        f"verify_audit_trail takes no argument 'dry_run'; {VERIFY_ARGUMENTS}",
    ),
    (verify_audit_trail, {"full": "no"}, "full must be true or false, not 'no'."),
    (
        verify_audit_trail,
        {"alert_on_tampering": 1},
        "alert_on_tampering must be true or false, not 1.",
    ),
    (
        verify_audit_trail,
        {"email": LONG_EMAIL},
        f"{TRUNCATED_EMAIL} is not a valid email address (longer than 254 characters).",
    ),
    (
        verify_audit_trail,
        {"start_date": "2026-01-01" * 100},
        "--start-date '2026-01-012026-01-012026-01-012026-01-\N{HORIZONTAL ELLIPSIS} is not a "
        "valid date; use YYYY-MM-DD.",
    ),
    # reconciliation_reminder (its sentences are its own; the rules are the same)
    (reconciliation_reminder, {"force": "no"}, None),
    (reconciliation_reminder, {"dry_run": "no"}, None),
    (reconciliation_reminder, {"email_admins": None}, None),
    (reconciliation_reminder, {"days": "3"}, None),
    (reconciliation_reminder, {"email": LONG_EMAIL}, None),
]


@pytest.mark.parametrize(
    ("task", "kwargs", "sentence"),
    BAD_ARGUMENTS,
    ids=[f"{task.name.split('.')[-1]}-{'-'.join(kw)[:20]}" for task, kw, _ in BAD_ARGUMENTS],
)
def test_a_bad_task_argument_fails_with_one_sentence_and_changes_no_table(
    work_to_do, mailoutbox, django_capture_on_commit_callbacks, task, kwargs, sentence
):
    before = database_fingerprint()

    with django_capture_on_commit_callbacks(execute=True):
        error = failure_of(task, kwargs)

    message = str(error)
    if sentence is not None:
        assert message == sentence
    else:
        # The offending argument is named, whatever the wording.
        [name] = [name for name in kwargs]
        assert name in message
    assert "\n" not in message and len(message) <= MAX_SENTENCE
    assert message.endswith(".")
    assert database_fingerprint() == before
    assert mailoutbox == []


def test_a_positional_argument_name_of_the_runner_is_refused_like_any_other(work_to_do):
    """``operation`` is the runner's own parameter: as a task argument it is just unknown."""
    before = database_fingerprint()

    error = failure_of(close_expired_sessions, {"operation": "generate_commission_report"})

    assert str(error) == (
        f"close_expired_sessions takes no argument 'operation'; {CLOSE_ARGUMENTS}"
    )
    assert database_fingerprint() == before
