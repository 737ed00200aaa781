"""What counts as an email address we can send to, checked once for every door."""

from django.core.exceptions import ValidationError
from django.core.validators import validate_email


class InvalidEmailAddress(ValueError):
    pass


def email_address_validate(address: str) -> str:
    """Return the address stripped, or raise InvalidEmailAddress with a readable message."""
    cleaned = (address or "").strip()
    if any(char in cleaned for char in "\r\n"):
        raise InvalidEmailAddress("an email address cannot contain a line break")
    try:
        validate_email(cleaned)
    except ValidationError as error:
        raise InvalidEmailAddress(f"{cleaned!r} is not a valid email address") from error
    return cleaned
