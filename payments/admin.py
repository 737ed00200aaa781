import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet, Value
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
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
    SessionStatus,
    SystemConfiguration,
)
from payments.money import DiscrepancyStanding, discrepancy_standing, format_money
from payments.services import (
    agent_save,
    commissions_mark_paid,
    configuration_update,
    session_reconcile,
)
from project.admin_mixins import ReadOnlyAdminMixin, SingletonAdminMixin, WideListMixin


class ReconcileForm(forms.Form):
    counted_cash = forms.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=0,
        required=False,
        # A French operator types 1500,50: the active language's decimal separator.
        localize=True,
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
        if self.is_bound and "counted_cash" in self.data:
            # The page shows amounts grouped ("1 500,50", with a no-break space in French):
            # a count typed the way it reads is accepted.
            self.data = self.data.copy()
            self.data["counted_cash"] = "".join(self.data["counted_cash"].split())
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


def _configuration(request: HttpRequest) -> SystemConfiguration:
    """The configuration, read once per request: the admin object outlives requests, so the
    request carries it for the columns, the filter and the ordering."""
    if not hasattr(request, "_cash_configuration"):
        request._cash_configuration = SystemConfiguration.peek()
    return request._cash_configuration


def _with_configuration(queryset: QuerySet, request: HttpRequest) -> QuerySet:
    # A list column sees only its row: the currency and tolerance ride on every row as
    # constants, so no column reads the configuration again.
    config = _configuration(request)
    return queryset.annotate(
        shown_currency=Value(config.currency_code),
        shown_tolerance=Value(config.reconciliation_tolerance),
    )


def _money_cell(amount, obj) -> str:
    return format_money(amount, currency=obj.shown_currency)


def _agent_cell(agent: Agent) -> str:
    # The code on one line and the name under it: a column as narrow as the name's words.
    return format_html('{}<br><span class="agent-name">{}</span>', agent.code, agent.full_name)


def _moment(moment) -> str:
    # Short local date and time: Django's long format pushes the amounts off a laptop screen.
    if moment is None:
        return "-"
    return formats.date_format(timezone.localtime(moment), "SHORT_DATETIME_FORMAT")


class PaymentAmountsMixin:
    """A payment's time and amounts, formatted: on its own page and in its session's."""

    def get_queryset(self, request):
        return _with_configuration(super().get_queryset(request), request)

    @admin.display(description=_("recorded"), ordering="created_at")
    def recorded(self, payment: CashTransaction) -> str:
        return _moment(payment.created_at)

    @admin.display(description=_("tax amount"), ordering="tax_amount")
    def tax_shown(self, payment: CashTransaction) -> str:
        return _money_cell(payment.tax_amount, payment)

    @admin.display(description=_("amount tendered"))
    def tendered_shown(self, payment: CashTransaction) -> str:
        return _money_cell(payment.amount_tendered, payment)

    @admin.display(description=_("change given"))
    def change_shown(self, payment: CashTransaction) -> str:
        return _money_cell(payment.change_given, payment)


class CashTransactionInline(PaymentAmountsMixin, admin.TabularInline):
    model = CashTransaction
    fields = (
        "receipt_number",
        "recorded",
        "payer_reference",
        "tax_shown",
        "tendered_shown",
        "change_shown",
        "status",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class AttentionFilter(admin.SimpleListFilter):
    """The sessions someone must act on; the dashboard links to each value."""

    title = _("needs attention")
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [
            ("to_reconcile", _("To reconcile")),
            ("past_timeout", _("Open past the timeout")),
            ("not_counted", _("Closed without a count")),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "to_reconcile":
            return queryset.filter(status=SessionStatus.CLOSED)
        if value == "past_timeout":
            hours = _configuration(request).session_timeout_hours
            cutoff = timezone.now() - dt.timedelta(hours=hours)
            return queryset.filter(status=SessionStatus.OPEN, opened_at__lte=cutoff)
        if value == "not_counted":
            return queryset.filter(status=SessionStatus.CLOSED, counted_balance__isnull=True)
        if value is not None:
            # The admin's "invalid filter" page, rather than every session as if unfiltered.
            raise IncorrectLookupParameters(value)
        return queryset


# The oldest waiting session is the first one to act on.
OLDEST_FIRST = {"to_reconcile": ("closed_at", "pk"), "past_timeout": ("opened_at", "pk")}


class SessionChangeList(ChangeList):
    def _get_default_ordering(self):
        # Here rather than in ModelAdmin.get_ordering: Django marks the sorted column from
        # this default only, and the arrow must sit on the column really sorted.
        return OLDEST_FIRST.get(self.params.get("attention")) or super()._get_default_ordering()


@admin.register(CashSession)
class CashSessionAdmin(WideListMixin, ServiceActionsAdminMixin, admin.ModelAdmin):
    # What an operator scans, at 1366 px: the opening float and the timestamps of the
    # closing are on the session's page.
    list_display = (
        "number",
        "agent_shown",
        "status_shown",
        "opened",
        "closed",
        "expected",
        "counted",
        "discrepancy_shown",
    )
    list_filter = (AttentionFilter, "status", "auto_closed")
    search_fields = ("number", "agent__code", "agent__full_name")
    date_hierarchy = "opened_at"
    list_select_related = ("agent",)
    inlines = [CashTransactionInline]
    actions = ["reconcile_sessions"]
    # The session's page: amounts formatted like the list, grouped by the session's life.
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "number",
                    "agent",
                    "status_shown",
                    "opened",
                    "opening_shown",
                    "expiry_notified_at",
                )
            },
        ),
        (
            _("Closing"),
            {
                "fields": (
                    "closed",
                    "closed_by",
                    "expected",
                    "counted",
                    "discrepancy_shown",
                    "closing_notes",
                )
            },
        ),
        (
            _("Reconciliation"),
            {"fields": ("reconciled_at", "reconciled_by", "reconciliation_notes")},
        ),
    )

    def get_fieldsets(self, request, obj=None):
        # Only the stages the session has reached: an open session has no closing to show.
        reached = {SessionStatus.OPEN: 1, SessionStatus.CLOSED: 2}.get(obj.status, 3) if obj else 3
        return self.fieldsets[:reached]

    def get_readonly_fields(self, request, obj=None):
        return flatten_fieldsets(self.fieldsets)

    class Media:
        css = {"all": ["payments/admin/lists.css"]}

    def get_queryset(self, request):
        return _with_configuration(super().get_queryset(request), request)

    @admin.display(description=_("agent"), ordering="agent__code")
    def agent_shown(self, obj: CashSession) -> str:
        return _agent_cell(obj.agent)

    def get_changelist(self, request, **kwargs):
        return SessionChangeList

    @admin.display(description=_("status"), ordering="status")
    def status_shown(self, session: CashSession) -> str:
        if session.auto_closed:
            return format_html(
                '{}<br><span class="session-auto-closed">{}</span>',
                session.get_status_display(),
                gettext("closed automatically"),
            )
        return session.get_status_display()

    @admin.display(description=_("opened"), ordering="opened_at")
    def opened(self, session: CashSession) -> str:
        return _moment(session.opened_at)

    @admin.display(description=_("opening float"))
    def opening_shown(self, session: CashSession) -> str:
        return _money_cell(session.opening_balance, session)

    @admin.display(description=_("closed"), ordering="closed_at")
    def closed(self, session: CashSession) -> str:
        return _moment(session.closed_at)

    @admin.display(description=_("expected"), ordering="expected_balance")
    def expected(self, session: CashSession) -> str:
        return _money_cell(session.expected_balance, session)

    @admin.display(description=_("counted"), ordering="counted_balance")
    def counted(self, session: CashSession) -> str:
        if session.status != SessionStatus.OPEN and session.counted_balance is None:
            return format_html('<span class="not-counted">{}</span>', gettext("not counted"))
        return _money_cell(session.counted_balance, session)

    @admin.display(description=_("discrepancy"), ordering="discrepancy")
    def discrepancy_shown(self, session: CashSession) -> str:
        if session.status == SessionStatus.OPEN:
            return "-"
        if session.discrepancy is None:
            # Never a zero: nobody knows what was in the drawer.
            return format_html('<span class="not-counted">{}</span>', gettext("not counted"))
        amount = _money_cell(session.discrepancy, session)
        # Within the tolerance plain; beyond it a shortfall red and a surplus amber.
        standing = discrepancy_standing(session.discrepancy, tolerance=session.shown_tolerance)
        if standing is DiscrepancyStanding.WITHIN:
            return amount
        title = gettext("short") if standing is DiscrepancyStanding.SHORT else gettext("over")
        return format_html(
            '<span class="discrepancy-{}" title="{}">{}</span>', standing.value, title, amount
        )

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
                    gettext("%(error)s Open the session and use Reconcile to enter it.")
                    % {"error": error},
                    messages.WARNING,
                )
        if done:
            self.message_user(
                request,
                ngettext("Reconciled %(count)s session.", "Reconciled %(count)s sessions.", done)
                % {"count": done},
                messages.SUCCESS,
            )

    def get_urls(self):
        return [
            path(
                "<path:object_id>/reconcile/",
                self.admin_site.admin_view(self.reconcile_view),
                name="payments_cashsession_reconcile",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The page itself is read-only for everyone; the way to reconcile is offered only to
        # whoever may reconcile (the model-level change permission).
        extra_context = {
            **(extra_context or {}),
            "may_reconcile": self.has_change_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def reconcile_view(self, request: HttpRequest, object_id: str):
        """One session: the count (required when nobody counted) and the notes."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        session = self.get_object(request, unquote(object_id))
        if session is None:  # a number that is no session's, or not a number at all
            raise Http404
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
                    request,
                    gettext("Session %(number)s reconciled.") % {"number": session.number},
                    messages.SUCCESS,
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
            "config": SystemConfiguration.peek(),
        }
        return TemplateResponse(request, "admin/payments/cashsession/reconcile.html", context)


@admin.register(CashTransaction)
class CashTransactionAdmin(
    PaymentAmountsMixin, WideListMixin, ServiceActionsAdminMixin, admin.ModelAdmin
):
    # Tendered and change are on the payment's page: the list is for finding a receipt.
    list_display = (
        "receipt_number",
        "recorded",
        "agent_shown",
        "session",
        "payer_reference",
        "tax_shown",
        "status",
    )
    list_filter = ("status", "agent")
    search_fields = ("receipt_number", "payer_reference", "session__number", "agent__code")
    date_hierarchy = "created_at"
    list_select_related = ("agent", "session")
    fields = (
        "receipt_number",
        "session",
        "agent",
        "payer_reference",
        "recorded",
        "recorded_by",
        "tax_shown",
        "tendered_shown",
        "change_shown",
        "status",
        "voided_at",
        "voided_by",
        "void_reason",
    )

    class Media:
        css = {"all": ["payments/admin/lists.css"]}

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    @admin.display(description=_("agent"), ordering="agent__code")
    def agent_shown(self, obj: CashTransaction) -> str:
        return _agent_cell(obj.agent)


@admin.register(Commission)
class CommissionAdmin(WideListMixin, ServiceActionsAdminMixin, admin.ModelAdmin):
    list_display = (
        "cash_transaction",
        "agent_shown",
        "earned",
        "base_shown",
        "rate_shown",
        "amount_shown",
        "status",
        "paid",
    )
    list_filter = ("status", "agent")
    search_fields = ("cash_transaction__receipt_number", "agent__code", "agent__full_name")
    date_hierarchy = "created_at"
    list_select_related = ("agent", "cash_transaction")
    actions = ["mark_paid"]
    fields = (
        "cash_transaction",
        "agent",
        "session",
        "earned",
        "base_shown",
        "rate_shown",
        "amount_shown",
        "status",
        "paid",
        "paid_by",
        "cancelled_at",
    )

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    class Media:
        css = {"all": ["payments/admin/lists.css"]}

    def get_queryset(self, request):
        return _with_configuration(super().get_queryset(request), request)

    @admin.display(description=_("agent"), ordering="agent__code")
    def agent_shown(self, obj: Commission) -> str:
        return _agent_cell(obj.agent)

    @admin.display(description=_("earned"), ordering="created_at")
    def earned(self, commission: Commission) -> str:
        return _moment(commission.created_at)

    @admin.display(description=_("payment amount"), ordering="base_amount")
    def base_shown(self, commission: Commission) -> str:
        return _money_cell(commission.base_amount, commission)

    @admin.display(description=_("rate"), ordering="rate")
    def rate_shown(self, commission: Commission) -> str:
        return f"{formats.number_format(commission.rate, decimal_pos=2, use_l10n=True)} %"

    @admin.display(description=_("commission"), ordering="amount")
    def amount_shown(self, commission: Commission) -> str:
        return _money_cell(commission.amount, commission)

    @admin.display(description=_("paid"), ordering="paid_at")
    def paid(self, commission: Commission) -> str:
        return _moment(commission.paid_at)

    @admin.action(description=_("Mark selected commissions paid"), permissions=["change"])
    def mark_paid(self, request: HttpRequest, queryset: QuerySet) -> None:
        try:
            # The whole selection: a cancelled one refuses the batch with a clear message.
            paid = commissions_mark_paid(commissions=queryset, actor=request.user)
        except PaymentsError as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        self.message_user(
            request,
            ngettext(
                "Marked %(count)s commission paid.", "Marked %(count)s commissions paid.", paid
            )
            % {"count": paid},
            messages.SUCCESS,
        )


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
