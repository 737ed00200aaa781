from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tasks.models import JobHealth

# The demo's runs, in this order: the verification last, so that the checkpoint it signs
# covers the entries the reminders appended.
DEMO_OPERATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("close_expired_sessions", ()),
    ("generate_commission_report", ()),
    ("reconciliation_reminder", ("--email-admins",)),
    ("verify_audit_trail", ("--alert-on-tampering",)),
)


class Command(BaseCommand):
    help = (
        "`make demo`: run each of the four operations once on the demo database, as cron "
        "would. An operation that already ran there is left alone, so that a later "
        "`make demo` adds nothing: the operations do each new day's or month's work when "
        "run (daily reminders, last month's report), which a demo run again days later must "
        "not invent. Run an operation by its own command to see it again. Exit codes: those "
        "of the operation that failed, 0 otherwise."
    )

    def handle(self, *args, **options) -> None:
        if settings.IS_PRODUCTION:
            raise CommandError("demo_operations is for demo databases; it refuses production.")
        # A finished run of any trigger counts: the runner records each one (a dry run, a
        # preview, records nothing).
        finished = dict(
            JobHealth.objects.filter(
                name__in=[name for name, _ in DEMO_OPERATIONS], last_finished_at__isnull=False
            ).values_list("name", "last_finished_at")
        )
        for name, arguments in DEMO_OPERATIONS:
            if name in finished:
                when = timezone.localtime(finished[name])
                self.stdout.write(
                    f"{name}: already ran on the demo data ({when:%Y-%m-%d %H:%M}), not run "
                    f"again; run it yourself: .venv/bin/python manage.py {name}"
                )
                continue
            self.stdout.write(self.style.MIGRATE_HEADING(f"manage.py {name} {' '.join(arguments)}"))
            call_command(name, *arguments, stdout=self.stdout, stderr=self.stderr)
