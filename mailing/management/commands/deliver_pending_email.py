"""The outbox's sweeper for cron: deliver the mail that is due, here and now."""

import argparse
import json

from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from mailing.delivery import Delivery, DeliveryOutcome, SweepResult, outbox_sweep

EXIT_CODES = (
    "exit codes:\n"
    "  0  done: every message tried was accepted by the mail server (or none was due)\n"
    "  1  some messages failed (see the output), or the database could not be reached\n"
    "  2  bad input: nothing was run\n"
)


def _local(moment) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}"


class Command(BaseCommand):
    help = (
        "Deliver the outbox's due mail: queued messages no worker took within a minute, "
        "failed ones whose retry time has come, and messages whose delivery died (after "
        "EMAIL_SENDING_GRACE_SECONDS, with the same Message-ID). For cron, every minute: "
        "running it beside workers or another run never sends a message twice.\n\n" + EXIT_CODES
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        return parser

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help="Deliver at most this many messages (default: EMAIL_SWEEP_LIMIT, 200).",
        )
        parser.add_argument(
            "--without-workers",
            action="store_true",
            help=(
                "No Celery worker runs on this install (cron only, or the demo): deliver "
                "fresh queued mail at once instead of leaving it a minute for a worker."
            ),
        )
        parser.add_argument("--json", action="store_true", help="Print the run as JSON.")

    def handle(self, *args, **options) -> None:
        limit = options["limit"]
        if limit is not None and limit < 1:
            raise CommandError(f"--limit must be at least 1 (got {limit}).", returncode=2)
        try:
            result = outbox_sweep(
                limit=limit, trigger="command", workers_run=not options["without_workers"]
            )
        except (OperationalError, InterfaceError) as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise CommandError(
                f"The database could not be reached ({reason}); no mail was delivered. "
                "The next run delivers it.",
                returncode=1,
            ) from error
        if options["json"]:
            self.stdout.write(json.dumps(self._as_json(result), indent=2, sort_keys=True))
        else:
            self._render(result)
        if result.failed:
            raise CommandError(f"{result.failed} message(s) failed; see the output.", returncode=1)

    def _render(self, result: SweepResult) -> None:
        for delivery in result.deliveries:
            if delivery.outcome != DeliveryOutcome.SENT:
                self.stdout.write(self.style.ERROR(self._failure_line(delivery)))
        gave_up = result.count(DeliveryOutcome.GAVE_UP)
        retrying = result.count(DeliveryOutcome.FAILED)
        parts = [f"{result.sent} sent (accepted by the mail server)"]
        if retrying:
            parts.append(f"{retrying} failed, will be retried")
        if gave_up:
            parts.append(f"{gave_up} gave up (admin: Retry delivery now)")
        line = f"Outbox: {', '.join(parts)}; {result.left} due message(s) left."
        style = self.style.ERROR if result.failed else self.style.SUCCESS
        self.stdout.write(style(line))
        if result.stopped_early:
            self.stdout.write(
                self.style.WARNING(
                    f"Stopped early: {result.stopped_early}. The next run takes the rest."
                )
            )

    def _failure_line(self, delivery: Delivery) -> str:
        line = f"  email #{delivery.email_id}: attempt {delivery.attempt} failed: {delivery.error}"
        if delivery.outcome == DeliveryOutcome.GAVE_UP:
            return line + "; gave up"
        return line + f"; next attempt at {_local(delivery.next_attempt_at)}"

    def _as_json(self, result: SweepResult) -> dict:
        return {
            "sent": result.sent,
            "failed": result.count(DeliveryOutcome.FAILED),
            "gave_up": result.count(DeliveryOutcome.GAVE_UP),
            "left": result.left,
            "stopped_early": result.stopped_early,
            "deliveries": [
                {
                    "email_id": delivery.email_id,
                    "outcome": delivery.outcome.value,
                    "attempt": delivery.attempt,
                    "error": delivery.error,
                    "next_attempt_at": (
                        timezone.localtime(delivery.next_attempt_at).isoformat()
                        if delivery.next_attempt_at
                        else None
                    ),
                }
                for delivery in result.deliveries
            ],
        }
