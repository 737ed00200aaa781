from typing import Any

from django.core.management.base import CommandParser

from tasks import tasks
from tasks.commands import OperationCommand
from tasks.operations import close_expired_sessions
from tasks.rendering.close_expired_sessions import expired_sessions_render


class Command(OperationCommand):
    help = (
        "Close cash sessions left open past the configured timeout (default 12 h). "
        "Sessions with payments are skipped, and their agent told once, unless --force."
    )
    operation = close_expired_sessions.OPERATION
    task = tasks.close_expired_sessions

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

    def task_arguments(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"dry_run": options["dry_run"], "force": options["force"]}

    def render(self, result: close_expired_sessions.Result) -> None:
        expired_sessions_render(result, out=self.stdout, style=self.style)
