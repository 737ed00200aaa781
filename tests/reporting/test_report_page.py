"""A stored commission report's own page and its downloads: the figures as stored, a
totals row, a CSV a French Excel opens correctly and an XLSX with numbers as numbers."""

import csv
import io
import re
from decimal import Decimal

import openpyxl
import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from reporting.periods import period_bounds
from reporting.selectors import commission_figures_select
from reporting.services import commission_report_store
from tests.factories import AgentFactory, StaffUserFactory
from tests.reporting.helpers import NOW, local, october_takings, takings, three_agents

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]

BOM = "\ufeff".encode()


@pytest.fixture
def report(clock, config):
    agents = three_agents()
    october_takings(agents)
    # An accented name, and one a spreadsheet would run as a formula.
    accented = AgentFactory(code="AG0009", full_name="=Hérisoa Rasoa")
    takings(accented, local(2026, 10, 9, 9, 0), "1234.50")
    start, end = period_bounds(year=2026, month=10)
    stored, _ = commission_report_store(
        year=2026,
        month=10,
        trigger="manual",
        generated_at=timezone.now(),
        figures=commission_figures_select(start=start, end=end),
        recipients=[],
    )
    return stored


def page_of(client, report, **headers):
    response = client.get(
        reverse("admin:reporting_commissionreport_change", args=[report.pk]), headers=headers
    )
    assert response.status_code == 200
    return response.content.decode()


def section(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    return html[start : html.index("</div>", start)]


def texts(html: str) -> list[str]:
    """The cells' texts, tags dropped, in page order."""
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", html, re.S)
    ]


def test_the_report_page_shows_the_overall_figures_and_by_status(admin_client, report):
    html = page_of(admin_client, report)

    overall = texts(section(html, "report-overall"))
    assert overall == [
        "Transactions (completed payments)",
        "4",
        "Voided payments (not counted)",
        "1",
        "Tax collected",
        "34,234.50 MGA",
        "Total commissions (earned = pending + paid)",
        f"{report.commissions_total:,.2f} MGA",
    ]
    by_status = texts(section(html, "report-by-status"))
    assert by_status[3:] == [
        "Pending",
        str(report.pending_count),
        f"{report.pending_amount:,.2f} MGA",
        "Paid",
        "1",
        "200.00 MGA",
        "Cancelled",
        "1",
        "100.00 MGA",
    ]


def test_the_report_page_lists_each_agent_and_a_totals_row_equal_to_the_report(
    admin_client, report
):
    by_agent = section(page_of(admin_client, report), "report-by-agent")

    rows = re.findall(r'<tr class="report-line">(.*?)</tr>', by_agent, re.S)
    assert [texts(row)[:3] for row in rows] == [
        ["AG0001", "Hery Rakoto", "2"],
        ["AG0002", "Voahirana Rabe", "1"],
        ["AG0009", "=Hérisoa Rasoa", "1"],
    ]
    [total] = re.findall(r'<tr class="report-total">(.*?)</tr>', by_agent, re.S)
    assert texts(total) == [
        "Total",
        str(report.transactions),
        f"{report.tax_collected:,.2f} MGA",
        f"{report.commissions_total:,.2f} MGA",
        f"{report.pending_amount:,.2f} MGA",
        f"{report.paid_amount:,.2f} MGA",
        f"{report.cancelled_amount:,.2f} MGA",
    ]


def test_the_report_page_reads_in_french_with_french_separators(admin_client, report):
    html = page_of(admin_client, report, accept_language="fr")

    assert "<h2>Par statut</h2>" in html
    assert "<h2>Vue d'ensemble</h2>" in html or "<h2>Vue d&#x27;ensemble</h2>" in html
    assert re.search(r"34\s234,50 MGA", html)
    assert "Télécharger le CSV" in html


def test_the_report_page_links_both_downloads(admin_client, report):
    html = page_of(admin_client, report)

    csv_url = reverse("admin:reporting_commissionreport_csv", args=[report.pk])
    xlsx_url = reverse("admin:reporting_commissionreport_xlsx", args=[report.pk])
    assert f'id="report-download-csv" href="{csv_url}"' in html
    assert f'id="report-download-xlsx" href="{xlsx_url}"' in html


def download(client, report, kind: str, **headers):
    return client.get(
        reverse(f"admin:reporting_commissionreport_{kind}", args=[report.pk]), headers=headers
    )


def test_the_csv_is_utf8_with_a_byte_order_mark_semicolons_and_a_decimal_point_in_english(
    admin_client, report
):
    response = download(admin_client, report, "csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="commission-report-2026-10.csv"'
    )
    assert response.content.startswith(BOM)
    rows = list(csv.reader(io.StringIO(response.content[len(BOM) :].decode()), delimiter=";"))
    assert rows[0][:4] == ["Agent code", "Agent name", "Transactions", "Tax collected (MGA)"]
    assert rows[1] == [
        *("AG0001", "Hery Rakoto", "2"),
        *("30000.00", "600.00", "400.00", "200.00", "100.00"),
    ]
    # The formula is defused; the accent survives.
    assert rows[3][:2] == ["AG0009", "'=Hérisoa Rasoa"]
    assert len(rows) == 4


def test_the_french_csv_uses_a_decimal_comma_and_no_thousands_separator(admin_client, report):
    response = download(admin_client, report, "csv", accept_language="fr")

    assert response.content.startswith(BOM)
    rows = list(csv.reader(io.StringIO(response.content[len(BOM) :].decode()), delimiter=";"))
    assert rows[0][:2] == ["Code agent", "Nom de l’agent"]
    assert rows[1][2:] == ["2", "30000,00", "600,00", "400,00", "200,00", "100,00"]
    assert rows[3][3] == "1234,50"


def test_the_xlsx_has_a_bold_header_numbers_as_numbers_and_the_report_totals(admin_client, report):
    response = download(admin_client, report, "xlsx")

    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        'attachment; filename="commission-report-2026-10.xlsx"'
    )
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "Agent code"
    assert all(cell.font.bold for cell in sheet[1])
    assert rows[1][:3] == ("AG0001", "Hery Rakoto", 2)
    assert isinstance(rows[1][3], int | float) and Decimal(str(rows[1][3])) == Decimal("30000")
    assert sheet.cell(row=2, column=4).number_format == "#,##0.00"
    total = rows[-1]
    assert total[0] == "Total"
    assert all(cell.font.bold for cell in sheet[sheet.max_row])
    assert total[2] == report.transactions
    assert [Decimal(str(value)).quantize(Decimal("0.01")) for value in total[3:]] == [
        report.tax_collected,
        report.commissions_total,
        report.pending_amount,
        report.paid_amount,
        report.cancelled_amount,
    ]
    # The totals row adds up the agents' rows.
    for column in range(2, 8):
        assert sum(Decimal(str(row[column])) for row in rows[1:-1]) == Decimal(str(total[column]))


def test_the_xlsx_keeps_a_formula_like_name_as_text_and_drops_control_characters(
    admin_client, report
):
    # A name pasted from Word carries a vertical tab, which openpyxl refuses outright.
    report.lines.filter(agent_code="AG0001").update(agent_name="Hery\x0bRakoto")

    response = download(admin_client, report, "xlsx")

    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    names = {row[0].value: row[1] for row in sheet.iter_rows(min_row=2)}
    assert names["AG0001"].value == "HeryRakoto"
    # Text, not a formula: an XLSX cell says which it is, so no quote is needed.
    assert (names["AG0009"].value, names["AG0009"].data_type) == ("=Hérisoa Rasoa", "s")


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_staff_user_without_the_report_permission_cannot_download(client, report, kind):
    client.force_login(StaffUserFactory())

    assert download(client, report, kind).status_code == 403


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_the_view_permission_alone_is_enough_to_download(client, report, kind):
    user = StaffUserFactory()
    user.user_permissions.add(Permission.objects.get(codename="view_commissionreport"))
    client.force_login(user)

    assert download(client, report, kind).status_code == 200


def test_a_download_of_a_report_that_does_not_exist_is_not_found(admin_client, report):
    for object_id in (report.pk + 1000, "not-a-number"):
        url = reverse("admin:reporting_commissionreport_csv", args=[object_id])
        assert admin_client.get(url).status_code == 404


def test_the_report_list_shows_formatted_amounts(admin_client, report):
    html = admin_client.get(reverse("admin:reporting_commissionreport_changelist")).text

    assert f"{report.tax_collected:,.2f} MGA" in html
    assert f"{report.commissions_total:,.2f} MGA" in html
    assert f"{report.pending_amount:,.2f} MGA" in html


def test_the_report_page_lists_its_recipients_as_addresses(admin_client, report):
    report.recipients = ["chief@example.com", "boss@example.com"]
    report.save()

    html = page_of(admin_client, report)

    assert "chief@example.com, boss@example.com" in html
