from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditingConfig(AppConfig):
    name = "auditing"
    verbose_name = _("Audit trail")

    def ready(self) -> None:
        from auditing import checks  # noqa: F401 - registers the deploy check
