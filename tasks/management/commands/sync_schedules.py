from django.core.management.base import BaseCommand

from tasks.schedules import SCHEDULES, schedules_sync


class Command(BaseCommand):
    help = (
        "Create beat's schedules (the four operations and the email sweeper) if missing. "
        "Schedules an administrator edited are kept; --reset restores the defaults. "
        "Run after migrate. Exit codes: 0 done, 1 error."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Restore crontab, arguments, expiry and the enabled flag to the defaults.",
        )

    def handle(self, *args, **options) -> None:
        result = schedules_sync(reset=options["reset"])
        by_name = {spec.name: spec for spec in SCHEDULES}
        for names, verb in (
            (result.created, "created"),
            (result.reset, "reset"),
            (result.trigger_added, "kept, now passes trigger=beat"),
            (result.unchanged, "kept as is"),
        ):
            for name in names:
                spec = by_name[name]
                when = f"{spec.minute} {spec.hour} {spec.day_of_month} * *"
                self.stdout.write(f"  {name:<28} {verb:<10} (default cron: {when})")
        self.stdout.write(
            self.style.SUCCESS(
                f"Schedules: {len(result.created)} created, {len(result.reset)} reset, "
                f"{len(result.unchanged) + len(result.trigger_added)} kept."
            )
        )
