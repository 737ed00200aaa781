"""The base of the four operation commands: parse the options, check them once, then run
the operation here (the cron path) or enqueue its Celery task with --enqueue, and render
the typed result as text or, with --json, as the task would return it."""

import argparse
import json
from typing import Any

from celery import Task
from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
)
from django.db import InterfaceError, OperationalError
from django.utils import translation

from tasks.inputs import InvalidInput
from tasks.results import AlreadyRunning, ExitCode, Trigger, result_json
from tasks.runner import Operation, OperationStopped, operation_execute


class HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's option order, keeping the exit-code table's line breaks."""


class OperationCommand(BaseCommand):
    operation: Operation
    task: Task

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        parser = super().create_parser(
            prog_name,
            subcommand,
            formatter_class=HelpFormatter,
            epilog=ExitCode.help_text(),
            **kwargs,
        )

        def one_line_error(message: str):
            # A bad option gets one line on stderr and exit code 2, not the usage dump.
            if parser.called_from_command_line:
                parser.exit(ExitCode.BAD_INPUT, f"{parser.prog}: error: {message}\n")
            raise CommandError(f"Error: {message}", returncode=ExitCode.BAD_INPUT)

        parser.error = one_line_error
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        self.add_operation_arguments(parser)
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="Send the task to the Celery broker, print its id and return.",
        )
        parser.add_argument("--json", action="store_true", help="Print the run's summary as JSON.")

    def add_operation_arguments(self, parser: CommandParser) -> None:
        raise NotImplementedError

    def task_arguments(self, options: dict[str, Any]) -> dict[str, Any]:
        """The operation's plain (JSON-able) arguments, from the command's options."""
        raise NotImplementedError

    def render(self, result: Any) -> None:
        raise NotImplementedError

    def render_already_running(self, result: AlreadyRunning) -> None:
        self.stderr.write(self.style.WARNING(result.message))

    def handle(self, *args, **options) -> None:
        arguments = self.task_arguments(options)
        try:
            checked = self.operation.parse(**arguments)
        except InvalidInput as error:
            raise CommandError(str(error), returncode=ExitCode.BAD_INPUT) from error
        if options["enqueue"]:
            self.enqueue(arguments, as_json=options["json"])
            return
        try:
            result = operation_execute(self.operation, options=checked, trigger=Trigger.MANUAL)
        except (OperationalError, InterfaceError) as error:
            # One line for cron's log, not a traceback per item: the run stopped here.
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise CommandError(
                f"The database could not be reached ({reason}); {self.operation.name} stopped. "
                "What it finished is saved; the next run takes the rest.",
                returncode=ExitCode.FAILED,
            ) from error
        except OperationStopped as error:
            # Recorded and alerted by the operation already: one line, no traceback.
            raise CommandError(str(error), returncode=ExitCode.FAILED) from error
        if options["json"]:
            self.stdout.write(json.dumps(result_json(result), indent=2, sort_keys=True))
        elif isinstance(result, AlreadyRunning):
            self.render_already_running(result)
        else:
            # The output's words are English; its numbers follow them, not LANGUAGE_CODE.
            with translation.override("en"):
                self.render(result)
        exit_code = ExitCode.for_status(result.status)
        if exit_code:
            raise CommandError(result.message or result.status, returncode=exit_code)

    def enqueue(self, arguments: dict[str, Any], *, as_json: bool) -> None:
        try:
            sent = self.task.apply_async(
                kwargs={**arguments, "trigger": Trigger.MANUAL_ENQUEUE.value}, retry=False
            )
        except Exception as error:  # noqa: BLE001 - kombu raises several kinds
            raise CommandError(
                f"Could not reach the broker to enqueue {self.task.name}: {error}",
                returncode=ExitCode.BROKER_UNREACHABLE,
            ) from error
        if as_json:
            self.stdout.write(json.dumps({"task_id": sent.id, "task": self.task.name}))
        else:
            self.stdout.write(f"Enqueued {self.task.name} as task {sent.id}")
