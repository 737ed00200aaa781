from typing import Any

from django.core.management.base import CommandParser

from tasks.commands import OperationCommand
from tasks.operations import generate_commission_report
from tasks.rendering.generate_commission_report import commission_report_render
from tasks.results import AlreadyRunning
from tasks.tasks import generate_commission_report as generate_commission_report_task


class Command(OperationCommand):
    help = (
        "Report the commissions of one complete month (default: the previous month, in "
        "TIME_ZONE): overall, by payment status and by agent. The report is stored once per "
        "month and emailed (HTML and text, with a CSV of the agents) to --email or to every "
        "active staff user with an email address. A month already reported keeps its stored "
        "figures, and each recipient is sent it once: a later run sends it only to those that "
        "never had it, unless --resend."
    )
    operation = generate_commission_report.OPERATION
    task = generate_commission_report_task

    def add_operation_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--month",
            type=int,
            metavar="MONTH",
            help="Month to report on, 1-12. Defaults to the previous month.",
        )
        parser.add_argument(
            "--year",
            type=int,
            metavar="YEAR",
            help="Year of --month (2000 to this year; needs --month). Defaults to this year.",
        )
        parser.add_argument(
            "--email",
            metavar="EMAIL",
            help="Send the report to this address only, instead of all active staff users.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Build and print the report; store nothing and send nothing.",
        )
        parser.add_argument(
            "--resend",
            action="store_true",
            help=(
                "Send the month's report again to the recipients that already had it "
                "(without it, each recipient is sent a month's report once)."
            ),
        )

    def task_arguments(self, options: dict[str, Any]) -> dict[str, Any]:
        return {name: options[name] for name in generate_commission_report.ARGUMENTS}

    def enqueue(self, arguments: dict[str, Any], *, as_json: bool) -> None:
        # The month is the one resolved now, not when a worker picks the task up.
        resolved = self.operation.parse(**arguments)
        super().enqueue(resolved.task_arguments(), as_json=as_json)

    def render_already_running(self, result: AlreadyRunning) -> None:
        """Nothing: the exit's one-line message says it."""

    def render(self, result: generate_commission_report.CommissionReportResult) -> None:
        commission_report_render(result, out=self.stdout, style=self.style)
