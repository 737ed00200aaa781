from typing import Any

from django.core.management.base import CommandParser

from payments.money import format_money
from tasks.legacy_commands import LegacyOperationCommand as OperationCommand
from tasks.tasks import close_expired_sessions

ACTION_LABELS = {
    "closed": "closed",
    "would_close": "would close",
    "skipped": "skipped",
    "failed": "FAILED",
    "already_handled": "busy in another process; left for the next run",
}


class Command(OperationCommand):
    help = (
        "Close cash sessions left open past the configured timeout (default 12 h). "
        "Sessions with payments are skipped, and their agent told once, unless --force."
    )
    task = close_expired_sessions

    def add_operation_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Show which sessions would be closed or skipped; write nothing.",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Also close expired sessions that have payments (their cash stays uncounted).",
        )

    def task_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"dry_run": options["dry_run"], "force": options["force"]}

    def render(self, summary: dict[str, Any]) -> None:
        if summary["status"] == "already_running":
            self.stderr.write(self.style.WARNING(summary["message"]))
            return
        currency = summary["currency"]
        if summary["dry_run"]:
            self.stdout.write(self.style.WARNING("Dry run: nothing will be written."))
        self.stdout.write(
            f"Open sessions older than {summary['timeout_hours']} h: {len(summary['sessions'])}"
        )
        for row in summary["sessions"]:
            action = ACTION_LABELS[row["action"]]
            if row["action"] == "skipped":
                action += f" ({row['reason']})"
                if row.get("agent_notified"):
                    action += ", agent notified"
            if row["action"] == "failed":
                action += f": {row['error']}"
            line = (
                f"  {row['session']}  {row['agent']} {row['agent_name']}  "
                f"opened {row['opened_at'][:16].replace('T', ' ')}  "
                f"{row['transactions']} transaction(s)  "
                f"expected {format_money(_decimal(row['expected_balance']), currency=currency)}"
                f"  -> {action}"
            )
            style = {"failed": self.style.ERROR, "skipped": self.style.WARNING}.get(
                row["action"], str
            )
            self.stdout.write(style(line))
        if summary["dry_run"]:
            self.stdout.write(
                f"Would close {summary['would_close']}, would skip {summary['skipped']} "
                "(has transactions; use --force). Nothing was written."
            )
            return
        totals = (
            f"Closed {summary['closed']}, skipped {summary['skipped']} "
            f"(has transactions; use --force), failed {summary['failed']}"
        )
        if summary["already_handled"]:
            totals += f", {summary['already_handled']} busy in another process (next run retries)"
        self.stdout.write((self.style.ERROR if summary["failed"] else self.style.SUCCESS)(totals))
        emails = summary["emails"]
        if any(emails.values()):
            self.stdout.write(
                f"Emails to agents: {emails['sent']} sent, {emails['failed']} failed "
                f"(will be retried), {emails['queued']} queued"
            )


def _decimal(value: str):
    from decimal import Decimal

    return Decimal(value)
