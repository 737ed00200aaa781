# The tables, index and constraint take the mailing app's names.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('mailing', '0001_initial'),
        ('reporting', '0003_email_moved_to_mailing'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='smtpconfiguration',
            name='reporting_smtp_tls_xor_ssl',
        ),
        migrations.RenameIndex(
            model_name='emailmessage',
            new_name='mailing_ema_subject_628b85_idx',
            old_name='reporting_e_subject_50a588_idx',
        ),
        migrations.AddConstraint(
            model_name='smtpconfiguration',
            constraint=models.CheckConstraint(condition=models.Q(('use_ssl', True), ('use_tls', True), _negated=True), name='mailing_smtp_tls_xor_ssl'),
        ),
        migrations.AlterModelTable(
            name='emailattempt',
            table=None,
        ),
        migrations.AlterModelTable(
            name='emailmessage',
            table=None,
        ),
        migrations.AlterModelTable(
            name='smtpconfiguration',
            table=None,
        ),
    ]
