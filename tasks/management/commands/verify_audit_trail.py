from typing import Any

from django.core.management.base import CommandParser

from tasks import tasks
from tasks.commands import OperationCommand
from tasks.operations import verify_audit_trail
from tasks.rendering.verify_audit_trail import verification_progress, verification_render


class Command(OperationCommand):
    help = (
        "Verify the audit trail's hash chain: each entry's hash, its link to the entry "
        "before it, gaps in the sequence, and truncation since earlier runs. Checks the "
        "last 30 days unless given dates or --full. Every run is kept for the admin."
    )
    operation = verify_audit_trail.OPERATION
    task = tasks.verify_audit_trail

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

    def task_arguments(self, options: dict[str, Any]) -> dict[str, Any]:
        names = ("start_date", "end_date", "full", "alert_on_tampering", "email")
        return {name: options[name] for name in names}

    def handle(self, *args, **options) -> None:
        if options["json"] or options["enqueue"]:
            super().handle(*args, **options)
            return
        # A progress bar on a terminal; none under cron, where stdout is not one.
        with verification_progress(self.stdout):
            super().handle(*args, **options)

    def render(self, result: verify_audit_trail.Result) -> None:
        verification_render(result, out=self.stdout, err=self.stderr, style=self.style)
