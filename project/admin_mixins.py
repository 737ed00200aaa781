"""Admin behaviours shared by the apps: records nobody edits, and singletons."""

from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import reverse


class ReadOnlyAdminMixin:
    """For records that only services write (cash, audit, reports, logs): view only."""

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class SingletonAdminMixin:
    """For a one-row model with a ``load()`` classmethod: the list opens the one row."""

    def changelist_view(self, request, extra_context=None):
        # Refused before load(), which would create the row for someone who may not see it.
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        instance = self.model.load()
        opts = self.model._meta
        return HttpResponseRedirect(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[instance.pk])
        )

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class WideListMixin:
    """For lists whose columns need a laptop screen's full width (1366 px): Django's
    navigation sidebar (300 px) gives way on the list; the breadcrumbs lead back."""

    def changelist_view(self, request, extra_context=None):
        extra_context = {"is_nav_sidebar_enabled": False, **(extra_context or {})}
        return super().changelist_view(request, extra_context)
