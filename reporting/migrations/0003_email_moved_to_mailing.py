"""The email log and the SMTP configuration now belong to `mailing` (its 0001 took over
their tables); forget them here without touching the database."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('mailing', '0001_initial'),
        ('reporting', '0002_smtp_configuration'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='EmailAttempt'),
                migrations.DeleteModel(name='EmailMessage'),
                migrations.DeleteModel(name='SmtpConfiguration'),
            ],
            database_operations=[],
        ),
    ]
