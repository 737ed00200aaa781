"""Existing databases may hold several reports of one month (manual runs were not unique).
Keep every one readable: the first generated stays the month's report, each later one
points to it as a duplicate. Then log who each stored report was already emailed to, from
the email log, so that the first run after the deploy does not send it to them again.

Both steps can run again (after a rollback to 0004) and give the same rows."""

from django.db import migrations
from django.db.models import Count

REPORT_LABEL = "reporting.commissionreport"
EMAIL_PURPOSE = "commission_report"


def duplicates_mark(apps, schema_editor) -> None:
    CommissionReport = apps.get_model("reporting", "CommissionReport")
    months = (
        CommissionReport.objects.values("year", "month")
        .annotate(reports=Count("pk"))
        .filter(reports__gt=1)
        .order_by("year", "month")
    )
    for month in months:
        first, *later = CommissionReport.objects.filter(
            year=month["year"], month=month["month"]
        ).order_by("generated_at", "pk")
        CommissionReport.objects.filter(pk=first.pk).update(duplicate_of=None)
        CommissionReport.objects.filter(pk__in=[report.pk for report in later]).update(
            duplicate_of=first
        )


def deliveries_log(apps, schema_editor) -> None:
    CommissionReport = apps.get_model("reporting", "CommissionReport")
    CommissionReportDelivery = apps.get_model("reporting", "CommissionReportDelivery")
    EmailMessage = apps.get_model("mailing", "EmailMessage")
    reports = {str(report.pk): report for report in CommissionReport.objects.all()}
    logged = {
        (report_id, address.lower())
        for report_id, address in CommissionReportDelivery.objects.filter(
            resend=False
        ).values_list("report_id", "address")
    }
    emails = EmailMessage.objects.filter(subject_type=REPORT_LABEL, purpose=EMAIL_PURPOSE)
    for email in emails.order_by("created_at", "pk").iterator():
        report = reports.get(email.subject_id)
        if report is None:
            continue
        for address in dict.fromkeys(email.recipients or []):
            if CommissionReportDelivery.objects.filter(
                report=report, email=email, address=address
            ).exists():
                continue
            key = (report.pk, address.lower())
            CommissionReportDelivery.objects.create(
                report=report,
                address=address,
                email=email,
                trigger=report.trigger,
                requested_at=email.created_at,
                # A second message of the same report to the same address was a resend.
                resend=key in logged,
            )
            logged.add(key)


def forwards(apps, schema_editor) -> None:
    duplicates_mark(apps, schema_editor)
    deliveries_log(apps, schema_editor)


def backwards(apps, schema_editor) -> None:
    """Unmark the duplicates; the log goes with its table when 0004 is undone."""
    CommissionReport = apps.get_model("reporting", "CommissionReport")
    CommissionReport.objects.exclude(duplicate_of=None).update(duplicate_of=None)


class Migration(migrations.Migration):

    dependencies = [
        ("mailing", "0002_tables_renamed"),
        ("reporting", "0004_report_duplicates_and_delivery_log"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
