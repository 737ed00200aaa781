"""``manage.py watchdog``: the dead man's switch for cron, and beat's healthcheck."""

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.utils import timezone

from tasks.commands import HelpFormatter
from tasks.health.selectors import BEAT_SILENT_AFTER, beat_status, snapshot_json
from tasks.rendering.watchdog import watchdog_render
from tasks.results import result_json
from tasks.watchdog import watchdog_run

EXIT_CODES = """exit codes:
  0  healthy: every check passed
  1  something is overdue or down (see the output), or the database is unreachable
"""


class Command(BaseCommand):
    help = (
        "Check the scheduled jobs, beat's heartbeat, the outbox, the database and the broker; "
        "send each overdue job once (a catch-up run) and alert the administrators once per "
        "problem, with a notice when it clears. Workers run it every minute; run it from "
        "cron where there is no worker. --beat-only is beat's healthcheck: it only reads "
        "the heartbeat."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        return super().create_parser(
            prog_name, subcommand, formatter_class=HelpFormatter, epilog=EXIT_CODES, **kwargs
        )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument(
            "--beat-only",
            action="store_true",
            help=(
                "Only check that beat ticked in the last "
                f"{int(BEAT_SILENT_AFTER.total_seconds() // 60)} minutes; change nothing."
            ),
        )

    def handle(self, *args, **options) -> None:
        try:
            if options["beat_only"]:
                self.beat_only(as_json=options["json"])
                return
            report = watchdog_run()
        except DatabaseError as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise CommandError(
                f"The database could not be reached ({reason}); nothing was checked.",
                returncode=1,
            ) from error
        if options["json"]:
            body = snapshot_json(report.snapshot) | {
                "acted": report.acted,
                "caught_up": result_json(report.caught_up),
                "opened": result_json(report.opened),
                "resolved": result_json(report.resolved),
            }
            if not report.ok:
                body["status"] = "fail"
            self.stdout.write(json.dumps(body, indent=2, sort_keys=True))
        else:
            watchdog_render(report, out=self.stdout, style=self.style)
        if not report.ok:
            raise CommandError("Something is overdue or down; see the output.", returncode=1)

    def beat_only(self, *, as_json: bool) -> None:
        beat = beat_status(now=timezone.now())
        if beat.never_seen:
            status, line = "fail", "beat has never ticked"
        elif beat.silent:
            status = "fail"
            line = f"beat has not ticked for {int(beat.age.total_seconds() // 60)} min"
        else:
            status, line = "ok", f"beat ticked {int(beat.age.total_seconds())} s ago"
        if as_json:
            self.stdout.write(
                json.dumps(
                    {
                        "status": status,
                        "detail": line,
                        "last_tick_at": result_json(beat.last_beat_at),
                    },
                    sort_keys=True,
                )
            )
        elif status == "ok":
            self.stdout.write(self.style.SUCCESS(line))
        if status != "ok":
            raise CommandError(line, returncode=1)
