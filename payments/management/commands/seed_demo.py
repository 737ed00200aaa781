from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from payments.demo import DEMO_PASSWORD, demo_seed

# Each seeded person's role (README, "Roles"): the groups come from backoffice's migration,
# named here because payments sits below backoffice and may not import it. The admin user
# stays a superuser.
DEMO_ROLES = {"supervisor": "Supervisors", "auditor": "Auditors"}


def demo_roles_give() -> None:
    """Put each demo person in their group, creating the auditor if missing. Run on every
    seed, so a demo database seeded before the roles gets them too; adds nothing twice."""
    user_model = get_user_model()
    with transaction.atomic():
        for username, group_name in DEMO_ROLES.items():
            user, created = user_model.objects.get_or_create(
                username=username,
                defaults={"email": f"{username}@cash-office.example", "is_staff": True},
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            user.groups.add(Group.objects.get(name=group_name))


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
        demo_roles_give()
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
            f"  admin login:  admin / {DEMO_PASSWORD} (also: supervisor, auditor, ag001..ag005)"
        )
