from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

# django-celery-results ships no French catalogue: the names it shows in the admin's menu
# are listed here so that `make messages` keeps them in ours.
CELERY_RESULTS_NAMES = (
    gettext_noop("Celery Results"),
    gettext_noop("task results"),
    gettext_noop("group results"),
)


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = _("Scheduled operations")

    def ready(self) -> None:
        # Registers the deploy checks, and the worker signals that start the watchdog.
        from tasks import watchdog  # noqa: F401
        from tasks.health import checks  # noqa: F401
