"""Which month a commission report covers: reporting.periods, on the local calendar."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from reporting.periods import period_bounds, period_label, report_period_resolve

LOCAL = ZoneInfo("Indian/Antananarivo")
UTC = dt.UTC


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (dt.date(2026, 11, 1), (2026, 10)),
        (dt.date(2026, 11, 30), (2026, 10)),
        (dt.date(2027, 1, 1), (2026, 12)),
        (dt.date(2027, 1, 15), (2026, 12)),
        (dt.date(2026, 3, 1), (2026, 2)),
    ],
)
def test_without_a_month_the_previous_month_is_reported_across_the_new_year(today, expected):
    assert report_period_resolve(year=None, month=None, today=today) == expected


def test_a_month_alone_is_in_the_current_year():
    assert report_period_resolve(year=None, month=3, today=dt.date(2026, 11, 2)) == (2026, 3)


@pytest.mark.parametrize(
    ("year", "month", "expected"),
    [(2026, 10, (2026, 10)), (2025, 12, (2025, 12)), (2000, 1, (2000, 1))],
)
def test_a_complete_month_of_a_sane_year_is_accepted(year, month, expected):
    assert report_period_resolve(year=year, month=month, today=dt.date(2026, 11, 2)) == expected


@pytest.mark.parametrize(
    ("year", "month", "message"),
    [
        (None, 0, r"^The month must be between 1 and 12 \(got 0\)\.$"),
        (2026, 13, r"^The month must be between 1 and 12 \(got 13\)\.$"),
        (1999, 5, r"^The year must be between 2000 and 2026 \(got 1999\)\.$"),
        (2027, 1, r"^The year must be between 2000 and 2026 \(got 2027\)\.$"),
        (
            2026,
            11,
            r"^November 2026 has not ended yet; the latest complete month is October 2026\.$",
        ),
        (None, 12, r"^December 2026 has not ended yet"),
        (2026, None, r"^A year \(2026\) was given without a month: give the month too"),
    ],
)
def test_bad_periods_are_refused_with_one_readable_sentence(year, month, message):
    with pytest.raises(ValueError, match=message):
        report_period_resolve(year=year, month=month, today=dt.date(2026, 11, 2))


def test_in_january_last_december_is_complete_and_this_january_is_not():
    today = dt.date(2027, 1, 15)
    assert report_period_resolve(year=2026, month=12, today=today) == (2026, 12)
    with pytest.raises(ValueError, match="January 2027 has not ended yet"):
        report_period_resolve(year=2027, month=1, today=today)


def test_bounds_are_local_midnights_three_hours_before_utc_midnight():
    start, end = period_bounds(year=2026, month=10)
    assert start == dt.datetime(2026, 10, 1, tzinfo=LOCAL)
    assert end == dt.datetime(2026, 11, 1, tzinfo=LOCAL)
    assert start.astimezone(UTC) == dt.datetime(2026, 9, 30, 21, 0, tzinfo=UTC)
    assert end.astimezone(UTC) == dt.datetime(2026, 10, 31, 21, 0, tzinfo=UTC)


def test_december_ends_at_the_first_local_midnight_of_the_next_year():
    start, end = period_bounds(year=2026, month=12)
    assert (start, end) == (
        dt.datetime(2026, 12, 1, tzinfo=LOCAL),
        dt.datetime(2027, 1, 1, tzinfo=LOCAL),
    )


def test_labels_name_the_month_and_year():
    assert period_label(year=2026, month=10) == "October 2026"
    assert period_label(year=2027, month=1) == "January 2027"
