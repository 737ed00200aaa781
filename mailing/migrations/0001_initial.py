"""The email log and the SMTP configuration move here from `reporting`.

No table is created: this migration takes over the existing `reporting_*` tables in
Django's state only, and moves their content types (so permissions granted on them stay
granted). 0002 then renames the tables to `mailing_*`.
"""

import django.db.models.deletion
from django.db import migrations, models

MOVED = ("emailmessage", "emailattempt", "smtpconfiguration")


def move_content_types(apps, schema_editor, *, source, target):
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for model in MOVED:
        source_rows = ContentType.objects.using(db).filter(app_label=source, model=model)
        if not source_rows.exists():
            continue
        # The source row carries the permissions granted to groups and users. A target row
        # can only be a fresh one from post_migrate, granted to nobody yet: drop it (and its
        # permissions) so that the source row can take its place.
        ContentType.objects.using(db).filter(app_label=target, model=model).delete()
        source_rows.update(app_label=target)


def forwards(apps, schema_editor):
    move_content_types(apps, schema_editor, source="reporting", target="mailing")


def backwards(apps, schema_editor):
    move_content_types(apps, schema_editor, source="mailing", target="reporting")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('reporting', '0002_smtp_configuration'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='EmailMessage',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('purpose', models.CharField(db_index=True, max_length=40)),
                        ('about', models.CharField(blank=True, help_text='What it reports on: a period, a session, a run.', max_length=200)),
                        ('subject_type', models.CharField(blank=True, max_length=64)),
                        ('subject_id', models.CharField(blank=True, max_length=64)),
                        ('recipients', models.JSONField()),
                        ('subject', models.CharField(max_length=255)),
                        ('body_text', models.TextField()),
                        ('body_html', models.TextField(blank=True)),
                        ('attachments', models.JSONField(blank=True, default=list, help_text='[{filename, mimetype, content}] of text files.')),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('sent', 'Sent'), ('failed', 'Failed')], db_index=True, default='queued', max_length=16)),
                        ('attempts', models.PositiveSmallIntegerField(default=0)),
                        ('last_error', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('last_attempt_at', models.DateTimeField(blank=True, null=True)),
                        ('sent_at', models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        'db_table': 'reporting_emailmessage',
                        'ordering': ['-created_at'],
                        'indexes': [models.Index(fields=['subject_type', 'subject_id'], name='reporting_e_subject_50a588_idx')],
                    },
                ),
                migrations.CreateModel(
                    name='EmailAttempt',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('attempted_at', models.DateTimeField()),
                        ('succeeded', models.BooleanField()),
                        ('error', models.TextField(blank=True)),
                        ('email', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attempt_log', to='mailing.emailmessage')),
                    ],
                    options={
                        'db_table': 'reporting_emailattempt',
                        'ordering': ['attempted_at'],
                    },
                ),
                migrations.CreateModel(
                    name='SmtpConfiguration',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('enabled', models.BooleanField(default=False)),
                        ('host', models.CharField(blank=True, max_length=255)),
                        ('port', models.PositiveIntegerField(default=587)),
                        ('username', models.CharField(blank=True, max_length=255)),
                        ('password', models.CharField(blank=True, max_length=255)),
                        ('use_tls', models.BooleanField(default=True, verbose_name='use STARTTLS')),
                        ('use_ssl', models.BooleanField(default=False, verbose_name='use SSL/TLS')),
                        ('timeout', models.PositiveIntegerField(default=30, help_text='Seconds.')),
                        ('from_email', models.CharField(blank=True, help_text='For example "Cash office <cash-office@example.com>".', max_length=255, verbose_name='from address')),
                        ('reply_to', models.EmailField(blank=True, max_length=254)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        'db_table': 'reporting_smtpconfiguration',
                        'verbose_name': 'SMTP configuration',
                        'verbose_name_plural': 'SMTP configuration',
                        'constraints': [models.CheckConstraint(condition=models.Q(('use_ssl', True), ('use_tls', True), _negated=True), name='reporting_smtp_tls_xor_ssl')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forwards, backwards),
    ]
