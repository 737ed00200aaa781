from typing import Any

from django.core.management.base import CommandParser

from auditing.runs import InvalidVerificationRange, verification_range_resolve
from mailing.addresses import InvalidEmailAddress, email_address_validate
from tasks.legacy_commands import LegacyOperationCommand as OperationCommand
from tasks.tasks import verify_audit_trail

KIND_LABELS = {
    "content_mismatch": "content mismatch (the entry was changed)",
    "broken_link": "broken link (an entry before it was removed, inserted or replaced)",
    "gap": "gap in the sequence",
    "truncated": "truncated (the newest entries were removed)",
}


class Command(OperationCommand):
    help = (
        "Verify the audit trail's hash chain: each entry's hash, its link to the entry "
        "before it, gaps in the sequence, and truncation since earlier runs. Checks the "
        "last 30 days unless given dates or --full. Every run is kept for the admin."
    )
    task = verify_audit_trail

    def add_operation_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--start-date",
            metavar="YYYY-MM-DD",
            help="First day to verify, in TIME_ZONE. Defaults to 30 days before the end date.",
        )
        parser.add_argument(
            "--end-date",
            metavar="YYYY-MM-DD",
            help="Last day to verify, included, in TIME_ZONE. Defaults to now.",
        )
        parser.add_argument(
            "--full",
            action="store_true",
            help="Verify the entire audit trail (may take time for large datasets).",
        )
        parser.add_argument(
            "--email",
            metavar="EMAIL",
            help="Email address to send alert to if tampering detected.",
        )
        parser.add_argument(
            "--alert-on-tampering",
            action="store_true",
            help="Send email alert to all admins if tampering is detected (or to --email).",
        )

    def task_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        try:
            verification_range_resolve(
                start_date=options["start_date"],
                end_date=options["end_date"],
                full=options["full"],
            )
            email = email_address_validate(options["email"]) if options["email"] else None
        except (InvalidVerificationRange, InvalidEmailAddress) as error:
            raise self.bad_input(_sentence(str(error))) from error
        return {
            "start_date": options["start_date"],
            "end_date": options["end_date"],
            "full": options["full"],
            "alert_on_tampering": options["alert_on_tampering"],
            "email": email,
        }

    def render(self, summary: dict[str, Any]) -> None:
        if summary["status"] == "already_running":
            self.stderr.write(self.style.WARNING(summary["message"]))
            return
        if summary["full"]:
            self.stdout.write("Range: the entire audit trail")
        else:
            self.stdout.write(
                f"Range: {summary['range_start']} to {summary['range_end']} "
                f"({summary['time_zone']}, end date included)"
            )
        if summary["entries_checked"]:
            self.stdout.write(
                f"Entries checked: {summary['entries_checked']} "
                f"(sequence {summary['first_sequence']} to {summary['last_sequence']})"
            )
            if summary["last_sequence"] != summary["head_sequence"]:
                self.stdout.write(
                    f"Last entry checked: #{summary['last_sequence']}  {summary['last_hash']}"
                )
        else:
            self.stdout.write("No audit entries in this range.")
        if summary["head_sequence"]:
            self.stdout.write(
                f"Head of the chain: #{summary['head_sequence']}  {summary['head_hash']}"
            )
        self.stdout.write(f"Time taken: {summary['duration_ms'] / 1000:.2f} s")
        if summary["status"] == "ok":
            verdict = "Audit trail intact" if summary["entries_checked"] else "Nothing to verify"
            self.stdout.write(self.style.SUCCESS(f"{verdict} (run #{summary['run_id']})."))
            return
        issues = f"{summary['issues']} issue" + ("" if summary["issues"] == 1 else "s")
        self.stdout.write(
            self.style.ERROR(f"TAMPERING DETECTED: {issues} (run #{summary['run_id']}).")
        )
        for row in summary["violations"]:
            when = row["timestamp"][:19].replace("T", " ") if row["timestamp"] else "unknown time"
            kind = KIND_LABELS.get(row["kind"], row["kind"])
            self.stdout.write(self.style.ERROR(f"  Entry #{row['sequence']} at {when}: {kind}"))
            self.stdout.write(f"      expected: {row['expected']}")
            self.stdout.write(f"      stored:   {row['stored']}")
            self.stdout.write(f"      {row['detail']}")
        self._render_alert(summary)

    def _render_alert(self, summary: dict[str, Any]) -> None:
        alert = summary["alert"]
        if alert is None:
            self.stdout.write("No alert sent (use --alert-on-tampering or --email).")
            return
        if not alert["recipients"]:
            self.stderr.write(
                self.style.WARNING(
                    "No alert sent: no active administrator has an email address. "
                    "Use --email to alert someone."
                )
            )
            return
        emails = summary["emails"]
        to = ", ".join(alert["recipients"])
        if emails["sent"]:
            self.stdout.write(f"Alert sent to {to}.")
        elif emails["failed"]:
            self.stderr.write(
                self.style.WARNING(f"Alert to {to} could not be sent yet; it will be retried.")
            )
        else:
            self.stdout.write(f"Alert to {to} queued.")


def _sentence(message: str) -> str:
    message = message[:1].upper() + message[1:]
    return message if message.endswith(".") else f"{message}."
