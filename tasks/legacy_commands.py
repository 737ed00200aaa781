"""The base of the four operation commands: parse and validate, then run the Celery task's
body here (the cron path) or enqueue it with --enqueue."""

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
from django.utils import translation

from tasks.summaries import STATUS_EXIT_CODES

EXIT_CODES_HELP = """exit codes:
  0  done
  1  the run failed, or some items failed (see the output)
  2  bad input: nothing was run or written
  3  tampering found (verify_audit_trail)
  4  another run of this operation is already in progress
  5  --enqueue could not reach the broker
"""
EXIT_BAD_INPUT = 2
EXIT_ENQUEUE_FAILED = 5


class HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's option order, keeping the exit-code table's line breaks."""


class LegacyOperationCommand(BaseCommand):
    """TRANSITION: the base of commands not yet moved to tasks.commands.OperationCommand."""

    task: Task

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        parser = super().create_parser(
            prog_name, subcommand, formatter_class=HelpFormatter, epilog=EXIT_CODES_HELP, **kwargs
        )

        def one_line_error(message: str):
            # A bad option gets one line on stderr and exit code 2, not the usage dump.
            if parser.called_from_command_line:
                parser.exit(EXIT_BAD_INPUT, f"{parser.prog}: error: {message}\n")
            raise CommandError(f"Error: {message}", returncode=EXIT_BAD_INPUT)

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

    def task_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        """Validated, JSON-able task arguments; raise CommandError(returncode=2) on bad input."""
        raise NotImplementedError

    def render(self, summary: dict[str, Any]) -> None:
        raise NotImplementedError

    def bad_input(self, message: str) -> CommandError:
        return CommandError(message, returncode=EXIT_BAD_INPUT)

    def handle(self, *args, **options) -> None:
        kwargs = self.task_kwargs(options)
        if options["enqueue"]:
            kwargs["trigger"] = "manual-enqueue"
            try:
                result = self.task.apply_async(kwargs=kwargs, retry=False)
            except Exception as error:  # noqa: BLE001 - kombu raises several kinds
                raise CommandError(
                    f"Could not reach the broker to enqueue {self.task.name}: {error}",
                    returncode=EXIT_ENQUEUE_FAILED,
                ) from error
            if options["json"]:
                self.stdout.write(json.dumps({"task_id": result.id, "task": self.task.name}))
            else:
                self.stdout.write(f"Enqueued {self.task.name} as task {result.id}")
            return

        kwargs["trigger"] = "manual"
        summary = self.task(**kwargs)
        if options["json"]:
            self.stdout.write(json.dumps(summary, indent=2, sort_keys=True))
        else:
            # The output's words are English; its numbers follow them, not LANGUAGE_CODE.
            with translation.override("en"):
                self.render(summary)
        exit_code = STATUS_EXIT_CODES[summary["status"]]
        if exit_code:
            raise CommandError(summary.get("message", summary["status"]), returncode=exit_code)
