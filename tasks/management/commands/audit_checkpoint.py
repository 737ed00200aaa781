from typing import Any

from django.core.management.base import CommandParser

from tasks import tasks
from tasks.commands import OperationCommand
from tasks.operations import audit_checkpoint
from tasks.operations.verify_audit_trail import Result
from tasks.rendering.verify_audit_trail import verification_render


class Command(OperationCommand):
    help = (
        "Check the audit entries appended since the last signed checkpoint, every checkpoint "
        "against the chain and the append-only enforcement; when all is intact, sign the "
        "head as a new checkpoint and keep it in AUDIT_CHECKPOINT_SINKS. Beat runs it hourly."
    )
    operation = audit_checkpoint.OPERATION
    task = tasks.audit_checkpoint

    def add_operation_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--alert-on-tampering",
            action="store_true",
            help="Send an email alert to all admins if tampering is detected.",
        )

    def task_arguments(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"alert_on_tampering": options["alert_on_tampering"]}

    def render(self, result: Result) -> None:
        verification_render(result, out=self.stdout, err=self.stderr, style=self.style)
