from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Scheduled operations"

    def ready(self) -> None:
        # Registers the deploy checks, and the worker signals that start the watchdog.
        from tasks import watchdog  # noqa: F401
        from tasks.health import checks  # noqa: F401
