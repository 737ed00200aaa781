"""The audit trail's emails: the tampering alert (a bounded body, every finding as CSV, in
the email language) and the auditors' report carrying the signed head."""

import csv
import datetime as dt
import io
import json

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.utils import timezone

from auditing.chain import (
    Checkpoint,
    SignedCheckpoint,
    Violation,
    ViolationKind,
    checkpoint_signature_problem,
)
from auditing.exports import FINDINGS_CSV_HEADER, findings_csv
from auditing.models import AuditEntry, VerificationFinding, VerificationRun
from auditing.selectors import ChainHead
from auditing.services import (
    audit_entry_append,
    verification_run_fail,
    verification_run_finish,
    verification_run_start,
)
from auditing.verification import VerificationResult
from mailing.models import EmailMessage
from mailing.rendering import email_render
from tasks import audit_emails
from tasks.audit_emails import (
    ALERT_TEMPLATE,
    auditors_report_queue,
    tampering_alert_queue,
)
from tasks.operations.verify_audit_trail import audit_trail_verify, options_parse
from tasks.results import Trigger
from tests.auditing.tampering import (
    APPEND_ONLY_TRIGGER,
    delete_entries,
    disable_append_only_trigger,
    set_column,
)
from tests.mailing.outbox import outbox_deliver_queued


def local(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=timezone.get_default_timezone())


NOW = local(2026, 5, 20, 10, 0)
FIRST_DAY = local(2026, 5, 1)
HASH_A = "a" * 64
HASH_B = "b" * 64
RUN_LINK = "https://cash.example.com/admin/auditing/verificationrun/{}/change/"

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]


@pytest.fixture(autouse=True)
def _now(clock, settings):
    settings.SITE_URL = "https://cash.example.com"
    settings.LANGUAGE_CODE = "en"
    return clock


def append_daily(count: int) -> list[AuditEntry]:
    entries = []
    for n in range(count):
        with time_machine.travel(FIRST_DAY + dt.timedelta(days=n), tick=False):
            entries.append(audit_entry_append(action="test.event", actor=None, data={"n": n + 1}))
    return entries


def tampered_with(change) -> None:
    """``change`` made with the append-only trigger off, then on again: as an attacker who
    covers their tracks, so that the run reports the change, not the switched-off trigger."""
    disable_append_only_trigger()
    change()
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE auditing_auditentry ENABLE TRIGGER {APPEND_ONLY_TRIGGER}")


def checked(run: VerificationRun) -> str:
    ranges = ", ".join(f"{first}-{last}" for first, last in run.ranges)
    entries = "1 entry" if run.entries_checked == 1 else f"{run.entries_checked} entries"
    return f"Checked by sequence: {ranges} ({entries})"


def verify(django_capture_on_commit_callbacks, **arguments):
    """The operation as beat runs it, its mail delivered as a worker would."""
    with django_capture_on_commit_callbacks(execute=True):
        result = audit_trail_verify(options=options_parse(**arguments), trigger=Trigger.BEAT)
    outbox_deliver_queued()
    return result


def stored_run(violations: list[Violation], *, head: ChainHead | None = None) -> VerificationRun:
    """A finished run with these findings, as the verification stores them."""
    head = head or ChainHead(sequence=2000, current_hash=HASH_A)
    run = verification_run_start(
        started_at=NOW, trigger="beat", full=True, range_start=None, range_end=None, head=head
    )
    result = VerificationResult(
        entries_checked=head.sequence,
        first_sequence=1,
        last_sequence=head.sequence,
        ranges=[(1, head.sequence)],
    )
    return verification_run_finish(run=run, result=result, violations=violations, duration_ms=5)


def mismatches(count: int) -> list[Violation]:
    return [
        Violation(
            kind=ViolationKind.CONTENT_MISMATCH,
            sequence=n,
            detail="the entry's content does not match its stored hash",
            timestamp=FIRST_DAY,
            expected=HASH_A,
            stored=HASH_B,
        )
        for n in range(1, count + 1)
    ]


LAST_GOOD = Checkpoint(
    sequence=1500, head_hash=HASH_B, entry_count=1500, signed_at=local(2026, 5, 19, 9, 0)
)


def alert_for(run: VerificationRun, *, last_good: Checkpoint | None = LAST_GOOD) -> EmailMessage:
    email_id = tampering_alert_queue(
        run=run,
        recipients=["security@example.com"],
        head=ChainHead(sequence=2000, current_hash=HASH_A),
        last_good=last_good,
    )
    return EmailMessage.objects.get(pk=email_id)


def csv_rows(content: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content)))


# --- The tampering alert ----------------------------------------------------------------


def test_the_alert_gives_the_findings_in_words_the_head_the_last_good_checkpoint_and_a_link(
    settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.AUDITOR_EMAILS = []
    entries = append_daily(5)
    verify(django_capture_on_commit_callbacks)  # intact: signs #5
    checkpoint_hash = entries[-1].current_hash
    with time_machine.travel(local(2026, 5, 19), tick=False):
        newer = audit_entry_append(action="test.event", actor=None, data={"n": 6})
    tampered_with(lambda: set_column(6, "data", {"n": 600}))

    verify(django_capture_on_commit_callbacks, email="security@example.com")

    run = VerificationRun.objects.latest("pk")
    [mail] = mailoutbox
    assert mail.to == ["security@example.com"]
    assert mail.subject == "[ALERT] Audit trail tampering detected on 2026-05-20 — 1 issue"
    html = mail.alternatives[0][0]
    for body in (mail.body, html):
        assert f"Verification run #{run.pk} (beat) on 2026-05-20 10:00 found 1 issue" in body
        assert checked(run) in body
        assert "content mismatch (the entry was changed)" in body
        assert "content_mismatch" not in body
        assert "2026-05-19 12:00:00" in body  # the entry's time, in TIME_ZONE
        assert newer.current_hash in body  # stored
        assert f"Head of the chain: #6 {newer.current_hash}" in body
        assert f"Last good checkpoint: #5 {checkpoint_hash}, signed at 2026-05-20 10:00:00" in body
        assert RUN_LINK.format(run.pk) in body
        assert "verification-run-" in body
    assert "1. Entry #6 - content mismatch (the entry was changed)\n" in mail.body
    assert "   the entry's content does not match its stored hash.\n" in mail.body
    assert "more in the attached CSV" not in mail.body
    [(filename, content, mimetype)] = mail.attachments
    assert (filename, mimetype) == (f"verification-run-{run.pk}-findings.csv", "text/csv")
    [row] = csv_rows(content)
    assert (row["sequence"], row["kind"]) == ("6", "content_mismatch")
    logged = EmailMessage.objects.get(purpose="tampering_alert")
    assert logged.about == f"verification run #{run.pk}"
    assert (logged.subject_type, logged.subject_id) == ("auditing.verificationrun", str(run.pk))


def test_the_alert_in_french_names_each_kind_in_french(settings, mailoutbox):
    settings.LANGUAGE_CODE = "fr"
    run = stored_run(
        [
            *mismatches(1),
            Violation(
                kind=ViolationKind.GAP,
                sequence=9,
                detail="entry 8 is missing",
                expected="8",
                stored="9",
            ),
            Violation(
                kind=ViolationKind.ENFORCEMENT_OFF,
                sequence=None,
                detail="auditing_auditentry: trigger t is disabled",
            ),
        ]
    )

    email = alert_for(run)

    assert email.subject == (
        "[ALERTE] Falsification de la piste d'audit détectée le 2026-05-20 — 3 anomalies"
    )
    body = email.body_text
    assert "1. Entrée n° 1 - contenu non conforme (l'entrée a été modifiée)\n" in body
    assert "   le contenu de l'entrée ne correspond pas à son empreinte stockée.\n" in body
    assert "2. Entrée n° 9 - trou dans la séquence (des entrées manquent)\n" in body
    assert "   l'entrée 8 est manquante.\n" in body
    assert "3. Aucune entrée - protection en ajout seul désactivée\n" in body
    assert "Tête de la chaîne : n° 2000 " + HASH_A in body
    assert "Dernier point de contrôle valide : n° 1500 " + HASH_B in body
    assert "Vérifié par séquence : 1-2000 (2000 entrées)" in body
    for english in ("content mismatch", "content_mismatch", "Entry #", "issues", "Head of"):
        assert english not in body
        assert english not in email.body_html
    [attachment] = email.attachments
    labels = [row["kind_label"] for row in csv_rows(attachment["content"])]
    assert labels[0] == "contenu non conforme (l'entrée a été modifiée)"


def test_the_csv_attachment_holds_every_finding_as_the_admin_exports_it():
    violations = [
        *mismatches(70),
        Violation(
            kind=ViolationKind.UNDECODABLE, sequence=71, detail='timestamp "infinity", quoted'
        ),
        Violation(kind=ViolationKind.CHECKPOINT_INVALID, sequence=None, detail="x.json: not JSON"),
    ]
    run = stored_run(violations)

    [attachment] = alert_for(run).attachments

    assert attachment == {
        "filename": f"verification-run-{run.pk}-findings.csv",
        "mimetype": "text/csv",
        "content": findings_csv(run),
    }
    rows = list(csv.reader(io.StringIO(attachment["content"])))
    assert tuple(rows[0]) == FINDINGS_CSV_HEADER
    assert len(rows) == 1 + 72
    parsed = csv_rows(attachment["content"])
    assert [row["position"] for row in parsed] == [str(n) for n in range(1, 73)]
    assert parsed[70]["detail"] == 'timestamp "infinity", quoted'
    assert parsed[71]["sequence"] == ""


def test_an_alert_for_a_thousand_findings_lists_fifty_and_attaches_them_all():
    run = stored_run(mismatches(1000))

    email = alert_for(run)

    for body in (email.body_text, email.body_html):
        assert "The first 50 issues" in body.replace("THE FIRST 50 ISSUES", "The first 50 issues")
        assert "#50" in body
        assert "#51" not in body
        assert "... and 950 more in the attached CSV." in body
    assert email.body_text.count("content mismatch (the entry was changed)") == 50
    # The body's size does not grow with the findings: 50 of them take about 15 KB.
    assert len(email.body_text.encode()) < 20_000
    assert len(email.body_html.encode()) < 40_000
    [attachment] = email.attachments
    assert len(csv_rows(attachment["content"])) == 1000


def test_findings_too_many_to_attach_are_linked_for_download_instead(monkeypatch):
    run = stored_run(mismatches(60))
    monkeypatch.setattr(audit_emails, "ALERT_CSV_MAX_BYTES", 2_000)

    email = alert_for(run)

    assert email.attachments == []
    download = f"https://cash.example.com/admin/auditing/verificationrun/{run.pk}/findings.csv"
    for body in (email.body_text, email.body_html):
        assert (
            "... and 10 more. The full list is too large to attach; download it from the "
            f"admin: {download}"
        ) in body
        assert "attached" not in body


def test_an_alert_that_fits_just_under_the_limit_is_attached(monkeypatch):
    run = stored_run(mismatches(3))
    monkeypatch.setattr(audit_emails, "ALERT_CSV_MAX_BYTES", len(findings_csv(run).encode()))

    [attachment] = alert_for(run).attachments

    assert attachment["content"] == findings_csv(run)


def test_the_alert_says_when_verification_could_not_complete():
    head = ChainHead(sequence=2000, current_hash=HASH_A)
    run = verification_run_start(
        started_at=NOW, trigger="beat", full=False, range_start=None, range_end=None, head=head
    )
    run = verification_run_fail(
        run=run, error="RecursionError: maximum recursion depth exceeded", duration_ms=3
    )

    email = alert_for(run, last_good=None)

    assert email.subject == "[ALERT] Audit trail verification could not complete on 2026-05-20"
    for body in (email.body_text, email.body_html):
        assert (
            f"Verification run #{run.pk} (beat) on 2026-05-20 10:00 (the entries since the last "
            "checkpoint) could not complete: "
            "RecursionError: maximum recursion depth exceeded"
        ) in body
        assert "The audit trail was not fully checked" in body
        assert f"Head of the chain: #2000 {HASH_A}" in body
        assert "Last good checkpoint: unknown" in body
        assert RUN_LINK.format(run.pk) in body
        assert "run verify_audit_trail --full" in body
        assert "tampering detected" not in body.lower()
        assert "issue" not in body
    assert email.attachments == []


def test_an_empty_chain_and_no_checkpoint_are_said_in_words():
    run = stored_run(mismatches(1))

    email_id = tampering_alert_queue(
        run=run, recipients=["security@example.com"], head=None, last_good=None
    )

    body = EmailMessage.objects.get(pk=email_id).body_text
    assert "Head of the chain: none (the audit trail is empty)" in body
    assert "Last good checkpoint: none\n" in body


# --- Each finding explained from its fields, in the email language ------------------------

FINDINGS = [
    # kind, sequence, expected, stored, detail: the detail is the verifier's English
    ("gap", 5, "4", "5", "x"),
    ("gap", 8, "4", "8", "x"),
    ("gap", 5, "7", "5", "x"),
    ("content_mismatch", 3, HASH_A, HASH_B, "x"),
    ("broken_link", 3, HASH_A, HASH_B, "x"),
    ("unknown_key", 3, "", "k9", "x"),
    (
        "timestamp_regression",
        3,
        "at or after 2026-05-03T09:00:00.000000Z",
        "2026-05-02T09:00:00.000000Z",
        "x",
    ),
    (
        "timestamp_in_future",
        3,
        "at or before 2026-05-20T07:05:00.000000Z",
        "2027-05-02T09:00:00.000000Z",
        "x",
    ),
    ("truncated", 4, "9", "3", "x"),
    ("truncated", 9, "9", "8", "x"),
    ("truncated", 1, "9", "0", "x"),
    ("checkpoint_mismatch", 6, HASH_A, HASH_B, "x"),
    ("checkpoint_mismatch", 6, HASH_A, "", "x"),
    ("undecodable", 3, "", "", "the entry cannot be read: timestamp 'infinity' is not a date"),
    ("checkpoint_invalid", None, "", "", "/var/checkpoints/c.json cannot be read: not JSON"),
    ("enforcement_off", None, "", "", "auditing_auditentry: trigger t is disabled"),
]
EXPLAINED = {
    "en": [
        "entry 4 is missing.",
        "entries 4 to 7 are missing.",
        "sequence 5 appears after 6.",
        "the entry's content does not match its stored hash.",
        "previous_hash does not match the preceding entry's hash.",
        'the entry names the key id "k9", which is not one of the chain\'s keys.',
        "the entry is stamped earlier than the entry before it.",
        "the entry is stamped later than the time of the check, beyond the allowed clock drift.",
        "the chain ends at entry 3 but a signed checkpoint holds entry 9: entries 4 to 9 were "
        "removed from the end.",
        "the chain ends at entry 8 but a signed checkpoint holds entry 9: the newest entry was "
        "removed.",
        "the chain is empty but a signed checkpoint holds entry 9: every entry was removed.",
        "a signed checkpoint holds another hash for this entry: the chain was cut back and "
        "appended again, or rewritten.",
        "a signed checkpoint holds this entry, which is missing now.",
        "the entry cannot be read: timestamp 'infinity' is not a date.",
        "/var/checkpoints/c.json cannot be read: not JSON.",
        "auditing_auditentry: trigger t is disabled.",
    ],
    "fr": [
        "l'entrée 4 est manquante.",
        "les entrées 4 à 7 sont manquantes.",
        "la séquence 5 apparaît après la 6.",
        "le contenu de l'entrée ne correspond pas à son empreinte stockée.",
        "previous_hash ne correspond pas à l'empreinte de l'entrée précédente.",
        "l'entrée indique l'identifiant de clé « k9 », qui n'est pas une des clés de la chaîne.",
        "l'entrée est horodatée avant l'entrée qui la précède.",
        "l'entrée est horodatée après l'heure de la vérification, au-delà de la dérive "
        "d'horloge admise.",
        "la chaîne s'arrête à l'entrée 3 alors qu'un point de contrôle signé contient l'entrée "
        "9 : les entrées 4 à 9 ont été supprimées à la fin.",
        "la chaîne s'arrête à l'entrée 8 alors qu'un point de contrôle signé contient l'entrée "
        "9 : l'entrée la plus récente a été supprimée.",
        "la chaîne est vide alors qu'un point de contrôle signé contient l'entrée 9 : toutes "
        "les entrées ont été supprimées.",
        "un point de contrôle signé contient une autre empreinte pour cette entrée : la chaîne "
        "a été raccourcie puis complétée à nouveau, ou réécrite.",
        "un point de contrôle signé contient cette entrée, qui a disparu.",
        "the entry cannot be read: timestamp 'infinity' is not a date.",
        "/var/checkpoints/c.json cannot be read: not JSON.",
        "auditing_auditentry: trigger t is disabled.",
    ],
}


@pytest.mark.parametrize("language", ["en", "fr"])
def test_each_finding_is_explained_from_its_fields_in_the_email_language(language, settings):
    settings.LANGUAGE_CODE = language
    run = stored_run([])
    findings = [
        VerificationFinding(
            run=run,
            position=position,
            kind=kind,
            sequence=sequence,
            expected=expected,
            stored=stored,
            detail=detail,
        )
        for position, (kind, sequence, expected, stored, detail) in enumerate(FINDINGS, start=1)
    ]

    rendered = email_render(
        template=ALERT_TEMPLATE,
        context={
            "run": run,
            "issue_count": len(findings),
            "findings": findings,
            "more": 0,
            "time_zone": settings.TIME_ZONE,
        },
    )

    labels = ("Expected", "Stored", "Attendu", "Stocké")
    explained = [
        line.strip()
        for line in rendered.body_text.splitlines()
        if line.startswith("   ") and not line.strip().startswith(labels)
    ]
    assert explained == EXPLAINED[language]
    # The kinds whose expected value is an English bound leave it to the CSV.
    assert "at or after" not in rendered.body_text + rendered.body_html
    html_sentences = EXPLAINED[language][:6]
    for sentence in html_sentences:
        assert sentence.replace("'", "&#x27;").replace('"', "&quot;") in rendered.body_html
    assert "timestamp &#x27;infinity&#x27; is not a date" in rendered.body_html


TRUNCATION = {
    "en": "the chain ends at entry 3 but a signed checkpoint holds entry 5: entries 4 to 5 were "
    "removed from the end.",
    "fr": "la chaîne s'arrête à l'entrée 3 alors qu'un point de contrôle signé contient l'entrée "
    "5 : les entrées 4 à 5 ont été supprimées à la fin.",
}
REWRITE = {
    "en": "a signed checkpoint holds another hash for this entry: the chain was cut back and "
    "appended again, or rewritten.",
    "fr": "un point de contrôle signé contient une autre empreinte pour cette entrée : la chaîne "
    "a été raccourcie puis complétée à nouveau, ou réécrite.",
}


@pytest.mark.parametrize("language", ["en", "fr"])
def test_a_real_truncation_is_explained_from_the_findings_fields(
    language, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.LANGUAGE_CODE = language
    append_daily(5)
    verify(django_capture_on_commit_callbacks)  # signs #5
    tampered_with(lambda: delete_entries(4, 5))

    verify(django_capture_on_commit_callbacks, email="security@example.com")

    [mail] = mailoutbox
    assert f"   {TRUNCATION[language]}\n" in mail.body
    assert TRUNCATION[language].replace("'", "&#x27;") in mail.alternatives[0][0]


@pytest.mark.parametrize("language", ["en", "fr"])
def test_a_chain_cut_back_and_appended_again_is_explained_in_the_email_language(
    language, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.LANGUAGE_CODE = language
    append_daily(5)
    verify(django_capture_on_commit_callbacks)  # signs #5
    tampered_with(lambda: delete_entries(5))
    with time_machine.travel(local(2026, 5, 19), tick=False):
        audit_entry_append(action="test.event", actor=None, data={"n": "rewritten"})

    verify(django_capture_on_commit_callbacks, email="security@example.com")

    [mail] = mailoutbox
    assert f"   {REWRITE[language]}\n" in mail.body


# --- The auditors' report -----------------------------------------------------------------


@pytest.fixture
def auditors(settings):
    settings.AUDITOR_EMAILS = ["auditor@example.com", "second.auditor@example.com"]
    return settings.AUDITOR_EMAILS


def test_an_intact_run_sends_the_auditors_the_signed_head_with_its_file(
    auditors, mailoutbox, django_capture_on_commit_callbacks
):
    entries = append_daily(4)

    verify(django_capture_on_commit_callbacks)

    run = VerificationRun.objects.get()
    head = entries[-1]
    [mail] = mailoutbox
    assert mail.to == auditors
    assert mail.subject == "Audit trail verification on 2026-05-20: intact, head #4 signed"
    [(filename, content, mimetype)] = mail.attachments
    assert (filename, mimetype) == ("checkpoint-4.json", "application/json")
    signed = SignedCheckpoint.from_json(content)
    assert (signed.checkpoint.sequence, signed.checkpoint.head_hash) == (4, head.current_hash)
    problem = checkpoint_signature_problem(
        signed, trusted_public_keys=settings.AUDIT_TRUSTED_PUBLIC_KEYS
    )
    assert problem is None
    html = mail.alternatives[0][0]
    for body in (mail.body, html):
        assert (
            f"Verification run #{run.pk} (beat) on 2026-05-20 10:00 (2026-04-20 to 2026-05-20, "
            "end date included): the audit trail is intact." in body
        )
        assert checked(run) in body
        assert f"Head of the chain: #4 {head.current_hash}" in body
        assert "Last good checkpoint: none" in body
        assert signed.public_key in body
        assert signed.signature in body
        assert "2026-05-20 10:00:00" in body  # signed at, in TIME_ZONE
        assert "The attached checkpoint-4.json is the signed checkpoint itself." in body
        assert RUN_LINK.format(run.pk) in body
    for line in ("Sequence:    4", f"Head hash:   {head.current_hash}", "Entry count: 4"):
        assert line in mail.body
    logged = EmailMessage.objects.get()
    assert (logged.purpose, logged.about) == ("verification_report", f"verification run #{run.pk}")


def test_when_the_head_has_not_moved_the_report_gives_the_last_good_checkpoint(
    auditors, mailoutbox, django_capture_on_commit_callbacks
):
    entries = append_daily(2)
    verify(django_capture_on_commit_callbacks)
    mailoutbox.clear()

    verify(django_capture_on_commit_callbacks)

    [mail] = mailoutbox
    assert mail.subject == "Audit trail verification on 2026-05-20: intact"
    assert mail.attachments == []
    assert (
        f"Last good checkpoint: #2 {entries[-1].current_hash}, signed at 2026-05-20 10:00:00"
        in mail.body
    )
    assert "No new checkpoint: the head has not moved since the last good checkpoint" in mail.body


def test_the_report_of_a_tampered_chain_gives_the_issues_and_signs_nothing(
    auditors, mailoutbox, django_capture_on_commit_callbacks
):
    entries = append_daily(5)
    verify(django_capture_on_commit_callbacks)
    mailoutbox.clear()
    tampered_with(lambda: delete_entries(5))

    verify(django_capture_on_commit_callbacks)

    run = VerificationRun.objects.latest("pk")
    [mail] = mailoutbox  # no alert was asked for: the auditors' report only
    assert mail.to == auditors
    assert mail.subject == "[ALERT] Audit trail verification on 2026-05-20: 1 issue"
    assert mail.attachments == []
    assert (
        "found 1 issue in the audit trail (2026-04-20 to 2026-05-20, end date included)."
        in mail.body
    )
    assert "No checkpoint was signed: the chain is not intact." in mail.body
    assert f"Head of the chain: #4 {entries[3].current_hash}" in mail.body
    assert RUN_LINK.format(run.pk) in mail.body


def test_the_report_of_a_run_that_could_not_complete_says_so():
    run = verification_run_start(
        started_at=NOW, trigger="beat", full=False, range_start=None, range_end=None, head=None
    )
    run = verification_run_fail(
        run=run, error="OverflowError: date value out of range", duration_ms=1
    )

    email_id = auditors_report_queue(
        run=run, recipients=["auditor@example.com"], head=None, checkpoint=None, last_good=None
    )

    email = EmailMessage.objects.get(pk=email_id)
    assert email.subject == "[ALERT] Audit trail verification on 2026-05-20: could not complete"
    assert "could not complete: OverflowError: date value out of range" in email.body_text
    assert "No checkpoint was signed: the run could not complete." in email.body_text
    assert "Checked by sequence" not in email.body_text


def test_the_report_in_french(settings):
    settings.LANGUAGE_CODE = "fr"
    run = stored_run([])
    signed = SignedCheckpoint(
        checkpoint=Checkpoint(sequence=2000, head_hash=HASH_A, entry_count=2000, signed_at=NOW),
        public_key="PUBLIC",
        signature="SIGNATURE",
    )

    email_id = auditors_report_queue(
        run=run,
        recipients=["auditor@example.com"],
        head=ChainHead(sequence=2000, current_hash=HASH_A),
        checkpoint=signed,
        last_good=LAST_GOOD,
    )

    email = EmailMessage.objects.get(pk=email_id)
    assert email.subject == (
        "Vérification de la piste d'audit du 2026-05-20 : intacte, tête n° 2000 signée"
    )
    assert "la piste d'audit est intacte." in email.body_text
    assert "Clé publique :      PUBLIC\n" in email.body_text
    assert "NOUVEAU POINT DE CONTRÔLE SIGNÉ" in email.body_text
    assert json.loads(email.attachments[0]["content"])["signature"] == "SIGNATURE"
    for english in ("Head of", "intact, head", "Public key", "Signed at"):
        assert english not in email.body_text
        assert english not in email.body_html


def test_no_auditors_no_report():
    run = stored_run([])

    assert (
        auditors_report_queue(run=run, recipients=[], head=None, checkpoint=None, last_good=None)
        is None
    )
    assert not EmailMessage.objects.exists()
