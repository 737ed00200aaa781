from django.core.management.base import BaseCommand, CommandError

from mailing.passwords import SmtpPasswordUndecryptable
from mailing.services import smtp_password_rotate


class Command(BaseCommand):
    help = (
        "Encrypt the SMTP password stored by the admin again with the first key of "
        "SMTP_PASSWORD_KEYS. Run it after putting a new key first; then the old key can be "
        "removed. Exit codes: 0 done (or no password stored), 1 no key decrypts it."
    )

    def handle(self, *args, **options) -> None:
        try:
            rotated = smtp_password_rotate()
        except SmtpPasswordUndecryptable as error:
            raise CommandError(str(error), returncode=1) from None
        if rotated:
            self.stdout.write(
                self.style.SUCCESS("SMTP password encrypted again with the first key.")
            )
        else:
            self.stdout.write("No SMTP password is stored: nothing to encrypt.")
