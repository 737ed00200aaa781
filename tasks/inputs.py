"""Input checks shared by every door onto the operations (commands, tasks, schedules):
one error type, one readable sentence, raised before anything is written."""

from typing import Any

from mailing.addresses import InvalidEmailAddress, email_address_validate


class InvalidInput(ValueError):
    """Bad input to an operation. Its message is one sentence a person can act on."""


def email_option(value: Any, *, option: str = "--email") -> str | None:
    """An optional recipient address, stripped, or InvalidInput."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{option} must be an email address, not {value!r}.")
    try:
        return email_address_validate(value)
    except InvalidEmailAddress as error:
        raise InvalidInput(f"{option}: {error}.") from error
