"""Reminders are keyed by session and local day instead of by agent and day.

The agent-per-day constraint goes; each reminded session gets a ``SessionReminder`` row,
unique per (session, day). Existing reminders stay as they were (their
``session_numbers`` still list what they said) and their sessions are linked to them, so
a session reminded today before the upgrade is not reminded again today after it.

Going back needs at most one agent reminder per agent and day again: if the new keying
already sent an agent a second one the same day, the reverse stops with a clear error
rather than deleting reminders that audit entries point at.
"""

import django.db.models.deletion
from django.db import migrations, models

BATCH = 2000


def link_reminded_sessions(apps, schema_editor):
    ReconciliationReminder = apps.get_model("payments", "ReconciliationReminder")
    CashSession = apps.get_model("payments", "CashSession")
    SessionReminder = apps.get_model("payments", "SessionReminder")
    reminders = (
        ReconciliationReminder.objects.filter(kind="agent")
        .order_by("pk")
        .values_list("pk", "agent_id", "day", "session_numbers")
    )
    links = []
    for reminder_id, agent_id, day, numbers in reminders.iterator(chunk_size=BATCH):
        # Numbers are unique and sessions never deleted; the agent filter keeps a
        # hand-edited list from linking another agent's session.
        session_ids = CashSession.objects.filter(
            number__in=numbers or [], agent_id=agent_id
        ).values_list("pk", flat=True)
        links += [
            SessionReminder(reminder_id=reminder_id, session_id=session_id, day=day)
            for session_id in session_ids
        ]
        if len(links) >= BATCH:
            SessionReminder.objects.bulk_create(links, ignore_conflicts=True)
            links = []
    SessionReminder.objects.bulk_create(links, ignore_conflicts=True)


def refuse_if_an_agent_had_two_reminders_a_day(apps, schema_editor):
    ReconciliationReminder = apps.get_model("payments", "ReconciliationReminder")
    twice = (
        ReconciliationReminder.objects.filter(kind="agent")
        .values("agent_id", "day")
        .annotate(n=models.Count("pk"))
        .filter(n__gt=1)
        .order_by("day", "agent_id")
        .first()
    )
    if twice:
        raise RuntimeError(
            "Cannot go back to one reminder per agent a day: agent id "
            f"{twice['agent_id']} has {twice['n']} reminders on {twice['day']}. "
            "They are kept (audit entries point at them); stay on this migration."
        )


class Migration(migrations.Migration):

    dependencies = [
        ("payments", "0002_expiry_notices_and_reminders"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="reconciliationreminder",
            name="payments_one_agent_reminder_a_day",
        ),
        migrations.CreateModel(
            name="SessionReminder",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("day", models.DateField(help_text="Local date the session was reminded on.")),
                (
                    "reminder",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="session_reminders",
                        to="payments.reconciliationreminder",
                    ),
                ),
                (
                    "session",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="session_reminders",
                        to="payments.cashsession",
                    ),
                ),
            ],
            options={
                "ordering": ["-day", "session"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("session", "day"),
                        name="payments_one_reminder_per_session_a_day",
                    )
                ],
            },
        ),
        migrations.AddField(
            model_name="reconciliationreminder",
            name="sessions",
            field=models.ManyToManyField(
                blank=True,
                related_name="reconciliation_reminders",
                through="payments.SessionReminder",
                to="payments.cashsession",
            ),
        ),
        migrations.RunPython(
            link_reminded_sessions, reverse_code=refuse_if_an_agent_had_two_reminders_a_day
        ),
    ]
