from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BackofficeConfig(AppConfig):
    """The admin as the operators use it: the dashboard on its index, the roles, and the
    schedules' admin. It sits above every other app because it shows all of them."""

    name = "backoffice"
    verbose_name = _("Back office")
