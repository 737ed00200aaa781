"""The audit trail's emails: the tampering alert and the auditors' report of each run.

The alert lists the first findings and attaches the rest as CSV, so that its body stays
the same size whatever the number of findings; the auditors' report carries the signed
head, so that a copy of it lives outside the database. Every word is in the templates
(``auditing/email/``), rendered in the email language.
"""

import csv
import io

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from auditing.chain import Checkpoint, SignedCheckpoint
from auditing.exports import findings_csv_rows
from auditing.models import VerificationRun
from auditing.selectors import ChainHead
from mailing.services import email_queue

ALERT_TEMPLATE = "auditing/email/tampering_alert"
ALERT_PURPOSE = "tampering_alert"
REPORT_TEMPLATE = "auditing/email/verification_report"
REPORT_PURPOSE = "verification_report"
FINDINGS_IN_ALERT = 50
# A findings CSV runs to about 300 bytes a row. Base64 adds a third, and Postfix refuses
# messages over 10 MB by default (message_size_limit), so an attachment over 5 MB would get
# the alert bounced, when it matters most. Beyond it the alert links to the admin's
# download of the same CSV instead.
ALERT_CSV_MAX_BYTES = 5_000_000


def tampering_alert_queue(
    *,
    run: VerificationRun,
    recipients: list[str],
    head: ChainHead | None,
    last_good: Checkpoint | None,
) -> int:
    """Queue the alert for a run that found tampering or could not complete: the count,
    the first findings, the head, the last good checkpoint, a link to the run, and every
    finding as a CSV attachment when it fits in a message."""
    could_not_complete = bool(run.error)
    findings = [] if could_not_complete else list(run.findings.all()[:FINDINGS_IN_ALERT])
    csv_text = None if could_not_complete else _findings_csv_within(run, ALERT_CSV_MAX_BYTES)
    csv_filename = f"verification-run-{run.pk}-findings.csv"
    attachments = []
    if csv_text is not None:
        attachments.append({"filename": csv_filename, "mimetype": "text/csv", "content": csv_text})
    with transaction.atomic():
        message = email_queue(
            purpose=ALERT_PURPOSE,
            recipients=recipients,
            template=ALERT_TEMPLATE,
            context={
                **_run_context(run),
                "could_not_complete": could_not_complete,
                "issue_count": run.issue_count,
                "findings": findings,
                "more": max(run.issue_count - len(findings), 0),
                "head": head,
                "last_good": last_good,
                "csv_filename": csv_filename if csv_text is not None else None,
                "findings_csv_url": _site_url(
                    "admin:auditing_verificationrun_findings_csv", run.pk
                ),
            },
            about=f"verification run #{run.pk}",
            subject_object=run,
            attachments=attachments,
        )
    return message.pk


def auditors_report_queue(
    *,
    run: VerificationRun,
    recipients: list[str],
    head: ChainHead | None,
    checkpoint: SignedCheckpoint | None,
    last_good: Checkpoint | None,
) -> int | None:
    """Queue the auditors' report of a run: its outcome, the head, and the checkpoint it
    signed (attached as its file) or, when the head had not moved, the last good one.
    None when there is nobody to send it to."""
    if not recipients:
        return None
    attachments = []
    checkpoint_filename = None
    if checkpoint is not None:
        checkpoint_filename = f"checkpoint-{checkpoint.checkpoint.sequence}.json"
        attachments.append(
            {
                "filename": checkpoint_filename,
                "mimetype": "application/json",
                "content": checkpoint.to_json(),
            }
        )
    with transaction.atomic():
        message = email_queue(
            purpose=REPORT_PURPOSE,
            recipients=recipients,
            template=REPORT_TEMPLATE,
            context={
                **_run_context(run),
                "could_not_complete": bool(run.error),
                "issue_count": run.issue_count,
                "head": head,
                "checkpoint": checkpoint,
                "checkpoint_filename": checkpoint_filename,
                "last_good": last_good,
            },
            about=f"verification run #{run.pk}",
            subject_object=run,
            attachments=attachments,
        )
    return message.pk


def _run_context(run: VerificationRun) -> dict:
    return {
        "run": run,
        "run_url": _site_url("admin:auditing_verificationrun_change", run.pk),
        "time_zone": settings.TIME_ZONE,
    }


def _site_url(name: str, pk: int) -> str:
    return settings.SITE_URL + reverse(name, args=[pk])


def _findings_csv_within(run: VerificationRun, max_bytes: int) -> str | None:
    """The run's findings as auditing.exports.findings_csv writes them, or None as soon as
    they pass ``max_bytes``: a run with 100,000 findings is never held whole in memory."""
    line = io.StringIO()
    writer = csv.writer(line)
    parts, size = [], 0
    for row in findings_csv_rows(run):
        writer.writerow(row)
        text = line.getvalue()
        line.seek(0)
        line.truncate()
        size += len(text.encode("utf-8"))
        if size > max_bytes:
            return None
        parts.append(text)
    return "".join(parts)
