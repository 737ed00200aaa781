from email.utils import parseaddr

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from mailing.addresses import InvalidEmailAddress, email_address_validate
from mailing.models import EmailAttempt, EmailMessage, EmailStatus, OutboxSweep, SmtpConfiguration
from mailing.passwords import smtp_password_encrypt
from mailing.services import email_retry_schedule, smtp_configuration_save, smtp_test_send
from project.admin_mixins import ReadOnlyAdminMixin, SingletonAdminMixin


class EmailAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = EmailAttempt
    fields = ("attempted_at", "finished_at", "succeeded", "error", "attempt_id")
    extra = 0


class DeliveryFilter(admin.SimpleListFilter):
    """Where each unsent message stands: the states an administrator acts on."""

    title = _("delivery")
    parameter_name = "delivery"

    def lookups(self, request, model_admin):
        return [
            ("retrying", _("Failed, will be retried")),
            ("gave_up", _("Gave up (needs Retry delivery now)")),
            ("sending", _("Being sent")),
            ("undelivered", _("Not delivered yet (any)")),
        ]

    def queryset(self, request, queryset):
        failed = queryset.filter(status=EmailStatus.FAILED)
        filtered = {
            "retrying": failed.filter(next_attempt_at__isnull=False),
            "gave_up": failed.filter(next_attempt_at__isnull=True),
            "sending": queryset.filter(status=EmailStatus.SENDING),
            "undelivered": queryset.exclude(status=EmailStatus.SENT),
        }
        if self.value() is None:
            return queryset
        if self.value() not in filtered:
            # The admin's "invalid filter" page, rather than every message as if unfiltered.
            raise IncorrectLookupParameters(self.value())
        return filtered[self.value()]


# Only administrators read what the messages say (reports, alerts, the emailed copies of
# agents' notices); every role that looks after mail sees who, what subject and how
# delivery went.
EMAIL_CONTENT_FIELDS = ("body_text", "body_html", "attachments")
EMAIL_CONTENT_PERMISSION = "mailing.view_email_content"


def _local_time(moment) -> str:
    return "" if moment is None else f"{timezone.localtime(moment):%Y-%m-%d %H:%M}"


@admin.register(EmailMessage)
class EmailMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Fits 1366 px: the status first; purpose and "about" are filters and on the page.
    list_display = (
        "status",
        "created",
        "subject",
        "recipient_list",
        "attempts",
        "delivery",
        "sent",
    )
    list_display_links = ("created", "subject")
    list_filter = (DeliveryFilter, "status", "purpose")
    search_fields = ("recipients", "subject", "purpose", "about", "message_id")
    date_hierarchy = "created_at"
    inlines = [EmailAttemptInline]

    actions = ["retry_delivery"]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if request.user.has_perm(EMAIL_CONTENT_PERMISSION):
            return fields
        return [name for name in fields if name not in EMAIL_CONTENT_FIELDS]

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        # A filter in the URL (?body_text__contains=...) would read a body a letter at a
        # time, hidden fields or not: the content is filtered on only by who may read it.
        field = lookup.split(LOOKUP_SEP, 1)[0]
        if field in EMAIL_CONTENT_FIELDS and not (
            request is not None and request.user.has_perm(EMAIL_CONTENT_PERMISSION)
        ):
            return False
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, email: EmailMessage) -> str:
        return _local_time(email.created_at)

    # "sent" is also the sweep's count of messages sent ("envoyés"): here it is a moment.
    @admin.display(description=pgettext_lazy("when", "sent"), ordering="sent_at")
    def sent(self, email: EmailMessage) -> str:
        return _local_time(email.sent_at)

    @admin.display(description=_("recipients"))
    def recipient_list(self, email: EmailMessage) -> str:
        return ", ".join(email.recipients)

    @admin.display(description=_("next"))
    def delivery(self, email: EmailMessage) -> str:
        if email.status == EmailStatus.SENDING:
            return gettext("being sent since %(time)s") % {"time": _local_time(email.claimed_at)}
        if email.gave_up:
            return gettext("gave up after %(count)d attempt(s)") % {"count": email.attempts}
        if email.status == EmailStatus.FAILED:
            return gettext("retry at %(time)s") % {"time": _local_time(email.next_attempt_at)}
        return ""

    def has_change_permission(self, request, obj=None) -> bool:
        # Model-level change permission runs the retry action; a message stays read-only.
        return obj is None and request.user.has_perm("mailing.change_emailmessage")

    @admin.action(description=_("Retry delivery now"), permissions=["change"])
    def retry_delivery(self, request: HttpRequest, queryset) -> None:
        """The way back for failed messages, including those that gave up. It only marks
        them due and wakes the sweeper: no SMTP in the request, whatever the server does.
        A message sent, or being sent, is never sent again by this."""
        schedule = email_retry_schedule(
            email_ids=queryset.values_list("pk", flat=True), actor=request.user
        )
        if schedule.will_retry:
            self.message_user(
                request,
                gettext("%(count)d message(s) will be retried by the sweeper within a minute.")
                % {"count": schedule.will_retry},
                messages.SUCCESS,
            )
        skipped = []
        if schedule.sent:
            skipped.append(gettext("%(count)d already sent") % {"count": schedule.sent})
        if schedule.in_flight:
            skipped.append(gettext("%(count)d being sent now") % {"count": schedule.in_flight})
        if skipped:
            self.message_user(
                request, gettext("Left as they are: %(list)s.") % {"list": ", ".join(skipped)}
            )


@admin.register(OutboxSweep)
class OutboxSweepAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("finished_at", "trigger", "sent", "failed", "stopped_early")


class SmtpConfigurationForm(forms.ModelForm):
    # Write-only: the stored password is never rendered back into the page.
    password = forms.CharField(
        required=False,
        strip=False,
        max_length=255,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        label=_("Password"),
        help_text=_("Leave empty to keep the current password."),
    )
    clear_password = forms.BooleanField(
        required=False, label=_("Clear password"), help_text=_("Remove the stored password.")
    )

    class Meta:
        model = SmtpConfiguration
        fields = (
            "enabled",
            "host",
            "port",
            "username",
            "password",
            "clear_password",
            "use_tls",
            "use_ssl",
            "timeout",
            "from_email",
            "reply_to",
        )

    def clean_password(self) -> str:
        typed = self.cleaned_data["password"]
        # Encrypted here, so that the instance, and the database, only ever hold the token.
        return smtp_password_encrypt(typed) if typed else self.instance.password

    def clean_port(self) -> int:
        port = self.cleaned_data["port"]
        if not 1 <= port <= 65535:
            # The socket layer would wrap a larger number round to another port.
            raise forms.ValidationError("A port is a number from 1 to 65535.")
        return port

    def clean_timeout(self) -> int:
        timeout = self.cleaned_data["timeout"]
        if timeout < 1:
            # smtplib refuses 0 with a ValueError that no delivery attempt records.
            raise forms.ValidationError(gettext("The timeout must be at least 1 second."))
        return timeout

    def clean_from_email(self) -> str:
        value = self.cleaned_data["from_email"].strip()
        if value:
            _, address = parseaddr(value)
            try:
                email_address_validate(address)
            except InvalidEmailAddress as error:
                raise forms.ValidationError(
                    gettext("Not a valid from address: %(error)s") % {"error": error}
                ) from error
            if any(char in value for char in "\r\n"):
                raise forms.ValidationError(
                    gettext("The from address cannot contain a line break.")
                )
        return value

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_password"):
            cleaned["password"] = ""
        if cleaned.get("use_tls") and cleaned.get("use_ssl"):
            raise forms.ValidationError(gettext("Choose STARTTLS or SSL/TLS, not both."))
        if cleaned.get("enabled") and not cleaned.get("host"):
            raise forms.ValidationError(gettext("An enabled configuration needs a host."))
        return cleaned


class SendTestEmailForm(forms.Form):
    recipient = forms.EmailField(label=_("Recipient"))


@admin.register(SmtpConfiguration)
class SmtpConfigurationAdmin(SingletonAdminMixin, admin.ModelAdmin):
    form = SmtpConfigurationForm
    list_display = ("host", "port", "enabled", "updated_at")
    readonly_fields = ("updated_at",)

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if not self.has_change_permission(request, obj):
            # A view-only page renders fields from the model: never the password.
            return [name for name in fields if name not in {"password", "clear_password"}]
        return fields

    def save_model(self, request, obj, form, change) -> None:
        changed = {name for name in form.changed_data if name != "clear_password"}
        if form.cleaned_data.get("password") == form.initial.get("password"):
            changed.discard("password")  # left empty: the stored one was kept
        smtp_configuration_save(config=obj, changed_fields=changed, actor=request.user)

    def get_urls(self):
        return [
            path(
                "send-test-email/",
                # Outside the request's transaction: the delivery commits its claim before
                # talking SMTP, and its answer whatever the page does next.
                transaction.non_atomic_requests(
                    self.admin_site.admin_view(self.send_test_email_view)
                ),
                name="mailing_smtpconfiguration_send_test",
            ),
            *super().get_urls(),
        ]

    def send_test_email_view(self, request: HttpRequest):
        if not self.has_change_permission(request):
            raise PermissionDenied
        config = SmtpConfiguration.load()
        form = SendTestEmailForm(request.POST or None, initial={"recipient": request.user.email})
        if request.method == "POST" and form.is_valid():
            email = smtp_test_send(
                recipient=form.cleaned_data["recipient"], requested_by=request.user.get_username()
            )
            if email.status == EmailStatus.SENT:
                self.message_user(
                    request,
                    gettext("Test email sent to %(address)s: the server accepted it.")
                    % {"address": email.recipients[0]},
                    messages.SUCCESS,
                )
            else:
                self.message_user(
                    request,
                    gettext("Test email failed: %(error)s") % {"error": email.last_error},
                    messages.ERROR,
                )
            return HttpResponseRedirect(
                reverse("admin:mailing_smtpconfiguration_change", args=[config.pk])
            )
        server = (
            f"{config.host}:{config.port}"
            if config.in_use
            else gettext("the environment's settings")
        )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Send test email"),
            "form": form,
            "server": server,
            "opts": self.model._meta,
        }
        return TemplateResponse(
            request, "admin/mailing/smtpconfiguration/send_test_email.html", context
        )
