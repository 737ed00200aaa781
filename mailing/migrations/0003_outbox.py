"""The email log becomes an outbox: a stable Message-ID per message, the "sending" state
with its claim (attempt id, claimed at), the next retry's time, a per-message attempt
budget, attempts with start and finish times, and the sweeper's last run.

Existing rows: each message gets its own Message-ID; a failed message with attempts left
is due now (its Celery retry may be lost with the broker), one without is "gave up"; every
logged attempt was finished when it was logged.
"""

from email.utils import parseaddr

from django.conf import settings
from django.core.mail import make_msgid
from django.db import migrations, models
from django.utils import timezone

import mailing.models

MAX_DELIVERY_ATTEMPTS = 6  # frozen here: the constant may change, this migration may not


def backfill(apps, schema_editor):
    EmailMessage = apps.get_model("mailing", "EmailMessage")
    EmailAttempt = apps.get_model("mailing", "EmailAttempt")
    db = schema_editor.connection.alias
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
    for pk in EmailMessage.objects.using(db).filter(message_id__isnull=True).values_list(
        "pk", flat=True
    ).iterator():
        EmailMessage.objects.using(db).filter(pk=pk).update(message_id=make_msgid(domain=domain))
    EmailMessage.objects.using(db).filter(
        status="failed", attempts__lt=MAX_DELIVERY_ATTEMPTS
    ).update(next_attempt_at=timezone.now())
    EmailAttempt.objects.using(db).filter(finished_at__isnull=True).update(
        finished_at=models.F("attempted_at")
    )


def unclaim(apps, schema_editor):
    """Back to the log without claims: a message being sent is queued again."""
    EmailMessage = apps.get_model("mailing", "EmailMessage")
    EmailMessage.objects.using(schema_editor.connection.alias).filter(status="sending").update(
        status="queued"
    )


class Migration(migrations.Migration):

    dependencies = [
        ('mailing', '0002_tables_renamed'),
    ]

    operations = [
        migrations.CreateModel(
            name='OutboxSweep',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('trigger', models.CharField(blank=True, max_length=16)),
                ('sent', models.PositiveIntegerField(default=0)),
                ('failed', models.PositiveIntegerField(default=0)),
                ('stopped_early', models.TextField(blank=True, help_text='Why the run left due mail for the next one, if it did.')),
            ],
            options={
                'verbose_name': 'outbox sweep',
            },
        ),
        migrations.AddField(
            model_name='emailattempt',
            name='attempt_id',
            field=models.UUIDField(blank=True, editable=False, null=True, unique=True),
        ),
        migrations.AddField(
            model_name='emailattempt',
            name='finished_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='emailmessage',
            name='attempt_id',
            field=models.UUIDField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='emailmessage',
            name='attempt_limit',
            field=models.PositiveSmallIntegerField(default=6, help_text='Delivery gives up once attempts reach this; a manual retry raises it.'),
        ),
        migrations.AddField(
            model_name='emailmessage',
            name='claimed_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        # Nullable first: a callable default would give every existing row the same value.
        migrations.AddField(
            model_name='emailmessage',
            name='message_id',
            field=models.CharField(max_length=255, null=True),
        ),
        migrations.AddField(
            model_name='emailmessage',
            name='next_attempt_at',
            field=models.DateTimeField(blank=True, help_text='When the sweeper retries a failed message.', null=True),
        ),
        migrations.RunPython(backfill, unclaim),
        migrations.AlterField(
            model_name='emailmessage',
            name='message_id',
            field=models.CharField(default=mailing.models.message_id_new, editable=False, help_text='Sent on every attempt, so that receivers can drop a resent copy.', max_length=255, unique=True, verbose_name='Message-ID'),
        ),
        migrations.AlterField(
            model_name='emailattempt',
            name='attempted_at',
            field=models.DateTimeField(verbose_name='started at'),
        ),
        migrations.AlterField(
            model_name='emailattempt',
            name='succeeded',
            field=models.BooleanField(null=True),
        ),
        migrations.AlterField(
            model_name='emailmessage',
            name='status',
            field=models.CharField(choices=[('queued', 'Queued'), ('sending', 'Sending'), ('sent', 'Sent'), ('failed', 'Failed')], db_index=True, default='queued', max_length=16),
        ),
        migrations.AlterField(
            model_name='smtpconfiguration',
            name='timeout',
            field=models.PositiveIntegerField(default=10, help_text='Seconds; a delivery never waits longer than EMAIL_TIMEOUT (10 s).'),
        ),
        migrations.AddIndex(
            model_name='emailmessage',
            index=models.Index(condition=models.Q(('status', 'sent'), _negated=True), fields=['created_at'], name='mailing_email_unsent_idx'),
        ),
        migrations.AddConstraint(
            model_name='emailmessage',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('attempt_id__isnull', False), ('claimed_at__isnull', False), ('status', 'sending')), models.Q(models.Q(('status', 'sending'), _negated=True), ('attempt_id__isnull', True), ('claimed_at__isnull', True)), _connector='OR'), name='mailing_email_claimed_while_sending'),
        ),
        migrations.AddConstraint(
            model_name='emailmessage',
            constraint=models.CheckConstraint(condition=models.Q(('status', 'failed'), ('next_attempt_at__isnull', True), _connector='OR'), name='mailing_email_next_attempt_only_when_failed'),
        ),
    ]
