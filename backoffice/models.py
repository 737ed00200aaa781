"""The back office stores nothing of its own; this module only gives its permissions a home."""

from django.utils.translation import gettext_lazy as _
from django_celery_beat.models import PeriodicTask


class Schedule(PeriodicTask):
    """Beat's schedules, for the permission to run one by hand. Changing a schedule and
    running it now are different powers: a run sends real mail and writes real records."""

    class Meta:
        proxy = True
        verbose_name = _("schedule")
        verbose_name_plural = _("schedules")
        permissions = [("run_schedule", _("Can run a schedule by hand"))]
