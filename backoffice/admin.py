"""Beat's schedules in the admin, with running one by hand as a power of its own."""

# Imported first so that beat's own admin is registered before we replace it (backoffice
# comes first in INSTALLED_APPS, so autodiscovery would reach beat's admin after ours).
import django_celery_beat.admin as beat_admin
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django_celery_beat.models import PeriodicTask

from backoffice.services import RunRequested, schedule_run_request
from tasks.inputs import InvalidInput

admin.site.unregister(PeriodicTask)

# The operators' names for the site, in their language, instead of "Django administration".
admin.site.site_header = _("Cash office")
admin.site.site_title = _("Cash office")
admin.site.index_title = _("Dashboard")


class TaskNameFilter(admin.AllValuesFieldListFilter):
    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.title = _("task name")


@admin.register(PeriodicTask)
class ScheduleAdmin(beat_admin.PeriodicTaskAdmin):
    """Beat's admin, except that its actions need permissions: changing schedules for
    enabling and disabling them, ``backoffice.run_schedule`` for running one now (a run
    sends real mail and writes real records), and a run is recorded as asked from the
    admin by that user, never as beat."""

    actions = ("enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks")

    # Beat leaves these unnamed or named in English only ("Task Name" is not marked for
    # translation in its model): named here, so that a French page reads in French.
    list_display = ("name", "enabled", "schedule_shown", "start_time", "last_run_at", "one_off")
    list_filter = ["enabled", "one_off", ("task", TaskNameFilter), "start_time", "last_run_at"]

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("backoffice.run_schedule")

    @admin.display(description=_("schedule"))
    def schedule_shown(self, schedule: PeriodicTask):
        return schedule.scheduler

    @admin.display(description=_("in words"))
    def crontab_translation(self, schedule: PeriodicTask) -> str:
        return super().crontab_translation(schedule)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "task" and formfield is not None:
            formfield.label = capfirst(gettext("task name"))
        return formfield

    @admin.action(description=_("Enable selected tasks"), permissions=["change"])
    def enable_tasks(self, request: HttpRequest, queryset: QuerySet) -> None:
        super().enable_tasks(request, queryset)

    @admin.action(description=_("Disable selected tasks"), permissions=["change"])
    def disable_tasks(self, request: HttpRequest, queryset: QuerySet) -> None:
        super().disable_tasks(request, queryset)

    @admin.action(description=_("Toggle activity of selected tasks"), permissions=["change"])
    def toggle_tasks(self, request: HttpRequest, queryset: QuerySet) -> None:
        super().toggle_tasks(request, queryset)

    @admin.action(description=_("Run selected schedules now"), permissions=["run"])
    def run_tasks(self, request: HttpRequest, queryset: QuerySet) -> None:
        queued = []
        for schedule in queryset.order_by("name"):
            try:
                queued.append(schedule_run_request(schedule=schedule, actor=request.user))
            except InvalidInput as error:
                # The reason is the operations' own sentence (English, like their commands).
                self.message_user(
                    request,
                    gettext("%(schedule)s was not queued: %(reason)s")
                    % {"schedule": schedule.name, "reason": error},
                    messages.ERROR,
                )
        if queued:
            # After the sends, which run when the request commits (ATOMIC_REQUESTS): the
            # message says "queued" only for what the broker took, and still reaches the
            # next page, since messages are stored when the response leaves.
            transaction.on_commit(lambda: self._report_sends(request, queued))

    def _report_sends(self, request: HttpRequest, requested: list[RunRequested]) -> None:
        sent = [run.schedule for run in requested if run.sent]
        unsent = [run.schedule for run in requested if not run.sent]
        if sent:
            self.message_user(
                request,
                ngettext(
                    "Queued %(count)d run (%(names)s): a worker starts it shortly; its "
                    "outcome shows in job health.",
                    "Queued %(count)d runs (%(names)s): a worker starts them shortly; their "
                    "outcomes show in job health.",
                    len(sent),
                )
                % {"count": len(sent), "names": ", ".join(sent)},
                messages.SUCCESS,
            )
        if unsent:
            self.message_user(
                request,
                gettext(
                    "Not queued, the broker did not answer: %(names)s. Nothing will run; "
                    "try again when the broker is back."
                )
                % {"names": ", ".join(unsent)},
                messages.ERROR,
            )
