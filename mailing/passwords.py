"""The SMTP password set in the admin, encrypted at rest.

The database holds a Fernet token, never the password: a dump or a backup of the database
does not give away the mail account. The keys come from the environment
(``settings.SMTP_PASSWORD_KEYS``), the first encrypting and all decrypting, so that a key
is rotated by putting a new one first, re-encrypting (``manage.py
smtp_password_reencrypt``) and then dropping the old one.
"""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SmtpPasswordUndecryptable(Exception):
    """The stored password was encrypted with a key SMTP_PASSWORD_KEYS no longer holds."""

    def __init__(self) -> None:
        super().__init__(
            "The SMTP password cannot be decrypted with SMTP_PASSWORD_KEYS: put back the key "
            "it was encrypted with, or type the password again in the admin's SMTP "
            "configuration."
        )


def _keys() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in settings.SMTP_PASSWORD_KEYS])


def smtp_password_encrypt(password: str) -> str:
    """What the database stores for ``password``: empty stays empty (no password)."""
    if not password:
        return ""
    return _keys().encrypt(password.encode("utf-8")).decode("ascii")


def smtp_password_decrypt(stored: str) -> str:
    """The password for the SMTP login; raises SmtpPasswordUndecryptable, whose message
    says what to do, when no key decrypts it."""
    if not stored:
        return ""
    try:
        return _keys().decrypt(stored.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise SmtpPasswordUndecryptable() from None


def smtp_password_reencrypt(stored: str) -> str:
    """``stored`` encrypted again with the first key (after a rotation); raises
    SmtpPasswordUndecryptable as decrypting does."""
    if not stored:
        return ""
    try:
        return _keys().rotate(stored.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        raise SmtpPasswordUndecryptable() from None
