from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = _("Scheduled operations")

    def ready(self) -> None:
        # Registers the deploy checks, and the worker signals that start the watchdog.
        from tasks import watchdog  # noqa: F401
        from tasks.health import checks  # noqa: F401
