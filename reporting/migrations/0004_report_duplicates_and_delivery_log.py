"""The delivery log, and room to set aside a month's older duplicate reports. The old
constraint (one scheduled report a month) stays until 0006: 0005 first marks the
duplicates that existing databases hold, so the new constraint never fails a deploy."""

import django.db.models.deletion
import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("mailing", "0002_tables_renamed"),
        ("reporting", "0003_email_moved_to_mailing"),
    ]

    operations = [
        migrations.AddField(
            model_name="commissionreport",
            name="duplicate_of",
            field=models.ForeignKey(
                blank=True,
                help_text=(
                    "Set on a second report of a month stored before reports became one per "
                    "month: the month's report is the one it points to."
                ),
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="duplicates",
                to="reporting.commissionreport",
            ),
        ),
        migrations.AlterField(
            model_name="commissionreport",
            name="recipients",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Whom the run that stored it addressed; every delivery since is in the log.",
            ),
        ),
        migrations.AlterField(
            model_name="commissionreport",
            name="trigger",
            field=models.CharField(
                help_text="Who stored it: beat, manual, manual-enqueue or task.", max_length=16
            ),
        ),
        migrations.CreateModel(
            name="CommissionReportDelivery",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("address", models.CharField(max_length=254)),
                (
                    "trigger",
                    models.CharField(help_text="Who asked: beat, manual, task...", max_length=16),
                ),
                ("requested_at", models.DateTimeField()),
                (
                    "resend",
                    models.BooleanField(
                        default=False,
                        help_text="Sent again on purpose (--resend) to an address that had it.",
                    ),
                ),
                (
                    "email",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="mailing.emailmessage",
                    ),
                ),
                (
                    "report",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="deliveries",
                        to="reporting.commissionreport",
                    ),
                ),
            ],
            options={
                "ordering": ["requested_at", "pk"],
                "constraints": [
                    models.UniqueConstraint(
                        models.F("report"),
                        django.db.models.functions.text.Lower("address"),
                        condition=models.Q(("resend", False)),
                        name="reporting_one_delivery_per_address",
                    )
                ],
            },
        ),
    ]
