"""One report per month whatever the trigger, now that 0005 set the older duplicates
aside. Undone, it puts back the old rule (one scheduled report per month), which the
rows still keep: only one report of a month is ever stored from here on."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("reporting", "0005_mark_duplicates_and_log_deliveries"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="commissionreport",
            name="reporting_one_scheduled_report_per_month",
        ),
        migrations.AddConstraint(
            model_name="commissionreport",
            constraint=models.UniqueConstraint(
                condition=models.Q(("duplicate_of__isnull", True)),
                fields=("year", "month"),
                name="reporting_one_report_per_month",
            ),
        ),
    ]
