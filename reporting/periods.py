"""Which month a commission report covers, decided on the local calendar (TIME_ZONE)."""

import calendar
import datetime as dt

from django.utils import timezone

FIRST_YEAR = 2000


class ReportPeriodError(ValueError):
    """A month that cannot be reported on; the message is one readable sentence."""


def local_today() -> dt.date:
    return timezone.localdate(timezone=timezone.get_default_timezone())


def period_label(*, year: int, month: int) -> str:
    """``October 2026``."""
    return f"{calendar.month_name[month]} {year}"


def period_key(*, year: int, month: int) -> str:
    """``2026-10``."""
    return f"{year:04d}-{month:02d}"


def previous_month(today: dt.date) -> tuple[int, int]:
    return (today.year - 1, 12) if today.month == 1 else (today.year, today.month - 1)


def report_period_resolve(
    *, year: int | None, month: int | None, today: dt.date
) -> tuple[int, int]:
    """The (year, month) to report on. No month: the previous month, across a new year.
    A month alone is in the current year. Raise ReportPeriodError with one readable
    sentence."""
    if month is None:
        if year is not None:
            raise ReportPeriodError(
                f"A year ({year}) was given without a month: give the month too (--month 1-12)."
            )
        return previous_month(today)
    if year is None:
        year = today.year
    if not 1 <= month <= 12:
        raise ReportPeriodError(f"The month must be between 1 and 12 (got {month}).")
    if not FIRST_YEAR <= year <= today.year:
        raise ReportPeriodError(
            f"The year must be between {FIRST_YEAR} and {today.year} (got {year})."
        )
    if (year, month) >= (today.year, today.month):
        latest_year, latest_month = previous_month(today)
        raise ReportPeriodError(
            f"{period_label(year=year, month=month)} has not ended yet; the latest complete "
            f"month is {period_label(year=latest_year, month=latest_month)}."
        )
    return year, month


def period_bounds(*, year: int, month: int) -> tuple[dt.datetime, dt.datetime]:
    """[first day 00:00 local, first day of the next month 00:00 local), as aware datetimes."""
    next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
    zone = timezone.get_default_timezone()
    return (
        dt.datetime(year, month, 1, tzinfo=zone),
        dt.datetime(next_year, next_month, 1, tzinfo=zone),
    )
