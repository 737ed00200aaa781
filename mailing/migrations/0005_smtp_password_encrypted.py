"""The SMTP password is stored encrypted (mailing/passwords.py): a Fernet token under the
first of SMTP_PASSWORD_KEYS, in a text column since a token is longer than its password.
A password stored in clear before is encrypted here; going back decrypts it again.

Fernet is used directly with the settings' keys, not through mailing.passwords, so that
this migration does the same thing whatever that module becomes.
"""

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.db import migrations, models


def _keys() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in settings.SMTP_PASSWORD_KEYS])


def encrypt(apps, schema_editor):
    SmtpConfiguration = apps.get_model("mailing", "SmtpConfiguration")
    db = schema_editor.connection.alias
    for config in SmtpConfiguration.objects.using(db).exclude(password=""):
        token = _keys().encrypt(config.password.encode("utf-8")).decode("ascii")
        SmtpConfiguration.objects.using(db).filter(pk=config.pk).update(password=token)


def decrypt(apps, schema_editor):
    """Back to the clear column: raises InvalidToken, and changes nothing, when the keys
    that encrypted the password are gone."""
    SmtpConfiguration = apps.get_model("mailing", "SmtpConfiguration")
    db = schema_editor.connection.alias
    for config in SmtpConfiguration.objects.using(db).exclude(password=""):
        clear = _keys().decrypt(config.password.encode("ascii")).decode("utf-8")
        SmtpConfiguration.objects.using(db).filter(pk=config.pk).update(password=clear)


class Migration(migrations.Migration):
    dependencies = [
        ("mailing", "0004_email_content_permission"),
    ]

    operations = [
        migrations.AlterField(
            model_name="smtpconfiguration",
            name="password",
            field=models.TextField(
                blank=True,
                help_text="Encrypted with SMTP_PASSWORD_KEYS; empty when there is none.",
            ),
        ),
        migrations.RunPython(encrypt, decrypt, elidable=False),
    ]
