"""``{{ amount|money:currency }}``: an amount as the report shows it, in the language the
template renders in (an email's language, not the caller's)."""

from decimal import Decimal

from django import template

from payments.money import format_money

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str) -> str:
    return format_money(amount, currency=currency)
