"""The rules the audit trail's keys, the SMTP password keys, checkpoint sinks and site URL
obey; settings.py applies them.

Pure functions: each takes the raw value read from the environment and returns it checked
(and decoded where that helps), or raises ``ImproperlyConfigured`` with one sentence that
names the variable. Strength rules apply to production only, so dev and the tests keep the
published development keys; format rules apply everywhere, so a typo fails in dev first.
"""

import base64
import binascii
import json
import re
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.exceptions import ImproperlyConfigured

# HMAC-SHA256 takes keys of any length, but one shorter than its 32-byte output is easier
# to guess than the hash it protects.
CHAIN_KEY_MIN_BYTES = 32
DEV_CHAIN_KEY = "dev-only-audit-chain-key"
# The placeholder in .env.example: published in the repository like the development key,
# so a copied .env that was never filled in is refused too (tests/test_settings.py keeps
# the two files in step).
EXAMPLE_CHAIN_KEY = "change-me-to-another-long-random-string-and-keep-it-out-of-db-backups"
PUBLISHED_CHAIN_KEYS = frozenset({DEV_CHAIN_KEY, EXAMPLE_CHAIN_KEY})

# The development Ed25519 seed, published here so dev and the tests sign checkpoints that
# anyone can check; its public key is DEV_PUBLIC_KEY. Production refuses it.
DEV_SIGNING_KEY = "e98peh2L1zJwFuia5p5F+Ya7Jkb5n2/Kw/yZZ1gNthI="
DEV_PUBLIC_KEY = "EyBPOiy10fpyqupEgzWOTmAcCGTKer/ThVXlgVxL8Gs="
ED25519_KEY_BYTES = 32

# The development Fernet key of the SMTP password (mailing/passwords.py): published, so dev,
# the demo and the tests need no set-up; production refuses it.
DEV_SMTP_PASSWORD_KEY = "CnGBHeVKRYM_m1f_v_NDiE1Lct5WAjtEW3jRS5s_iD4="  # noqa: S105 - published
GENERATE_SMTP_PASSWORD_KEY = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'  # noqa: S105
)

# Stored with every entry (auditing_auditentry.key_id): short, and safe in a file name or URL.
KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
SINK_SCHEMES = ("file", "s3")

GENERATE_CHAIN_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'
GENERATE_SIGNING_KEY = (
    'python -c "import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())"'
)


def chain_key_check(key: str, *, name: str = "AUDIT_CHAIN_KEY", production: bool) -> str:
    """An HMAC key of the chain; in production at least 32 bytes and never a published one."""
    if not production:
        return key
    if not key:
        raise ImproperlyConfigured(
            f"{name} is empty: set it to a random key of at least {CHAIN_KEY_MIN_BYTES} bytes "
            f"(generate one with {GENERATE_CHAIN_KEY})."
        )
    if key in PUBLISHED_CHAIN_KEYS:
        raise ImproperlyConfigured(
            f"{name} is a key published in the repository, which anyone could use to forge "
            f"audit entries: set a random one (generate it with {GENERATE_CHAIN_KEY})."
        )
    size = len(key.encode("utf-8"))
    if size < CHAIN_KEY_MIN_BYTES:
        raise ImproperlyConfigured(
            f"{name} is too short: {size} byte{'' if size == 1 else 's'} in UTF-8, where "
            f"production needs at least {CHAIN_KEY_MIN_BYTES} (generate one with "
            f"{GENERATE_CHAIN_KEY})."
        )
    return key


def key_id_check(key_id: str, *, name: str = "AUDIT_CHAIN_KEY_ID", echo: bool = True) -> str:
    """``echo=False`` leaves the value out of the message: a key pasted where its id belongs
    must not end up in a log."""
    if not KEY_ID.fullmatch(key_id):
        shown = f", not {key_id!r}" if echo else ""
        raise ImproperlyConfigured(
            f"{name} must be 1 to 32 letters, digits, '_', '.' or '-'{shown}."
        )
    return key_id


def retired_chain_keys_parse(text: str, *, current_id: str, production: bool) -> dict[str, str]:
    """``AUDIT_CHAIN_RETIRED_KEYS``: a JSON object ``{"<key id>": "<key>"}`` of the keys that
    signed earlier entries, kept so that those entries still verify after a rotation."""
    name = "AUDIT_CHAIN_RETIRED_KEYS"
    try:
        keys = json.loads(text)
    except ValueError as error:
        raise ImproperlyConfigured(
            f'{name} is not valid JSON ({error}); write {{"<key id>": "<key>", ...}}.'
        ) from None
    if not isinstance(keys, dict):
        raise ImproperlyConfigured(
            f'{name} must be a JSON object {{"<key id>": "<key>", ...}}, '
            f"not a {type(keys).__name__}."
        )
    for key_id, key in keys.items():
        key_id_check(key_id, name=f"Each key id in {name}", echo=False)
        if not isinstance(key, str):
            raise ImproperlyConfigured(
                f"{name}: the key of id {key_id!r} must be a string, not {json.dumps(key)}."
            )
        if key_id == current_id:
            raise ImproperlyConfigured(
                f"{name} holds id {key_id!r}, which is AUDIT_CHAIN_KEY_ID, the current key's "
                "id: give the new key a new id when rotating."
            )
        chain_key_check(key, name=f"{name}[{key_id!r}]", production=production)
    return keys


def chain_keys(*, current_id: str, current_key: str, retired: dict[str, str]) -> dict[str, str]:
    """Every key an entry may have been written with, by key id: what verification uses."""
    return {**retired, current_id: current_key}


def _ed25519_key_decode(text: str, *, name: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = None
    if raw is None or len(raw) != ED25519_KEY_BYTES:
        raise ImproperlyConfigured(
            f"{name} must be the base64 of exactly {ED25519_KEY_BYTES} bytes"
            + ("." if raw is None else f", not of {len(raw)}.")
        )
    return raw


def signing_key_check(text: str, *, production: bool) -> str:
    """``AUDIT_SIGNING_KEY``: the base64 of the Ed25519 private seed that signs checkpoints."""
    name = "AUDIT_SIGNING_KEY"
    if production and not text.strip():
        raise ImproperlyConfigured(
            f"{name} is empty: set the base64 of a random 32-byte Ed25519 seed "
            f"(generate one with {GENERATE_SIGNING_KEY})."
        )
    seed = _ed25519_key_decode(text, name=name)
    if production and seed == base64.b64decode(DEV_SIGNING_KEY):
        raise ImproperlyConfigured(
            f"{name} is the development key published in the repository, with which anyone "
            f"could sign checkpoints: set a random one (generate it with {GENERATE_SIGNING_KEY})."
        )
    return base64.b64encode(seed).decode()


def public_key_derive(signing_key: str) -> str:
    """The base64 of the raw Ed25519 public key of a (checked) ``AUDIT_SIGNING_KEY``."""
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(signing_key))
    return base64.b64encode(
        private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ).decode()


def public_key_check(text: str, *, signing_key: str) -> str:
    """``AUDIT_PUBLIC_KEY``: the signing key's public key; derived when not set."""
    derived = public_key_derive(signing_key)
    if text and _ed25519_key_decode(text, name="AUDIT_PUBLIC_KEY") != base64.b64decode(derived):
        raise ImproperlyConfigured("AUDIT_PUBLIC_KEY is not the public key of AUDIT_SIGNING_KEY.")
    return derived


def trusted_public_keys(*, current: str, retired: list[str]) -> list[str]:
    """The current public key, then those of earlier signing keys, each in canonical base64
    (so equal keys compare equal as text) and each once."""
    trusted = [current]
    for text in retired:
        raw = _ed25519_key_decode(text, name="Each key in AUDIT_RETIRED_PUBLIC_KEYS")
        key = base64.b64encode(raw).decode()
        if key not in trusted:
            trusted.append(key)
    return trusted


def checkpoint_sinks_check(urls: list[str], *, production: bool) -> list[str]:
    """``AUDIT_CHECKPOINT_SINKS``: where signed checkpoints are written, outside the
    database: ``file:///absolute/dir`` or ``s3://bucket/prefix``."""
    name = "AUDIT_CHECKPOINT_SINKS"
    if production and not urls:
        raise ImproperlyConfigured(
            f"Set {name} in production: signed checkpoints must leave the database, or whoever "
            "owns it can cut the trail unseen (e.g. file:///var/lib/cash-office/checkpoints "
            "on a volume of its own)."
        )
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in SINK_SCHEMES:
            raise ImproperlyConfigured(
                f"{name}: {url!r} is neither file:///absolute/dir nor s3://bucket/prefix."
            )
        if parts.scheme == "file" and (
            parts.netloc not in ("", "localhost") or not PurePosixPath(parts.path).is_absolute()
        ):
            raise ImproperlyConfigured(
                f"{name}: {url!r} must name an absolute directory, as in file:///absolute/dir."
            )
        if parts.scheme == "s3" and not parts.netloc:
            raise ImproperlyConfigured(
                f"{name}: {url!r} names no bucket; write s3://bucket/prefix."
            )
    return urls


def site_url_clean(url: str) -> str:
    """``SITE_URL``: the address links in emails start with, without a trailing slash."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ImproperlyConfigured(
            f"SITE_URL must be the site's address, such as https://cash.example.com, not {url!r}."
        )
    return url.rstrip("/")


def clock_skew_check(seconds: int) -> int:
    if seconds < 0:
        raise ImproperlyConfigured(
            f"AUDIT_CLOCK_SKEW_SECONDS must be zero or more seconds, not {seconds}."
        )
    return seconds


def smtp_password_keys_check(keys: list[str], *, production: bool) -> list[str]:
    """``SMTP_PASSWORD_KEYS``: Fernet keys, comma-separated; the first encrypts, every one
    decrypts, so that a new key can go first while the old one still reads what it wrote.
    A key is never echoed: the message names its position only."""
    name = "SMTP_PASSWORD_KEYS"
    keys = [key.strip() for key in keys if key.strip()]
    if not keys:
        raise ImproperlyConfigured(
            f"{name} is empty: set at least one Fernet key (generate one with "
            f"{GENERATE_SMTP_PASSWORD_KEY})."
        )
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, binascii.Error) as error:
            raise ImproperlyConfigured(
                f"{name} key {position} is not a Fernet key (the url-safe base64 of 32 "
                f"bytes; generate one with {GENERATE_SMTP_PASSWORD_KEY})."
            ) from error
        if production and key == DEV_SMTP_PASSWORD_KEY:
            raise ImproperlyConfigured(
                f"{name} key {position} is the development key published in the repository, "
                f"with which anyone could read the SMTP password: set a random one (generate "
                f"it with {GENERATE_SMTP_PASSWORD_KEY})."
            )
    return keys
