"""Golden (snapshot) tests of the four operation commands.

They pin what the operations do today, before a redesign moves their code between modules:
what each command prints (stdout, stderr, the CommandError and its returncode), its --json
summary, every email it sends as delivered, and the texts it stores (agents' in-app
notifications, sessions' closing notes, the audit entries it appends). They go only through
entry points that survive the move: ``call_command``, ``tests.factories``,
``payments.services``, ``payments.models`` and ``auditing.models`` (plus the tampering
helpers of the audit tests).

Snapshots: ``tests/golden/snapshots/<test>.<part>.txt`` (or ``.json``, pretty-printed with
sorted keys). ``GOLDEN_UPDATE=1`` (re)writes them and the tests pass; without it, a missing
snapshot fails. Each case runs once with the text output and once with ``--json``: both runs
must leave the same side effects, so both compare against the same emails / notifications /
audit / sessions snapshots. Parts: ``output`` (text run: command line, exit code, CommandError,
stdout, stderr), ``json-output`` and ``summary`` (--json run), ``emails`` (every message sent:
Subject, From, To, Cc, Bcc, Reply-To, then the text body, the HTML alternative and the
attachments verbatim, carriage returns shown as ␍), ``notifications``, ``audit`` and, for
close_expired_sessions, ``sessions``.

Determinism: the tests are transactional (emails go out in ``on_commit`` callbacks) with
sequences reset (ids start at 1); the clock is frozen (time_machine, ``tick=False``) while
the data is built and while a command runs; every factory field that would come from a
sequence or from Faker is given; the settings the outputs depend on are pinned
(``AUDIT_CHAIN_KEY``, which every hash depends on, the checkpoints' signing key,
``AUDITOR_EMAILS``, ``SITE_URL``, ``DEFAULT_FROM_EMAIL``, ``TIME_ZONE``, ``LANGUAGE_CODE``).

Normalisations, only for values that depend on the machine's speed or its folders:

- ``normalise_time_taken``: verify_audit_trail's "Time taken: X.XX s" line becomes
  "Time taken: <normalised> s".
- ``normalise_duration_ms``: the ``duration_ms`` field of verify_audit_trail's JSON summary
  becomes "<normalised>".
- ``normalise_header``: each email's Message-ID (unique per message) becomes "<normalised>".
- ``normalise_checkpoint_dirs``: the checkpoint directory (a temporary folder per test, see
  ``tests/conftest.py``) becomes "<checkpoint dir>" in verify_audit_trail's output.

Mail leaves through the outbox: a run only queues it and wakes a worker on commit. After
each run the harness delivers the queued mail as that worker would
(``tests.mailing.outbox``), so ``emails`` holds what the run's mail looks like delivered,
while the run's own output says it was queued.
"""

import base64
import datetime as dt
import difflib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from auditing.chain import public_key_of
from auditing.models import AuditEntry
from payments.models import Agent, CashSession, CashTransaction, Notification
from payments.services import (
    commissions_mark_paid,
    session_close,
    session_close_automatically,
    session_expected_balance,
    session_open,
    session_reconcile,
    transaction_record,
    transaction_void,
)
from tests.auditing.tampering import (
    APPEND_ONLY_TRIGGER,
    delete_entries,
    disable_append_only_trigger,
    set_column,
)
from tests.factories import AgentFactory, StaffUserFactory, UserFactory
from tests.mailing.outbox import outbox_deliver_queued

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

LOCAL = ZoneInfo("Indian/Antananarivo")
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
UPDATE = os.environ.get("GOLDEN_UPDATE") == "1"
NORMALISED = "<normalised>"
# Ed25519 signatures are deterministic: a fixed seed makes the checkpoints' signatures so.
GOLDEN_SIGNING_KEY = base64.b64encode(b"golden-checkpoint-signing-key-32").decode("ascii")

# Each case runs with the text output and with --json.
BOTH_OUTPUTS = pytest.mark.parametrize("output", ["text", "json"])


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    """A wall-clock time in TIME_ZONE."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=LOCAL)


@pytest.fixture(autouse=True)
def _pinned_settings(settings):
    """The settings the outputs depend on, whatever the environment or .env says."""
    settings.AUDIT_CHAIN_KEY = "golden-audit-chain-key"
    # Entries are hashed with the key their key id names, and checkpoints signed with this.
    settings.AUDIT_CHAIN_KEY_ID = "1"
    settings.AUDIT_CHAIN_KEYS = {"1": settings.AUDIT_CHAIN_KEY}
    settings.AUDIT_SIGNING_KEY = GOLDEN_SIGNING_KEY
    settings.AUDIT_PUBLIC_KEY = public_key_of(GOLDEN_SIGNING_KEY)
    settings.AUDIT_TRUSTED_PUBLIC_KEYS = [settings.AUDIT_PUBLIC_KEY]
    settings.AUDITOR_EMAILS = []
    settings.SITE_URL = "https://cash.example.com"
    settings.DEFAULT_FROM_EMAIL = "cash-office@localhost"
    settings.TIME_ZONE = "Indian/Antananarivo"
    settings.LANGUAGE_CODE = "en"


# Snapshots --------------------------------------------------------------------------------


class Golden:
    """Compares produced texts with ``snapshots/<test>.<part>.<ext>``, or writes them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._problems: list[str] = []
        self._depth = 0

    @contextmanager
    def together(self) -> Iterator[None]:
        """Compare every part checked in the block, then fail once with all the differences."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth:
            self._fail_if_any()

    def text(self, part: str, produced: str) -> None:
        self._check(f"{part}.txt", produced)

    def json(self, part: str, value: Any) -> None:
        produced = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        self._check(f"{part}.json", produced)

    def _check(self, suffix: str, produced: str) -> None:
        path = SNAPSHOTS / f"{self.name}.{suffix}"
        if UPDATE:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(produced.encode("utf-8"))
            return
        if not path.is_file():
            self._problems.append(
                f"Missing snapshot {path.name}; run with GOLDEN_UPDATE=1 to create it."
            )
        else:
            expected = path.read_bytes().decode("utf-8")
            if produced != expected:
                diff = "".join(
                    difflib.unified_diff(
                        expected.splitlines(keepends=True),
                        produced.splitlines(keepends=True),
                        fromfile=f"snapshots/{path.name}",
                        tofile="produced",
                    )
                )
                self._problems.append(
                    f"Output differs from snapshots/{path.name} (GOLDEN_UPDATE=1 rewrites it "
                    f"if the change is intended):\n{diff}"
                )
        if not self._depth:
            self._fail_if_any()

    def _fail_if_any(self) -> None:
        if self._problems:
            problems, self._problems = self._problems, []
            pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def golden(request) -> Golden:
    # One name for both outputs of a case: their side effects share one snapshot.
    return Golden(request.node.originalname)


# Normalisations (listed in the module docstring) ------------------------------------------


def normalise_time_taken(text: str) -> str:
    return re.sub(
        r"^Time taken: \d+\.\d{2} s$", f"Time taken: {NORMALISED} s", text, flags=re.MULTILINE
    )


def normalise_header(name: str, value: str) -> str:
    # Made once per message from the clock, the process id and a random number.
    return NORMALISED if name.lower() == "message-id" else value


def normalise_checkpoint_dirs(text: str) -> str:
    for url in settings.AUDIT_CHECKPOINT_SINKS:
        text = text.replace(url.removeprefix("file://"), "<checkpoint dir>")
    return text


def normalise_duration_ms(summary: dict[str, Any]) -> dict[str, Any]:
    if "duration_ms" in summary:
        return {**summary, "duration_ms": NORMALISED}
    return summary


# Running a command ------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandRun:
    command: str
    args: tuple[str, ...]
    stdout: str
    stderr: str
    returncode: int
    error: str | None


def call(command: str, *args: str, when: dt.datetime) -> CommandRun:
    """Run the command in-process with the clock frozen at ``when``."""
    stdout, stderr = StringIO(), StringIO()
    error: CommandError | None = None
    with time_machine.travel(when, tick=False):
        try:
            call_command(command, *args, stdout=stdout, stderr=stderr)
        except CommandError as raised:
            error = raised
    return CommandRun(
        command=command,
        args=args,
        stdout=stdout.getvalue(),
        stderr=stderr.getvalue(),
        returncode=error.returncode if error else 0,
        error=str(error) if error else None,
    )


def transcript(run: CommandRun, stdout: str) -> str:
    """The command line, its exit, then stdout and stderr verbatim."""
    lines = [
        f"$ manage.py {' '.join((run.command, *run.args))}",
        f"exit code: {run.returncode}",
    ]
    if run.error is not None:
        lines.append(f"CommandError: {run.error}")
    return (
        "\n".join(lines)
        + "\n--- stdout ---\n"
        + stdout
        + "--- stderr ---\n"
        + run.stderr
        + "--- end ---\n"
    )


def check_output(golden: Golden, run: CommandRun, *, prefix: str = "") -> None:
    if "--json" not in run.args:
        stdout = normalise_checkpoint_dirs(normalise_time_taken(run.stdout))
        golden.text(f"{prefix}output", normalise_checkpoint_dirs(transcript(run, stdout)))
        return
    summary = json.loads(run.stdout)
    # The command prints its summary indented by 2 with sorted keys: keep it so.
    assert run.stdout == json.dumps(summary, indent=2, sort_keys=True) + "\n"
    summary = json.loads(normalise_checkpoint_dirs(run.stdout))
    golden.json(f"{prefix}summary", normalise_duration_ms(summary))
    golden.text(
        f"{prefix}json-output",
        transcript(run, f"<the JSON summary: {golden.name}.{prefix}summary.json>\n"),
    )


# Side effects -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """Where the audit chain, the notifications and the outbox stood before a run."""

    audit_head: int
    last_notification: int
    emails: int


def mark() -> Mark:
    return Mark(
        audit_head=AuditEntry.objects.aggregate(head=Max("sequence"))["head"] or 0,
        last_notification=Notification.objects.aggregate(last=Max("pk"))["last"] or 0,
        emails=len(mail.outbox),
    )


def _verbatim(content: str | bytes) -> str:
    """The content exactly, with its carriage returns shown as ␍ (the CSV ends its lines with
    CRLF) so that no editor or Git setting can change them unseen."""
    if isinstance(content, bytes):
        content = content.decode("utf-8")
    content = content.replace("\r", "\N{SYMBOL FOR CARRIAGE RETURN}")
    return content if content.endswith("\n") else content + "\n\\ no newline at end\n"


def _addresses(addresses: list[str]) -> str:
    return ", ".join(addresses) or "(none)"


def render_emails(messages: list) -> str:
    """Each message as delivered: headers, then its parts verbatim."""
    if not messages:
        return "(no email sent)\n"
    blocks = []
    for number, message in enumerate(messages, start=1):
        block = [
            f"===== email {number} of {len(messages)} =====\n",
            f"Subject: {message.subject}\n",
            f"From: {message.from_email}\n",
            f"To: {_addresses(message.to)}\n",
            f"Cc: {_addresses(message.cc)}\n",
            f"Bcc: {_addresses(message.bcc)}\n",
            f"Reply-To: {_addresses(message.reply_to)}\n",
            *(
                f"{name}: {normalise_header(name, value)}\n"
                for name, value in sorted(message.extra_headers.items())
            ),
            f"----- body (text/{message.content_subtype}) -----\n",
            _verbatim(message.body),
        ]
        for content, mimetype in message.alternatives:
            block += [f"----- alternative ({mimetype}) -----\n", _verbatim(content)]
        for filename, content, mimetype in message.attachments:
            block += [f"----- attachment {filename} ({mimetype}) -----\n", _verbatim(content)]
        blocks.append("".join(block))
    return "".join(blocks) + "===== end =====\n"


def notifications_since(since: Mark) -> list[dict[str, Any]]:
    notifications = (
        Notification.objects.filter(pk__gt=since.last_notification)
        .select_related("agent", "session")
        .order_by("pk")
    )
    return [
        {
            "agent": notification.agent.code,
            "session": notification.session.number if notification.session else None,
            "kind": notification.kind,
            "title": notification.title,
            "message": notification.message,
        }
        for notification in notifications
    ]


def audit_entries_since(since: Mark) -> list[dict[str, Any]]:
    entries = AuditEntry.objects.filter(sequence__gt=since.audit_head).order_by("sequence")
    return [
        {
            "action": entry.action,
            "actor_name": entry.actor_name,
            "subject_type": entry.subject_type,
            "data": entry.data,
        }
        for entry in entries
    ]


def check_side_effects(golden: Golden, since: Mark, *, prefix: str = "") -> None:
    golden.text(f"{prefix}emails", render_emails(mail.outbox[since.emails :]))
    golden.json(f"{prefix}notifications", notifications_since(since))
    golden.json(f"{prefix}audit", audit_entries_since(since))


def _local(value: dt.datetime | None) -> str | None:
    return timezone.localtime(value).isoformat() if value else None


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def sessions_state() -> list[dict[str, Any]]:
    return [
        {
            "number": session.number,
            "agent": session.agent.code,
            "status": session.status,
            "auto_closed": session.auto_closed,
            "opened_at": _local(session.opened_at),
            "closed_at": _local(session.closed_at),
            "expected_balance": _amount(session.expected_balance),
            "counted_balance": _amount(session.counted_balance),
            "discrepancy": _amount(session.discrepancy),
            "closing_notes": session.closing_notes,
            "expiry_notified_at": _local(session.expiry_notified_at),
        }
        for session in CashSession.objects.select_related("agent").order_by("number")
    ]


def run_case(
    golden: Golden, command: str, *args: str, output: str, when: dt.datetime, prefix: str = ""
) -> CommandRun:
    """Run the command (with --json for the JSON output) and compare everything it left."""
    if output == "json":
        args = (*args, "--json")
    since = mark()
    run = call(command, *args, when=when)
    with time_machine.travel(when, tick=False):
        outbox_deliver_queued()  # what the workers woken by the run's commits deliver
    with golden.together():
        check_output(golden, run, prefix=prefix)
        check_side_effects(golden, since, prefix=prefix)
    return run


# Data, built through the factories and payments.services under a frozen clock -------------


def make_agent(code: str, name: str, *, email: bool = True, rate: str | None = None) -> Agent:
    login = code.lower()
    return AgentFactory(
        user=UserFactory(username=login, email=f"{login}@users.example.com"),
        code=code,
        full_name=name,
        phone=f"+261 34 00 {code[-3:]} 00",
        email=f"{login}@agents.example.com" if email else "",
        location="Antananarivo",
        commission_rate=None if rate is None else Decimal(rate),
    )


def make_staff(username: str, email: str, **fields: Any) -> None:
    StaffUserFactory(username=username, email=email, **fields)


def open_session(agent: Agent, when: dt.datetime, opening: str) -> CashSession:
    with time_machine.travel(when, tick=False):
        return session_open(agent=agent, opening_balance=Decimal(opening), actor=agent.user)


def pay(session: CashSession, when: dt.datetime, tax: str, payer: str) -> CashTransaction:
    with time_machine.travel(when, tick=False):
        return transaction_record(
            session=session,
            payer_reference=payer,
            tax_amount=Decimal(tax),
            amount_tendered=Decimal(tax),
            actor=session.agent.user,
        )


def void(payment: CashTransaction, when: dt.datetime, reason: str) -> None:
    with time_machine.travel(when, tick=False):
        transaction_void(cash_transaction=payment, actor=payment.agent.user, reason=reason)


def close_counted(session: CashSession, when: dt.datetime, counted: str | None = None) -> None:
    """Closed by its agent, counted at ``counted`` (default: the expected balance)."""
    with time_machine.travel(when, tick=False):
        cash = session_expected_balance(session=session) if counted is None else Decimal(counted)
        session_close(session=session, counted_cash=cash, actor=session.agent.user)


def close_uncounted(session: CashSession, when: dt.datetime) -> None:
    """Closed by the system, nobody counted the cash."""
    with time_machine.travel(when, tick=False), transaction.atomic():
        locked = CashSession.objects.select_for_update().select_related("agent").get(pk=session.pk)
        session_close_automatically(session=locked, notes="Expired. Cash not counted.")


# close_expired_sessions -------------------------------------------------------------------

CLOSE_AT = at(2026, 3, 10, 15, 0)


def expiring_sessions() -> None:
    """At 15:00 on 10 March, with the 12 h timeout: Tiana's (no email) and Rova's sessions
    are expired and empty; Hery's is expired with payments (one voided); Faly's opened this
    morning and his session of the day before was closed with a count."""
    with time_machine.travel(at(2026, 3, 1, 9, 0), tick=False):
        rova = make_agent("AG0001", "Rova Rakoto")
        hery = make_agent("AG0002", "Hery Rasoanaivo")
        tiana = make_agent("AG0003", "Tiana Randria", email=False)
        faly = make_agent("AG0004", "Faly Andria")
    yesterday = open_session(faly, at(2026, 3, 9, 8, 0), "5000.00")
    pay(yesterday, at(2026, 3, 9, 10, 0), "4000.00", "NIF-100001")
    close_counted(yesterday, at(2026, 3, 9, 17, 0))
    open_session(tiana, at(2026, 3, 10, 0, 30), "15000.00")
    busy = open_session(hery, at(2026, 3, 10, 1, 0), "10000.00")
    pay(busy, at(2026, 3, 10, 3, 0), "5000.00", "NIF-200001")
    pay(busy, at(2026, 3, 10, 3, 10), "7500.00", "NIF-200002")
    wrong = pay(busy, at(2026, 3, 10, 3, 15), "3000.00", "NIF-200003")
    void(wrong, at(2026, 3, 10, 3, 20), "Wrong payer")
    open_session(rova, at(2026, 3, 10, 2, 0), "25000.00")
    open_session(faly, at(2026, 3, 10, 9, 0), "8000.00")


def close_case(golden: Golden, *args: str, output: str) -> None:
    expiring_sessions()
    with golden.together():
        run_case(golden, "close_expired_sessions", *args, output=output, when=CLOSE_AT)
        golden.json("sessions", sessions_state())


@BOTH_OUTPUTS
def test_close_expired_sessions_dry_run(golden, output):
    close_case(golden, "--dry-run", output=output)


@BOTH_OUTPUTS
def test_close_expired_sessions_default(golden, output):
    close_case(golden, output=output)


@BOTH_OUTPUTS
def test_close_expired_sessions_force(golden, output):
    close_case(golden, "--force", output=output)


@BOTH_OUTPUTS
def test_close_expired_sessions_in_french(golden, output, settings):
    settings.LANGUAGE_CODE = "fr"
    close_case(golden, output=output)


# generate_commission_report ---------------------------------------------------------------

REPORT_AT = at(2026, 11, 2, 9, 0)


def takings(
    agent: Agent,
    when: dt.datetime,
    *taxes: str,
    void_indexes: tuple[int, ...] = (),
    paid_indexes: tuple[int, ...] = (),
) -> None:
    """One session of ``agent`` at ``when``: record the payments, void some, close the
    session counted, mark some commissions paid."""
    session = open_session(agent, when, "0.00")
    payments = [
        pay(session, when, tax, f"NIF-{agent.code}-{when:%Y%m%d}-{index}")
        for index, tax in enumerate(taxes)
    ]
    for index in void_indexes:
        void(payments[index], when, "Wrong payer")
    close_counted(session, when)
    with time_machine.travel(when, tick=False):
        commissions_mark_paid(
            commissions=[payments[index].commission for index in paid_indexes], actor=None
        )


def commissions_network() -> None:
    """October 2026 with four agents (default 2 %, 5 %, 2.5 %), pending, paid and cancelled
    commissions, a voided payment and payments just outside the month; July 2025 too.
    Administrators: two active staff with an address, and three users who get nothing."""
    with time_machine.travel(at(2025, 6, 1, 9, 0), tick=False):
        hery = make_agent("AG0001", "Hery Rakoto")
        voahirana = make_agent("AG0002", "Voahirana Rabe", rate="5.00")
        faly = make_agent("AG0003", "Faly Andria")
        herizo = make_agent("AG0004", "Hérizo Ramanantsoa", rate="2.50")
        make_staff("zoe", "zoe@example.com")
        make_staff("boss", "boss@example.com")
        make_staff("gone", "gone@example.com", is_active=False)
        make_staff("nomail", "")
        UserFactory(username="clerk", email="clerk@example.com")
    takings(hery, at(2025, 7, 14, 9, 0), "2500.00")
    takings(herizo, at(2025, 7, 20, 15, 0), "4000.00", "1500.00", void_indexes=(1,))
    takings(
        hery, at(2026, 10, 5, 10, 0), "10000.00", "5000.00", void_indexes=(1,), paid_indexes=(0,)
    )
    takings(hery, at(2026, 10, 31, 23, 30), "20000.00")
    takings(voahirana, at(2026, 9, 30, 23, 30), "1000.00")
    takings(voahirana, at(2026, 10, 1, 0, 0), "3000.00")
    takings(voahirana, at(2026, 11, 1, 0, 30), "7000.00")
    takings(faly, at(2026, 9, 15, 11, 0), "8000.00")
    takings(herizo, at(2026, 10, 12, 14, 0), "12345.50", "999.99", paid_indexes=(0,))


@BOTH_OUTPUTS
def test_commission_report_previous_month(golden, output):
    commissions_network()
    run_case(golden, "generate_commission_report", output=output, when=REPORT_AT)


@BOTH_OUTPUTS
def test_commission_report_dry_run(golden, output):
    commissions_network()
    run_case(golden, "generate_commission_report", "--dry-run", output=output, when=REPORT_AT)


@BOTH_OUTPUTS
def test_commission_report_month_and_year(golden, output):
    commissions_network()
    run_case(
        golden,
        "generate_commission_report",
        "--month",
        "7",
        "--year",
        "2025",
        output=output,
        when=REPORT_AT,
    )


@BOTH_OUTPUTS
def test_commission_report_to_one_address(golden, output):
    commissions_network()
    run_case(
        golden,
        "generate_commission_report",
        "--email",
        "chef@example.com",
        output=output,
        when=REPORT_AT,
    )


def test_commission_report_bad_month(golden):
    commissions_network()
    run = run_case(
        golden, "generate_commission_report", "--month", "13", output="text", when=REPORT_AT
    )
    assert run.returncode == 2


@BOTH_OUTPUTS
def test_commission_report_in_french(golden, output, settings):
    settings.LANGUAGE_CODE = "fr"
    commissions_network()
    run_case(golden, "generate_commission_report", output=output, when=REPORT_AT)


# verify_audit_trail -----------------------------------------------------------------------

VERIFY_AT = at(2026, 5, 20, 10, 0)


def audited_activity() -> None:
    """Audit entries from real sessions: one day in March (outside the default 30 days),
    three days in May. Two administrators have an address."""
    with time_machine.travel(at(2026, 3, 1, 9, 0), tick=False):
        hery = make_agent("AG0001", "Hery Rakoto")
        voahangy = make_agent("AG0002", "Voahangy Rabe")
        make_staff("boss", "boss@example.com")
        make_staff("zoe", "zoe@example.com")
    takings(hery, at(2026, 3, 2, 10, 0), "10000.00")
    takings(hery, at(2026, 5, 4, 9, 30), "5000.00", "2500.00", paid_indexes=(0,))
    takings(voahangy, at(2026, 5, 11, 14, 0), "3000.00", "1200.00", void_indexes=(1,))
    takings(hery, at(2026, 5, 18, 16, 45), "4000.00")


def tamper_with_the_chain() -> None:
    """Lower one payment's amount in its entry, and delete an entry from the middle."""
    edited = AuditEntry.objects.get(action="transaction.recorded", data__tax_amount="2500.00")
    removed = AuditEntry.objects.get(action="session.opened", data__agent="AG0002")
    with transaction.atomic():
        disable_append_only_trigger()
        set_column(edited.sequence, "data", {**edited.data, "tax_amount": "250.00"})
        delete_entries(removed.sequence)
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE auditing_auditentry ENABLE TRIGGER {APPEND_ONLY_TRIGGER}")


@BOTH_OUTPUTS
def test_verify_audit_trail_last_30_days(golden, output):
    audited_activity()
    run_case(golden, "verify_audit_trail", output=output, when=VERIFY_AT)


@BOTH_OUTPUTS
def test_verify_audit_trail_full(golden, output):
    audited_activity()
    run_case(golden, "verify_audit_trail", "--full", output=output, when=VERIFY_AT)


@BOTH_OUTPUTS
def test_verify_audit_trail_empty_range(golden, output):
    audited_activity()
    run_case(
        golden,
        "verify_audit_trail",
        "--start-date",
        "2026-04-01",
        "--end-date",
        "2026-04-15",
        output=output,
        when=VERIFY_AT,
    )


@BOTH_OUTPUTS
def test_verify_audit_trail_tampered_chain_alerts_admins(golden, output):
    audited_activity()
    tamper_with_the_chain()
    run_case(golden, "verify_audit_trail", "--alert-on-tampering", output=output, when=VERIFY_AT)


def activity_with_a_checkpoint() -> None:
    """The same sessions, with a verification on May 12 that signed the head as it was then
    (sequence 13); the May 18 session comes after it."""
    with time_machine.travel(at(2026, 3, 1, 9, 0), tick=False):
        hery = make_agent("AG0001", "Hery Rakoto")
        voahangy = make_agent("AG0002", "Voahangy Rabe")
        make_staff("boss", "boss@example.com")
    takings(hery, at(2026, 3, 2, 10, 0), "10000.00")
    takings(hery, at(2026, 5, 4, 9, 30), "5000.00", "2500.00", paid_indexes=(0,))
    takings(voahangy, at(2026, 5, 11, 14, 0), "3000.00", "1200.00", void_indexes=(1,))
    call("verify_audit_trail", "--full", when=at(2026, 5, 12, 8, 0))
    takings(hery, at(2026, 5, 18, 16, 45), "4000.00")


@BOTH_OUTPUTS
def test_verify_audit_trail_from_the_last_checkpoint_to_the_head(golden, output, settings):
    """Checked by sequence: the March dates given (with the entries either side) and the
    entries since the May 12 checkpoint; the auditors receive the newly signed head."""
    activity_with_a_checkpoint()
    settings.AUDITOR_EMAILS = ["auditor@example.com"]
    args = ("--start-date", "2026-03-01", "--end-date", "2026-03-01")
    run_case(golden, "verify_audit_trail", *args, output=output, when=VERIFY_AT)
    # Nothing appended since: the head is the checkpoint just signed.
    run_case(golden, "verify_audit_trail", *args, output=output, when=VERIFY_AT, prefix="again.")


# reconciliation_reminder ------------------------------------------------------------------

REMIND_AT = at(2026, 11, 25, 8, 0)


def unreconciled_sessions() -> None:
    """Sessions closed yesterday or this morning and not reconciled: Hery's counted short
    and auto-closed (not counted), Voahangy's counted exact, Tiana's auto-closed (Tiana has
    no email). Left out by the default look-back: Voahangy's closed three days ago; always
    left out: Hery's reconciled one and Voahangy's open one. A staff user without an
    address reconciles; two administrators have one."""
    with time_machine.travel(at(2026, 11, 1, 9, 0), tick=False):
        hery = make_agent("AG0001", "Hery Rakoto")
        voahangy = make_agent("AG0002", "Voahangy Rabe")
        tiana = make_agent("AG0003", "Tiana Randria", email=False)
        make_staff("reconciler", "")
        make_staff("boss", "boss@example.com")
        make_staff("ops", "ops@example.com")
    old = open_session(voahangy, at(2026, 11, 22, 8, 0), "10000.00")
    close_counted(old, at(2026, 11, 22, 17, 0))
    reconciled = open_session(hery, at(2026, 11, 24, 5, 0), "10000.00")
    close_counted(reconciled, at(2026, 11, 24, 6, 0))
    with time_machine.travel(at(2026, 11, 24, 6, 30), tick=False):
        session_reconcile(session=reconciled, actor=StaffUserFactory(username="reconciler"))
    short = open_session(hery, at(2026, 11, 24, 7, 0), "10000.00")
    pay(short, at(2026, 11, 24, 7, 0), "50000.00", "NIF-300001")
    close_counted(short, at(2026, 11, 24, 17, 0), counted="57500.00")
    uncounted = open_session(hery, at(2026, 11, 24, 18, 0), "10000.00")
    pay(uncounted, at(2026, 11, 24, 18, 0), "20000.00", "NIF-300002")
    close_uncounted(uncounted, at(2026, 11, 25, 6, 30))
    exact = open_session(voahangy, at(2026, 11, 24, 9, 0), "10000.00")
    pay(exact, at(2026, 11, 24, 9, 0), "5000.00", "NIF-300003")
    close_counted(exact, at(2026, 11, 24, 16, 0), counted="15000.00")
    open_session(voahangy, at(2026, 11, 25, 7, 0), "10000.00")
    tiana_session = open_session(tiana, at(2026, 11, 24, 8, 0), "5000.00")
    close_uncounted(tiana_session, at(2026, 11, 24, 20, 30))


@BOTH_OUTPUTS
def test_reconciliation_reminder_default(golden, output):
    unreconciled_sessions()
    run_case(golden, "reconciliation_reminder", output=output, when=REMIND_AT)


@BOTH_OUTPUTS
def test_reconciliation_reminder_three_days(golden, output):
    unreconciled_sessions()
    run_case(golden, "reconciliation_reminder", "--days", "3", output=output, when=REMIND_AT)


@BOTH_OUTPUTS
def test_reconciliation_reminder_dry_run(golden, output):
    unreconciled_sessions()
    run_case(
        golden,
        "reconciliation_reminder",
        "--dry-run",
        "--email-admins",
        output=output,
        when=REMIND_AT,
    )


@BOTH_OUTPUTS
def test_reconciliation_reminder_with_admin_summary(golden, output):
    unreconciled_sessions()
    run_case(golden, "reconciliation_reminder", "--email-admins", output=output, when=REMIND_AT)


@BOTH_OUTPUTS
def test_reconciliation_reminder_second_run_same_day(golden, output):
    unreconciled_sessions()
    run_case(
        golden,
        "reconciliation_reminder",
        "--email-admins",
        output=output,
        when=REMIND_AT,
        prefix="first.",
    )
    run_case(
        golden,
        "reconciliation_reminder",
        "--email-admins",
        output=output,
        when=at(2026, 11, 25, 14, 0),
        prefix="second.",
    )


@BOTH_OUTPUTS
def test_reconciliation_reminder_in_french(golden, output, settings):
    settings.LANGUAGE_CODE = "fr"
    unreconciled_sessions()
    run_case(golden, "reconciliation_reminder", "--email-admins", output=output, when=REMIND_AT)
