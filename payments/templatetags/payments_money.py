"""``{{ amount|money:currency }}``: an amount as people read it, in the language the
template renders in (an email's language, not the caller's).

``None`` reads ``-``, as in ``format_money``. A text the template put in place of an
amount passes through unchanged, so that
``{{ discrepancy|default_if_none:not_counted|money:currency }}`` says "not counted", in
the email language, where nobody counted the cash.
"""

from decimal import Decimal

from django import template

from payments.money import format_money

register = template.Library()


@register.filter
def money(amount: Decimal | str | None, currency: str) -> str:
    if isinstance(amount, str):
        return amount
    return format_money(amount, currency=currency)
