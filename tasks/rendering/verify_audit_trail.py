"""verify_audit_trail's text output: the range, what was checked, the verdict, each
violation and what became of the alert."""

from django.core.management.base import OutputWrapper
from django.core.management.color import Style
from django.utils import timezone

from auditing.verification import ViolationKind
from tasks.operations.verify_audit_trail import Result
from tasks.rendering.emails import email_outcomes_text
from tasks.results import OperationStatus

KIND_LABELS = {
    ViolationKind.CONTENT_MISMATCH: "content mismatch (the entry was changed)",
    ViolationKind.BROKEN_LINK: "broken link (an entry before it was removed, inserted or replaced)",
    ViolationKind.GAP: "gap in the sequence",
    ViolationKind.TRUNCATED: "truncated (the newest entries were removed)",
}


def verification_render(
    result: Result, *, out: OutputWrapper, err: OutputWrapper, style: Style
) -> None:
    if result.full:
        out.write("Range: the entire audit trail")
    else:
        out.write(
            f"Range: {result.range_start} to {result.range_end} "
            f"({result.time_zone}, end date included)"
        )
    if result.entries_checked:
        out.write(
            f"Entries checked: {result.entries_checked} "
            f"(sequence {result.first_sequence} to {result.last_sequence})"
        )
        if result.last_sequence != result.head_sequence:
            out.write(f"Last entry checked: #{result.last_sequence}  {result.last_hash}")
    else:
        out.write("No audit entries in this range.")
    if result.head_sequence:
        out.write(f"Head of the chain: #{result.head_sequence}  {result.head_hash}")
    out.write(f"Time taken: {result.duration_ms / 1000:.2f} s")
    if result.status == OperationStatus.OK:
        verdict = "Audit trail intact" if result.entries_checked else "Nothing to verify"
        out.write(style.SUCCESS(f"{verdict} (run #{result.run_id})."))
        return
    issues = f"{result.issues} issue" + ("" if result.issues == 1 else "s")
    out.write(style.ERROR(f"TAMPERING DETECTED: {issues} (run #{result.run_id})."))
    for row in result.violations:
        when = (
            f"{timezone.localtime(row.timestamp):%Y-%m-%d %H:%M:%S}"
            if row.timestamp
            else "unknown time"
        )
        out.write(style.ERROR(f"  Entry #{row.sequence} at {when}: {KIND_LABELS[row.kind]}"))
        out.write(f"      expected: {row.expected}")
        out.write(f"      stored:   {row.stored}")
        out.write(f"      {row.detail}")
    _alert_render(result, out=out, err=err, style=style)


def _alert_render(result: Result, *, out: OutputWrapper, err: OutputWrapper, style: Style) -> None:
    alert = result.alert
    if alert is None:
        out.write("No alert sent (use --alert-on-tampering or --email).")
        return
    if not alert.recipients:
        err.write(
            style.WARNING(
                "No alert sent: no active administrator has an email address. "
                "Use --email to alert someone."
            )
        )
        return
    line = f"Alert to {', '.join(alert.recipients)}: {email_outcomes_text(result.emails)}."
    if result.emails.failed:
        err.write(style.WARNING(line))
    else:
        out.write(line)
