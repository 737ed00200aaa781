from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class BackofficeConfig(AppConfig):
    """The admin as the operators use it: the dashboard on its index, the roles, and the
    schedules' admin. It sits above every other app because it shows all of them."""

    name = "backoffice"
    verbose_name = _("Back office")

    def ready(self) -> None:
        from backoffice.roles import roles_sync_after_migrate

        # After every migrate, and after a test database's flush (backoffice/roles.py).
        post_migrate.connect(roles_sync_after_migrate, sender=self, dispatch_uid="roles_sync")
