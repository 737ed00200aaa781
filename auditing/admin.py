"""The audit trail's admin pages: read-only for everyone, superusers included.

The one write is a superuser's acknowledgement of a checkpoint finding, which goes
through ``checkpoint_finding_acknowledge`` and is itself an audit entry.
"""

import csv
import datetime as dt
import json
from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.http import Http404, HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from auditing.exports import findings_csv_rows
from auditing.models import AuditEntry, Checkpoint, VerificationFinding, VerificationRun
from auditing.selectors import CHECKPOINT_ACKNOWLEDGED, checkpoint_acknowledged_references
from auditing.services import (
    REASON_MAX_LENGTH,
    InvalidAcknowledgement,
    checkpoint_finding_acknowledge,
)
from project.admin_mixins import ReadOnlyAdminMixin, WideListMixin

# The run page shows this many findings; the findings list and the CSV hold them all.
FINDINGS_SHOWN = 200


def _entry_link(sequence: int | None, *, exists: bool) -> str:
    if sequence is None:
        return gettext("no entry")
    if not exists:
        return format_html("#{} ({})", sequence, gettext("no entry"))
    url = reverse("admin:auditing_auditentry_change", args=[sequence])
    return format_html('<a href="{}">#{}</a>', url, sequence)


def _object_link(obj, text: str | None = None) -> str:
    if obj is None:
        return "-"
    opts = obj._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text or str(obj))


def _local(moment) -> str:
    """A time on the local clock; one no clock can show (a stored 'infinity') as it is."""
    if moment is None:
        return ""
    try:
        return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S}"
    except (OverflowError, ValueError):
        return gettext("%(moment)s (out of range)") % {"moment": moment.isoformat()}


# Acknowledgements -------------------------------------------------------------------------


@dataclass(frozen=True)
class Acknowledgement:
    """Who acknowledged a checkpoint finding, when and why (from its audit entry)."""

    sequence: int
    actor_name: str
    timestamp: dt.datetime
    reason: str


def acknowledgements_of(references) -> dict[str, Acknowledgement]:
    """The acknowledgement of each of these references that verification honours (its
    HMAC holds): the first one, when a reference was acknowledged twice."""
    wanted = set(references) & checkpoint_acknowledged_references() if references else set()
    if not wanted:
        return {}
    rows = (
        AuditEntry.objects.filter(action=CHECKPOINT_ACKNOWLEDGED)
        .annotate(reference=KT("data__reference"), reason=KT("data__reason"))
        .filter(reference__in=wanted)
        .order_by("-sequence")
        .values("sequence", "actor_name", "timestamp", "reference", "reason")
    )
    return {
        row["reference"]: Acknowledgement(
            sequence=row["sequence"],
            actor_name=row["actor_name"],
            timestamp=row["timestamp"],
            reason=row["reason"] or "",
        )
        for row in rows
    }


def acknowledgement_text(ack: Acknowledgement) -> str:
    return gettext("acknowledged by %(actor)s on %(date)s: %(reason)s") % {
        "actor": ack.actor_name,
        "date": _local(ack.timestamp),
        "reason": ack.reason,
    }


def may_acknowledge(request: HttpRequest) -> bool:
    # Superusers only until the roles (issue 15) give a permission of its own.
    return request.user.is_active and request.user.is_superuser


# Audit entries ----------------------------------------------------------------------------


def _flagged_sequences():
    # The findings table is small (rows exist only where a run found something), so the
    # planner reads it once and probes the audit table by its primary key.
    return VerificationFinding.objects.filter(sequence__isnull=False).values("sequence")


class FlaggedFilter(admin.SimpleListFilter):
    """The entries a verification run reported, to find the tampered ones among millions."""

    title = _("flagged by a verification")
    parameter_name = "flagged"

    def lookups(self, request, model_admin):
        return [("yes", _("Flagged")), ("no", _("Not flagged"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(sequence__in=_flagged_sequences())
        if self.value() == "no":
            return queryset.exclude(sequence__in=_flagged_sequences())
        if self.value() is not None:
            raise IncorrectLookupParameters(self.value())
        return queryset


@admin.register(AuditEntry)
class AuditEntryAdmin(WideListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only for everyone, superusers included: the chain is append-only."""

    list_display = (
        "sequence",
        "flag",
        "stamped",
        "action",
        "actor_name",
        "subject",
        "short_hash",
    )
    list_filter = (FlaggedFilter, "action", "actor_name", "timestamp")
    search_fields = ("sequence__exact", "action", "actor_name", "subject_id", "current_hash")
    # No date_hierarchy: it reads every timestamp back, and a stored 'infinity' (one of the
    # malformed rows verification reports) would take the whole list down with it.
    ordering = ("-sequence",)
    list_per_page = 100
    show_full_result_count = False
    # ``data`` is shown from its stored text: a malformed value (nested thousands of levels
    # deep) cannot be decoded, and must not take the page down with it.
    fields = (
        "sequence",
        "flag",
        "stamped",
        "action",
        "actor",
        "actor_name",
        "subject_type",
        "subject_id",
        "data_shown",
        "previous_hash",
        "current_hash",
        "key_id",
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .defer("data")
            .annotate(flagged=Exists(_flagged_sequences().filter(sequence=OuterRef("sequence"))))
        )

    # Not sortable: sorting millions of entries by a subquery would be a full scan; the
    # "flagged" filter lists them instead.
    @admin.display(description=_("verification"), empty_value="")
    def flag(self, entry: AuditEntry) -> str:
        if not entry.flagged:
            return ""
        url = reverse("admin:auditing_verificationfinding_changelist") + f"?q={entry.sequence}"
        return format_html(
            '<a class="audit-flagged" href="{}" title="{}" style="{}">⚠ {}</a>',
            url,
            gettext("A verification run reported this entry: see its findings."),
            "color: var(--error-fg, #ba2121); font-weight: bold; white-space: nowrap;",
            gettext("flagged"),
        )

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    @admin.display(description=_("timestamp"), ordering="timestamp")
    def stamped(self, entry: AuditEntry) -> str:
        return _local(entry.timestamp)

    @admin.display(description=_("subject"))
    def subject(self, entry: AuditEntry) -> str:
        return f"{entry.subject_type} {entry.subject_id}".strip()

    @admin.display(description=_("hash"))
    def short_hash(self, entry: AuditEntry) -> str:
        return entry.current_hash[:12]

    @admin.display(description=_("data"))
    def data_shown(self, entry: AuditEntry) -> str:
        stored = (
            AuditEntry.objects.filter(pk=entry.pk)
            .annotate(text=Cast("data", TextField()))
            .values_list("text", flat=True)
            .first()
        )
        if stored is None:
            return "-"
        try:
            shown = json.dumps(json.loads(stored), indent=2, sort_keys=True, ensure_ascii=False)
        except (ValueError, RecursionError):
            return format_html(
                "<p>{}</p><pre>{}</pre>",
                gettext("This value cannot be decoded; it is shown as stored."),
                stored,
            )
        return format_html("<pre>{}</pre>", shown)


# Checkpoints ------------------------------------------------------------------------------


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The database's copy of the signed heads: append-only, read-only."""

    list_display = ("sequence", "short_head_hash", "entry_count", "signed", "short_public_key")
    list_filter = ("signed_at",)
    ordering = ("-sequence", "-signed_at")
    search_fields = ("sequence__exact", "head_hash")

    @admin.display(description=_("head hash"), ordering="head_hash")
    def short_head_hash(self, checkpoint: Checkpoint) -> str:
        return checkpoint.head_hash[:12]

    @admin.display(description=_("signed at"), ordering="signed_at")
    def signed(self, checkpoint: Checkpoint) -> str:
        return _local(checkpoint.signed_at)

    @admin.display(description=_("public key"), ordering="public_key")
    def short_public_key(self, checkpoint: Checkpoint) -> str:
        return checkpoint.public_key[:12]


# Verification runs ------------------------------------------------------------------------


def run_outcome(run: VerificationRun) -> str:
    if run.error:
        return gettext("could not complete")
    if run.finished_at is None:
        return gettext("unfinished")
    if run.intact:
        return gettext("intact")
    return ngettext("%(count)s issue", "%(count)s issues", run.issue_count) % {
        "count": run.issue_count
    }


@admin.register(VerificationRun)
class VerificationRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every verify_audit_trail run, read-only: what was checked, and each finding."""

    list_display = (
        "started_at",
        "trigger",
        "checked_range",
        "entries_checked",
        "outcome",
        "issue_count",
    )
    list_filter = ("intact", "trigger", "full")
    date_hierarchy = "started_at"
    ordering = ("-started_at",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "trigger",
                    "started_local",
                    "duration",
                    "outcome",
                    "error",
                    "checked_range",
                    "entries_checked",
                    "sequence_ranges",
                    "head",
                    "last_good_checkpoint_link",
                    "checkpoint_link",
                )
            },
        ),
    )
    change_form_template = "admin/auditing/verificationrun/change_form.html"

    def get_readonly_fields(self, request, obj=None):
        return flatten_fieldsets(self.fieldsets)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("last_good_checkpoint", "checkpoint")

    @admin.display(description=_("range"))
    def checked_range(self, run: VerificationRun) -> str:
        if run.full:
            return gettext("entire chain")
        if run.range_start is None:
            return gettext("the entries since the last checkpoint")
        return gettext("%(start)s to %(end)s") % {"start": run.range_start, "end": run.range_end}

    @admin.display(description=_("outcome"))
    def outcome(self, run: VerificationRun) -> str:
        return run_outcome(run)

    @admin.display(description=_("started"))
    def started_local(self, run: VerificationRun) -> str:
        return _local(run.started_at)

    @admin.display(description=_("duration"))
    def duration(self, run: VerificationRun) -> str:
        if run.duration_ms is None:
            return "-"
        seconds = formats.number_format(run.duration_ms / 1000, decimal_pos=3)
        return gettext("%(seconds)s s") % {"seconds": seconds}

    @admin.display(description=_("sequences checked"))
    def sequence_ranges(self, run: VerificationRun) -> str:
        pairs = [pair for pair in run.ranges if isinstance(pair, list) and len(pair) == 2]
        if not pairs:
            return "-"
        return ", ".join(f"#{start} – #{end}" for start, end in pairs)

    @admin.display(description=_("head when the run started"))
    def head(self, run: VerificationRun) -> str:
        if run.head_sequence is None:
            return gettext("no entry")
        return format_html("#{} <code>{}</code>", run.head_sequence, run.head_hash)

    @admin.display(description=_("last good checkpoint"))
    def last_good_checkpoint_link(self, run: VerificationRun) -> str:
        return _object_link(run.last_good_checkpoint)

    @admin.display(description=_("checkpoint signed by this run"))
    def checkpoint_link(self, run: VerificationRun) -> str:
        return _object_link(run.checkpoint)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/findings.csv",
                self.admin_site.admin_view(self.findings_csv_view),
                name="auditing_verificationrun_findings_csv",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, unquote(object_id))
        if run is not None:
            extra_context = {**(extra_context or {}), **self._findings_context(request, run)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _findings_context(self, request: HttpRequest, run: VerificationRun) -> dict:
        findings = list(run.findings.order_by("position")[:FINDINGS_SHOWN])
        total = run.findings.count() if len(findings) == FINDINGS_SHOWN else len(findings)
        existing = set(
            AuditEntry.objects.filter(
                sequence__in={f.sequence for f in findings if f.sequence is not None}
            ).values_list("sequence", flat=True)
        )
        acknowledged = acknowledgements_of({f.reference for f in findings if f.reference})
        can_acknowledge = may_acknowledge(request)
        rows = []
        for finding in findings:
            ack = acknowledged.get(finding.reference) if finding.reference else None
            ack_url = None
            if finding.reference and ack is None and can_acknowledge:
                ack_url = reverse(
                    "admin:auditing_verificationfinding_acknowledge", args=[finding.pk]
                )
            rows.append(
                {
                    "finding": finding,
                    "entry": _entry_link(finding.sequence, exists=finding.sequence in existing),
                    "timestamp": _local(finding.timestamp),
                    "acknowledged": acknowledgement_text(ack) if ack else "",
                    "acknowledge_url": ack_url,
                }
            )
        return {
            "findings": rows,
            "findings_total": total,
            "findings_shown": len(rows),
            "findings_url": (
                reverse("admin:auditing_verificationfinding_changelist")
                + f"?run__id__exact={run.pk}"
            ),
            "findings_csv_url": reverse(
                "admin:auditing_verificationrun_findings_csv", args=[run.pk]
            ),
        }

    def findings_csv_view(self, request: HttpRequest, object_id: str):
        run = self.get_object(request, unquote(object_id))
        if run is None:
            raise Http404
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in findings_csv_rows(run)),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = (
            f'attachment; filename="verification-{run.pk}-findings.csv"'
        )
        return response


class _Echo:
    """A file-like object whose write returns the line: csv.writer over a stream."""

    def write(self, value: str) -> str:
        return value


# Findings ---------------------------------------------------------------------------------


class RunFilter(admin.SimpleListFilter):
    """The run the findings list was opened from (the run page's "all findings" link)."""

    title = _("verification run")
    parameter_name = "run__id__exact"

    def lookups(self, request, model_admin):
        value = self.value()
        return [(value, gettext("Verification #%(id)s") % {"id": value})] if value else []

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if not value.isdigit():
            # The admin's "invalid filter" page, not every finding of every run.
            raise IncorrectLookupParameters(value)
        return queryset.filter(run_id=int(value))


class AcknowledgeForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 5, "cols": 80}),
        help_text=_("Why this finding may rest: what was looked into and what was found."),
        error_messages={"required": _("Say why this finding may be acknowledged.")},
    )


@admin.register(VerificationFinding)
class VerificationFindingAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every finding of every run, read-only; a superuser acknowledges checkpoint findings."""

    list_display = ("position", "run_link", "entry_link", "kind_label", "detail")
    list_filter = (RunFilter, "kind")
    search_fields = ("sequence__exact",)
    ordering = ("-run_id", "position")
    list_per_page = 100
    show_full_result_count = False
    fields = (
        "run_link",
        "position",
        "kind_label",
        "entry_link",
        "stamped",
        "expected",
        "stored",
        "detail",
        "reference",
        "acknowledgement",
    )

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("run")
            .annotate(entry_exists=Exists(AuditEntry.objects.filter(sequence=OuterRef("sequence"))))
        )

    @admin.display(description=_("run"), ordering="run_id")
    def run_link(self, finding: VerificationFinding) -> str:
        return _object_link(finding.run, gettext("Verification #%(id)s") % {"id": finding.run_id})

    @admin.display(description=_("entry"), ordering="sequence")
    def entry_link(self, finding: VerificationFinding) -> str:
        return _entry_link(finding.sequence, exists=finding.entry_exists)

    @admin.display(description=_("timestamp"), ordering="timestamp")
    def stamped(self, finding: VerificationFinding) -> str:
        return _local(finding.timestamp)

    @admin.display(description=_("kind"), ordering="kind")
    def kind_label(self, finding: VerificationFinding) -> str:
        return finding.get_kind_display()

    @admin.display(description=_("acknowledgement"))
    def acknowledgement(self, finding: VerificationFinding) -> str:
        if not finding.reference:
            return gettext("only checkpoint findings are acknowledged")
        ack = acknowledgements_of({finding.reference}).get(finding.reference)
        if ack:
            return acknowledgement_text(ack)
        url = reverse("admin:auditing_verificationfinding_acknowledge", args=[finding.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, gettext("Acknowledge"))

    def get_urls(self):
        return [
            path(
                "<path:object_id>/acknowledge/",
                self.admin_site.admin_view(self.acknowledge_view),
                name="auditing_verificationfinding_acknowledge",
            ),
            *super().get_urls(),
        ]

    def acknowledge_view(self, request: HttpRequest, object_id: str):
        if not may_acknowledge(request):
            raise PermissionDenied
        if not object_id.isdigit():
            raise Http404
        finding = get_object_or_404(self.get_queryset(request), pk=object_id)
        run_url = reverse("admin:auditing_verificationrun_change", args=[finding.run_id])
        if not finding.reference:
            self.message_user(
                request,
                gettext("Only a checkpoint finding can be acknowledged; this one is not."),
                messages.ERROR,
            )
            return HttpResponseRedirect(run_url)
        ack = acknowledgements_of({finding.reference}).get(finding.reference)
        if ack:
            self.message_user(
                request,
                gettext("This finding is already %(acknowledged)s")
                % {"acknowledged": acknowledgement_text(ack)},
                messages.WARNING,
            )
            return HttpResponseRedirect(run_url)
        form = AcknowledgeForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                checkpoint_finding_acknowledge(
                    finding=finding, reason=form.cleaned_data["reason"], actor=request.user
                )
            except InvalidAcknowledgement as error:
                form.add_error("reason", str(error))
            else:
                self.message_user(
                    request,
                    gettext("Finding acknowledged: later verification runs no longer report it."),
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(run_url)
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Acknowledge a checkpoint finding"),
            "opts": self.model._meta,
            "finding": finding,
            "entry": _entry_link(finding.sequence, exists=finding.entry_exists),
            "run_url": run_url,
            "form": form,
        }
        return TemplateResponse(
            request, "admin/auditing/verificationfinding/acknowledge.html", context
        )
