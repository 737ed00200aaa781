"""The commission report's CSV: one row per agent, amounts as plain decimals, and no cell a
spreadsheet would run as a formula."""

import csv
import io

import pytest

from reporting.csv import commission_report_csv
from reporting.periods import period_bounds
from reporting.selectors import commission_figures_select
from tests.factories import AgentFactory
from tests.reporting.helpers import CSV_HEADER, NOW, local, october_takings, takings, three_agents

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]


def october_csv() -> list[list[str]]:
    start, end = period_bounds(year=2026, month=10)
    content = commission_report_csv(figures=commission_figures_select(start=start, end=end))
    return list(csv.reader(io.StringIO(content)))


def test_one_row_per_agent_with_plain_decimal_amounts(clock, config):
    october_takings(three_agents())

    assert october_csv() == [
        CSV_HEADER,
        ["AG0001", "Hery Rakoto", "2", "30000.00", "600.00", "400.00", "200.00", "100.00"],
        ["AG0002", "Voahirana Rabe", "1", "3000.00", "150.00", "150.00", "0.00", "0.00"],
    ]


def test_the_header_names_the_configured_currency(clock, config):
    config.currency_code = "EUR"
    config.save()

    assert october_csv() == [[column.replace("MGA", "EUR") for column in CSV_HEADER]]


@pytest.mark.parametrize(
    ("name", "cell"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+261 34", "'+261 34"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("Hery = Rakoto", "Hery = Rakoto"),
    ],
)
def test_a_csv_cell_that_a_spreadsheet_would_run_as_a_formula_is_defused(clock, config, name, cell):
    agent = AgentFactory(code="AG0009", full_name=name)
    takings(agent, local(2026, 10, 9, 9, 0), "1000.00")

    [_, row] = october_csv()

    assert row[:2] == ["AG0009", cell]
