from typing import Any

from django.core.management.base import CommandError, CommandParser

from tasks import tasks
from tasks.commands import OperationCommand
from tasks.inputs import InvalidInput
from tasks.operations import reconciliation_reminder
from tasks.rendering.reconciliation_reminder import reminders_render
from tasks.results import ExitCode


class Command(OperationCommand):
    help = (
        "Remind each agent of their closed sessions still waiting for reconciliation "
        "(in-app notification, and email when the agent has an address); with "
        "--email-admins, also send the administrators a summary. Every unreconciled "
        "session is reminded once per local day until it is reconciled: those closed in "
        "the last DAYS days as new, older ones as the backlog. A session closed after "
        "today's run is reminded by the next run; the summary goes out once a day."
    )
    operation = reconciliation_reminder.OPERATION
    task = tasks.reconciliation_reminder

    def add_operation_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            default="1",
            metavar="DAYS",
            help=(
                "Sessions closed since local midnight DAYS days ago are new; older ones "
                "still unreconciled are reminded too, as the backlog "
                f"(1 to {reconciliation_reminder.MAX_DAYS}; default 1: yesterday and today)."
            ),
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Show what would be sent; send nothing, write nothing.",
        )
        parser.add_argument(
            "--email-admins",
            action="store_true",
            help="Also email the administrators (active staff with an address) a summary.",
        )

    def task_arguments(self, options: dict[str, Any]) -> dict[str, Any]:
        try:
            # The task takes a JSON integer; the command line's text becomes one here.
            days = reconciliation_reminder.days_from_command_line(options["days"])
        except InvalidInput as error:
            raise CommandError(str(error), returncode=ExitCode.BAD_INPUT) from error
        return {
            "days": days,
            "dry_run": options["dry_run"],
            "email_admins": options["email_admins"],
        }

    def render(self, result: reconciliation_reminder.Result) -> None:
        reminders_render(result, out=self.stdout, style=self.style)
