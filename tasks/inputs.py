"""Input checks shared by every door onto the operations (commands, tasks, schedules):
one error type, one readable sentence, raised before anything is written.

A task's arguments arrive as JSON from anywhere (beat, Flower's API, ``send_task``), so
nothing is coerced: ``"no"``, ``0`` or ``None`` is no boolean, ``"10"`` no number. Every
value quoted back in a sentence is cut short, so a kilobyte of junk gives one short line.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from mailing.addresses import InvalidEmailAddress, email_address_validate

# RFC 5321 caps a forward path at 256 octets, brackets included.
EMAIL_MAX_LENGTH = 254
QUOTED_MAX_LENGTH = 40


class InvalidInput(ValueError):
    """Bad input to an operation. Its message is one sentence a person can act on."""


def quoted(value: Any) -> str:
    """``value``'s repr, cut to a readable length."""
    text = repr(value)
    if len(text) <= QUOTED_MAX_LENGTH:
        return text
    return f"{text[: QUOTED_MAX_LENGTH - 1]}\N{HORIZONTAL ELLIPSIS}"


def flag_option(value: Any, *, option: str) -> bool:
    """A real boolean (JSON true or false), or InvalidInput."""
    if not isinstance(value, bool):
        raise InvalidInput(f"{option} must be true or false, not {quoted(value)}.")
    return value


def whole_number_option(
    value: Any, *, option: str, minimum: int | None = None, maximum: int | None = None
) -> int:
    """A real integer (not a boolean, a float or a numeric string) within the bounds."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"{option} must be a whole number, not {quoted(value)}.")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = (
            f"from {minimum} to {maximum}"
            if minimum is not None and maximum is not None
            else f"at least {minimum}"
            if minimum is not None
            else f"at most {maximum}"
        )
        raise InvalidInput(f"{option} must be {bounds} (got {quoted(value)}).")
    return value


def text_option(value: Any, *, option: str, max_length: int) -> str:
    """A string of at most ``max_length`` characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"{option} must be text, not {quoted(value)}.")
    if len(value) > max_length:
        raise InvalidInput(
            f"{option} is {len(value)} characters long; at most {max_length} are allowed."
        )
    return value


def email_option(value: Any, *, option: str = "--email") -> str | None:
    """An optional recipient address, stripped, or InvalidInput."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{option} must be an email address, not {quoted(value)}.")
    try:
        return email_address_checked(value)
    except InvalidEmailAddress as error:
        raise InvalidInput(f"{option}: {error}.") from error


def email_address_checked(value: str) -> str:
    """The address stripped and validated, refusing an overlong one before quoting it."""
    if len(value.strip()) > EMAIL_MAX_LENGTH:
        raise InvalidEmailAddress(
            f"{quoted(value.strip())} is not a valid email address "
            f"(longer than {EMAIL_MAX_LENGTH} characters)"
        )
    try:
        return email_address_validate(value)
    except InvalidEmailAddress as error:
        # The validator quotes the whole address; keep the sentence short.
        reason = str(error)
        cleaned = value.strip()
        if repr(cleaned) in reason:
            reason = reason.replace(repr(cleaned), quoted(cleaned))
        raise InvalidEmailAddress(reason) from error


def no_unknown_arguments(
    unknown: Mapping[str, Any], *, operation: str, known: Iterable[str]
) -> None:
    """Refuse argument names the operation does not take, in one sentence naming the ones it
    does (a misspelt ``dry_rn`` must not run a real run with the default)."""
    if not unknown:
        return
    names = ", ".join(quoted(name) for name in sorted(unknown, key=str)[:5])
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    plural = "s" if len(unknown) > 1 else ""
    raise InvalidInput(
        f"{operation} takes no argument{plural} {names}{more}; it takes {', '.join(known)}."
    )
