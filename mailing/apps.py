from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MailingConfig(AppConfig):
    name = "mailing"
    verbose_name = _("Mailing")

    def ready(self) -> None:
        from mailing import checks  # noqa: F401 - registers the system checks
