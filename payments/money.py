"""Money rules: Decimal only, rounded half-up to the currency's minor unit."""

import enum
from decimal import ROUND_HALF_UP, Decimal

from django.utils.formats import number_format

# ISO 4217 minor units of the currencies the network may use.
MINOR_UNITS = {"MGA": 2, "EUR": 2, "USD": 2, "MUR": 2, "XOF": 0, "XAF": 0, "KMF": 0}
PERCENT = Decimal(100)
# The bounds of every commission rate, in percent: the configured default, an agent's own
# rate and the rate a commission was computed at. The model validators and the database's
# CHECK constraints both read them.
COMMISSION_RATE_MIN = Decimal(0)
COMMISSION_RATE_MAX = Decimal(100)
# The currency the amounts are in when the configuration row does not exist yet.
DEFAULT_CURRENCY = "MGA"


def minor_unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-MINOR_UNITS[currency])


def round_money(amount: Decimal, *, currency: str) -> Decimal:
    """Round half-up (not banker's rounding) to the currency's minor unit."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def commission_for(*, base_amount: Decimal, rate_percent: Decimal, currency: str) -> Decimal:
    return round_money(base_amount * rate_percent / PERCENT, currency=currency)


def format_money(amount: Decimal | None, *, currency: str) -> str:
    """``1234567.5`` -> ``1,234,567.50 MGA`` in English, ``1 234 567,50 MGA`` in French
    (the active language's separators); ``None`` stays visible as ``-``."""
    if amount is None:
        return "-"
    places = MINOR_UNITS.get(currency, 2)
    # Round half-up first, like every stored amount; formatting alone would round half-even.
    rounded = Decimal(amount).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    formatted = number_format(rounded, decimal_pos=places, use_l10n=True, force_grouping=True)
    return f"{formatted} {currency}"


class DiscrepancyStanding(enum.StrEnum):
    WITHIN = "within"  # either way, within the configured tolerance
    SHORT = "short"  # cash missing beyond it
    OVER = "over"  # cash over beyond it: to explain, nothing lost


def discrepancy_standing(discrepancy: Decimal, *, tolerance: Decimal) -> DiscrepancyStanding:
    """One reading of a counted session's discrepancy for every door: the reconciliation
    (notes required beyond the tolerance), the list's colours and the dashboard's."""
    if abs(discrepancy) <= tolerance:
        return DiscrepancyStanding.WITHIN
    return DiscrepancyStanding.SHORT if discrepancy < 0 else DiscrepancyStanding.OVER
