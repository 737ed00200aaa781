from email.utils import parseaddr

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from mailing.addresses import InvalidEmailAddress, email_address_validate
from mailing.models import EmailAttempt, EmailMessage, EmailStatus, SmtpConfiguration
from mailing.services import email_retry_now, smtp_configuration_save, smtp_test_send
from project.admin_mixins import ReadOnlyAdminMixin, SingletonAdminMixin


class EmailAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = EmailAttempt
    fields = ("attempted_at", "succeeded", "error")
    extra = 0


@admin.register(EmailMessage)
class EmailMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "purpose",
        "about",
        "subject",
        "recipient_list",
        "status",
        "attempts",
        "sent_at",
    )
    list_filter = ("status", "purpose")
    search_fields = ("recipients", "subject", "purpose", "about")
    date_hierarchy = "created_at"
    inlines = [EmailAttemptInline]

    actions = ["retry_delivery"]

    @admin.display(description="recipients")
    def recipient_list(self, email: EmailMessage) -> str:
        return ", ".join(email.recipients)

    def has_change_permission(self, request, obj=None) -> bool:
        # Model-level change permission runs the retry action; a message stays read-only.
        return obj is None and request.user.has_perm("mailing.change_emailmessage")

    @admin.action(description="Retry delivery now", permissions=["change"])
    def retry_delivery(self, request: HttpRequest, queryset) -> None:
        """The way back for a message whose automatic retries ran out (or never ran, under
        cron without a worker). A message already sent is never sent again."""
        sent, failed = email_retry_now(email_ids=queryset.values_list("pk", flat=True))
        if sent:
            self.message_user(request, f"{sent} message(s) sent: the server accepted them.")
        if failed:
            self.message_user(
                request, f"{failed} message(s) failed again; see their last error.", messages.ERROR
            )
        if not sent and not failed:
            self.message_user(request, "Nothing to retry: the selected messages were sent.")


class SmtpConfigurationForm(forms.ModelForm):
    # Write-only: the stored password is never rendered back into the page.
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the current password.",
    )
    clear_password = forms.BooleanField(required=False, help_text="Remove the stored password.")

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
        if self.cleaned_data.get("clear_password"):
            return ""
        return self.cleaned_data["password"] or self.instance.password

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
            raise forms.ValidationError("The timeout must be at least 1 second.")
        return timeout

    def clean_from_email(self) -> str:
        value = self.cleaned_data["from_email"].strip()
        if value:
            _, address = parseaddr(value)
            try:
                email_address_validate(address)
            except InvalidEmailAddress as error:
                raise forms.ValidationError(f"Not a valid from address: {error}") from error
            if any(char in value for char in "\r\n"):
                raise forms.ValidationError("The from address cannot contain a line break.")
        return value

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_password"):
            cleaned["password"] = ""
        if cleaned.get("use_tls") and cleaned.get("use_ssl"):
            raise forms.ValidationError("Choose STARTTLS or SSL/TLS, not both.")
        if cleaned.get("enabled") and not cleaned.get("host"):
            raise forms.ValidationError("An enabled configuration needs a host.")
        return cleaned


class SendTestEmailForm(forms.Form):
    recipient = forms.EmailField()


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
                self.admin_site.admin_view(self.send_test_email_view),
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
                    f"Test email sent to {email.recipients[0]}: the server accepted it.",
                    messages.SUCCESS,
                )
            else:
                self.message_user(request, f"Test email failed: {email.last_error}", messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:mailing_smtpconfiguration_change", args=[config.pk])
            )
        server = f"{config.host}:{config.port}" if config.in_use else "the environment's settings"
        context = {
            **self.admin_site.each_context(request),
            "title": "Send test email",
            "form": form,
            "server": server,
            "opts": self.model._meta,
        }
        return TemplateResponse(
            request, "admin/mailing/smtpconfiguration/send_test_email.html", context
        )
