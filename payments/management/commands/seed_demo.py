from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from payments.demo import DEMO_PASSWORD, demo_seed


class Command(BaseCommand):
    help = (
        "Seed the demo database with a month of agents, sessions, payments and commissions. "
        "Running it again changes nothing."
    )

    def handle(self, *args, **options) -> None:
        if settings.IS_PRODUCTION:
            # It creates admin/demo and appends fake history to the append-only audit chain.
            raise CommandError("seed_demo is for demo databases; it refuses DJANGO_ENV=production.")
        summary = demo_seed(now=timezone.now())
        if summary.created:
            self.stdout.write(self.style.SUCCESS("Demo data created:"))
        else:
            self.stdout.write(self.style.WARNING("Demo data already present, nothing added:"))
        self.stdout.write(f"  agents:       {summary.agents}")
        sessions = ", ".join(f"{n} {s}" for s, n in summary.sessions_by_status.items())
        self.stdout.write(f"  sessions:     {sessions}")
        self.stdout.write(f"  transactions: {summary.transactions}")
        commissions = ", ".join(f"{n} {s}" for s, n in summary.commissions_by_status.items())
        self.stdout.write(f"  commissions:  {commissions}")
        self.stdout.write(
            f"  admin login:  admin / {DEMO_PASSWORD} (also: supervisor, ag001..ag005)"
        )
