"""What every CSV a person may open in a spreadsheet shares."""

# A spreadsheet runs a cell starting with one of these as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A text cell of a CSV defused with a leading quote, which a spreadsheet shows as
    text and does not display; numbers and other values as they are."""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return f"'{value}"
    return value
