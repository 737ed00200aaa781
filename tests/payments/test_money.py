from decimal import ROUND_HALF_EVEN, Decimal

import pytest

from payments.money import commission_for, format_money, minor_unit, round_money

# No database: these are pure functions.


def test_minor_units_follow_iso_4217():
    assert minor_unit("MGA") == Decimal("0.01")
    assert minor_unit("XOF") == Decimal("1")


def test_commission_rounding_is_half_up_where_half_even_would_round_down():
    exact = Decimal("1001.00") * Decimal("2.50") / 100
    assert exact == Decimal("25.025")
    assert exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN) == Decimal("25.02")

    amount = commission_for(
        base_amount=Decimal("1001.00"), rate_percent=Decimal("2.50"), currency="MGA"
    )

    assert amount == Decimal("25.03")
    assert isinstance(amount, Decimal)
    assert amount.as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("base", "rate", "expected"),
    [
        ("1000.00", "2.45", "25"),  # 24.5: half-up gives 25 where half-even gives 24
        ("1010.00", "2.50", "25"),  # 25.25
        ("1030.00", "2.50", "26"),  # 25.75
        ("10.00", "2.00", "0"),  # 0.2
    ],
)
def test_a_zero_decimal_currency_rounds_commissions_to_whole_units(base, rate, expected):
    amount = commission_for(base_amount=Decimal(base), rate_percent=Decimal(rate), currency="XOF")

    assert amount == Decimal(expected)
    assert amount.as_tuple().exponent == 0


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("0.125", "MGA", "0.13"),
        ("0.135", "MGA", "0.14"),
        ("-0.125", "MGA", "-0.13"),
        ("2.5", "XOF", "3"),
        ("3.5", "XOF", "4"),
        ("3.49", "XOF", "3"),
    ],
)
def test_round_money_is_half_up_away_from_zero(amount, currency, expected):
    assert round_money(Decimal(amount), currency=currency) == Decimal(expected)


def test_commission_is_exact_when_no_rounding_is_needed():
    assert commission_for(
        base_amount=Decimal("5000.00"), rate_percent=Decimal("2.00"), currency="MGA"
    ) == Decimal("100.00")


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (Decimal("1234567.5"), "MGA", "1,234,567.50 MGA"),
        (Decimal("0"), "EUR", "0.00 EUR"),
        (Decimal("-42.10"), "MGA", "-42.10 MGA"),
        (Decimal("1234567"), "XOF", "1,234,567 XOF"),
        (None, "MGA", "-"),
    ],
)
def test_format_money_groups_thousands_and_shows_the_minor_unit(amount, currency, expected):
    assert format_money(amount, currency=currency) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (Decimal("0.125"), "MGA", "0.13 MGA"),
        (Decimal("2.50"), "XOF", "3 XOF"),
        (Decimal("1000.50"), "XOF", "1,001 XOF"),
    ],
)
def test_format_money_rounds_half_up_like_the_amounts_it_shows(amount, currency, expected):
    assert format_money(amount, currency=currency) == expected
