from typing import Any

from django.core.management.base import CommandParser

from tasks import tasks
from tasks.commands import OperationCommand
from tasks.operations import reconciliation_reminder
from tasks.rendering.reconciliation_reminder import reminders_render


class Command(OperationCommand):
    help = (
        "Remind each agent of their closed sessions still waiting for reconciliation "
        "(in-app notification, and email when the agent has an address); with "
        "--email-admins, also send the administrators a summary. An agent, and the summary, "
        "are reminded at most once per local day."
    )
    operation = reconciliation_reminder.OPERATION
    task = tasks.reconciliation_reminder

    def add_operation_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            default="1",
            metavar="DAYS",
            help=(
                "Look back over sessions closed since local midnight DAYS days ago "
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
            # A whole number goes to the task as one; anything else as typed, for the
            # operation to refuse in its own words.
            days = int(options["days"])
        except ValueError:
            days = options["days"]
        return {
            "days": days,
            "dry_run": options["dry_run"],
            "email_admins": options["email_admins"],
        }

    def render(self, result: reconciliation_reminder.Result) -> None:
        reminders_render(result, out=self.stdout, style=self.style)
