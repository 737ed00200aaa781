from django.apps import AppConfig


class AuditingConfig(AppConfig):
    name = "auditing"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from auditing import checks  # noqa: F401 - registers the deploy check
