from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from payments.errors import PaymentsError
from payments.models import (
    Agent,
    CashSession,
    CashTransaction,
    Commission,
    DailyCounter,
    Notification,
    ReconciliationReminder,
    SystemConfiguration,
)
from payments.services import (
    agent_save,
    commissions_mark_paid,
    configuration_update,
    session_reconcile,
)
from project.admin_mixins import ReadOnlyAdminMixin, SingletonAdminMixin


class ReconcileForm(forms.Form):
    counted_cash = forms.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=0,
        required=False,
        label=_("Counted cash"),
        help_text=_("Required when the session was closed without a count."),
    )
    notes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        label=_("Notes"),
        help_text=_("Required when the discrepancy exceeds the tolerance."),
    )

    def __init__(self, *args, session: CashSession, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if session.counted_balance is not None:
            del self.fields["counted_cash"]  # already counted at closing
        else:
            self.fields["counted_cash"].required = True


class ServiceActionsAdminMixin(ReadOnlyAdminMixin):
    """Money and session state change only through services, which write the audit trail.
    Model-level change permission runs the service-backed actions; a single row is only
    ever shown read-only."""

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and request.user.has_perm(
            f"{self.opts.app_label}.change_{self.opts.model_name}"
        )


@admin.register(SystemConfiguration)
class SystemConfigurationAdmin(SingletonAdminMixin, admin.ModelAdmin):
    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if CashSession.objects.exists():
            # Amounts are stored without a currency: relabelling them would misstate them.
            readonly.append("currency_code")
        return readonly

    list_display = (
        "session_timeout_hours",
        "default_commission_rate",
        "reconciliation_tolerance",
        "currency_code",
        "updated_at",
    )
    readonly_fields = ("updated_at",)

    def save_model(self, request, obj, form, change) -> None:
        configuration_update(
            config=obj,
            changes={name: form.cleaned_data[name] for name in form.changed_data},
            actor=request.user,
        )


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deactivate instead: a delete would leave no audit entry

    list_display = (
        "code",
        "full_name",
        "phone",
        "email",
        "location",
        "commission_rate",
        "is_active",
    )
    list_filter = ("is_active", "location")
    search_fields = ("code", "full_name", "phone", "email", "user__username")
    autocomplete_fields = ("user",)

    def save_model(self, request, obj, form, change) -> None:
        agent_save(
            agent=obj,
            changes={name: form.cleaned_data[name] for name in form.changed_data},
            created=not change,
            actor=request.user,
        )


class CashTransactionInline(admin.TabularInline):
    model = CashTransaction
    fields = (
        "receipt_number",
        "created_at",
        "payer_reference",
        "tax_amount",
        "amount_tendered",
        "change_given",
        "status",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CashSession)
class CashSessionAdmin(ServiceActionsAdminMixin, admin.ModelAdmin):
    list_display = (
        "number",
        "agent",
        "status",
        "opened_at",
        "closed_at",
        "opening_balance",
        "expected_balance",
        "counted",
        "discrepancy_display",
        "auto_closed",
    )
    list_filter = ("status", "auto_closed", "opened_at", "closed_at", "agent")
    search_fields = ("number", "agent__code", "agent__full_name")
    date_hierarchy = "opened_at"
    list_select_related = ("agent",)
    inlines = [CashTransactionInline]
    actions = ["reconcile_sessions"]

    @admin.display(description=_("counted"))
    def counted(self, session: CashSession) -> str:
        return "not counted" if session.counted_balance is None else str(session.counted_balance)

    @admin.display(description=_("discrepancy"))
    def discrepancy_display(self, session: CashSession) -> str:
        if session.status == "open":
            return "-"
        return "not counted" if session.discrepancy is None else str(session.discrepancy)

    @admin.action(description=_("Reconcile selected counted sessions"), permissions=["change"])
    def reconcile_sessions(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = 0
        for session in queryset:
            try:
                session_reconcile(session=session, actor=request.user)
                done += 1
            except PaymentsError as error:
                self.message_user(
                    request,
                    f"{error} Open the session and use Reconcile to enter it.",
                    messages.WARNING,
                )
        if done:
            self.message_user(request, f"Reconciled {done} session(s).", messages.SUCCESS)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/reconcile/",
                self.admin_site.admin_view(self.reconcile_view),
                name="payments_cashsession_reconcile",
            ),
            *super().get_urls(),
        ]

    def reconcile_view(self, request: HttpRequest, object_id: str):
        """One session: the count (required when nobody counted) and the notes."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        session = get_object_or_404(CashSession.objects.select_related("agent"), pk=object_id)
        form = ReconcileForm(request.POST or None, session=session)
        if request.method == "POST" and form.is_valid():
            try:
                session_reconcile(
                    session=session,
                    actor=request.user,
                    counted_cash=form.cleaned_data.get("counted_cash"),
                    notes=form.cleaned_data["notes"],
                )
            except PaymentsError as error:
                form.add_error(None, str(error))
            else:
                self.message_user(
                    request, f"Session {session.number} reconciled.", messages.SUCCESS
                )
                return HttpResponseRedirect(
                    reverse("admin:payments_cashsession_change", args=[session.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Reconcile session %(number)s") % {"number": session.number},
            "session": session,
            "form": form,
            "opts": self.model._meta,
            "config": SystemConfiguration.load(),
        }
        return TemplateResponse(request, "admin/payments/cashsession/reconcile.html", context)


@admin.register(CashTransaction)
class CashTransactionAdmin(ServiceActionsAdminMixin, admin.ModelAdmin):
    list_display = (
        "receipt_number",
        "created_at",
        "agent",
        "session",
        "payer_reference",
        "tax_amount",
        "status",
    )
    list_filter = ("status", "created_at", "agent")
    search_fields = ("receipt_number", "payer_reference", "session__number", "agent__code")
    date_hierarchy = "created_at"
    list_select_related = ("agent", "session")


@admin.register(Commission)
class CommissionAdmin(ServiceActionsAdminMixin, admin.ModelAdmin):
    list_display = (
        "cash_transaction",
        "agent",
        "created_at",
        "base_amount",
        "rate",
        "amount",
        "status",
        "paid_at",
    )
    list_filter = ("status", "created_at", "agent")
    search_fields = ("cash_transaction__receipt_number", "agent__code", "agent__full_name")
    date_hierarchy = "created_at"
    list_select_related = ("agent", "cash_transaction")
    actions = ["mark_paid"]

    @admin.action(description=_("Mark selected commissions paid"), permissions=["change"])
    def mark_paid(self, request: HttpRequest, queryset: QuerySet) -> None:
        try:
            # The whole selection: a cancelled one refuses the batch with a clear message.
            paid = commissions_mark_paid(commissions=queryset, actor=request.user)
        except PaymentsError as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        self.message_user(request, f"Marked {paid} commission(s) paid.", messages.SUCCESS)


# Reminders and notifications are written by operations only; the admin just shows them.


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "agent", "kind", "title", "session", "read_at")
    list_filter = ("kind", "created_at")
    search_fields = ("agent__code", "agent__full_name", "title", "session__number")
    date_hierarchy = "created_at"
    list_select_related = ("agent", "session")


@admin.register(ReconciliationReminder)
class ReconciliationReminderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("day", "kind", "agent", "session_count", "created_at")
    list_filter = ("kind", "day")
    search_fields = ("agent__code", "agent__full_name")
    date_hierarchy = "day"
    list_select_related = ("agent",)

    @admin.display(description=_("cash sessions"))
    def session_count(self, reminder: ReconciliationReminder) -> int:
        return len(reminder.session_numbers)


@admin.register(DailyCounter)
class DailyCounterAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The counters behind session numbers; shown for support, never edited."""

    list_display = ("scope", "day", "value")
    list_filter = ("scope",)
    date_hierarchy = "day"
