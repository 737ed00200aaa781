"""The admin in a real browser, as operators use it: a supervisor reconciles, an auditor is
refused, a report downloads, and the dashboard reads in English and in French.

Waiting on the merge of issue 15's other parts: the dashboard (#dashboard-unreconciled,
#dashboard-chart), the "to reconcile" filter, the report's page (#report-download-csv,
#report-download-xlsx) and the roles' groups (their migration)."""

import csv
import datetime as dt
import io
import os
import re
from decimal import Decimal

import openpyxl
import pytest
import time_machine
from django.utils import timezone, translation
from playwright.sync_api import Page, expect

from auditing.models import AuditEntry
from payments.models import CashSession, SessionStatus
from payments.services import (
    session_close,
    session_expected_balance,
    session_open,
    transaction_record,
)
from reporting.models import CommissionReport
from reporting.periods import period_bounds
from reporting.selectors import commission_figures_select
from reporting.services import commission_report_store
from tests.browser.conftest import SCREENSHOTS
from tests.factories import AgentFactory, CashSessionFactory
from tests.reporting.helpers import october_takings, three_agents

# Transactional: the live server's thread reads what the test commits. The marker (not only
# live_server's implicit request) lets the flush after each test pass the audit trigger.
pytestmark = pytest.mark.django_db(transaction=True)

UTF8_BOM = b"\xef\xbb\xbf"


@pytest.fixture
def sessions(config) -> dict[str, CashSession]:
    """One session in each state, opened two days ago; two wait for reconciliation, one of
    them never counted."""
    opened = timezone.now() - dt.timedelta(days=2)
    return {
        "counted": CashSessionFactory(closed=True, opened_at=opened),
        "uncounted": CashSessionFactory(uncounted=True, opened_at=opened),
        "open": CashSessionFactory(),
        "reconciled": CashSessionFactory(
            closed=True, status=SessionStatus.RECONCILED, opened_at=opened
        ),
    }


@pytest.fixture
def month_of_takings(config) -> None:
    """A month an operator would recognise, for the chart and the screenshots: an agent's
    sessions every few days, recorded and closed through the services, some of them short."""
    agent = AgentFactory()
    today = timezone.now()
    for days_ago, taxes, short in (
        (27, ("150000.00", "82500.00"), "0.00"),
        (23, ("240000.00",), "0.00"),
        (18, ("96000.00", "120000.00", "45000.00"), "5000.00"),
        (12, ("310000.00",), "0.00"),
        (8, ("175000.00", "60000.00"), "0.00"),
        (3, ("220000.00", "90000.00"), "12500.00"),
    ):
        with time_machine.travel(today - dt.timedelta(days=days_ago), tick=False):
            session = session_open(agent=agent, opening_balance=Decimal("0.00"), actor=agent.user)
            for index, tax in enumerate(taxes):
                transaction_record(
                    session=session,
                    payer_reference=f"NIF-{days_ago}-{index}",
                    tax_amount=Decimal(tax),
                    amount_tendered=Decimal(tax),
                    actor=agent.user,
                )
            counted = session_expected_balance(session=session) - Decimal(short)
            session_close(session=session, counted_cash=counted, actor=agent.user)


def audit_head() -> int:
    return AuditEntry.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


def reconcile_from_session_page(page: Page, *, counted_cash: str, notes: str) -> None:
    """On a session's page: follow "Reconcile…", fill the form, submit."""
    page.click("#content a[href$='/reconcile/']")
    page.fill("#id_counted_cash", counted_cash)
    page.fill("#id_notes", notes)
    page.click("#content form input[type=submit]")


def save_screenshot(page: Page, name: str) -> None:
    """For the people who look at the pages: var/screenshots/<name>.png (BROWSER_SCREENSHOTS=1)."""
    if os.environ.get("BROWSER_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def test_the_admin_is_styled_by_its_own_static_files_and_asks_nothing_of_the_network(
    login, group_member, live_server
):
    page = login(group_member("Supervisors"))
    responses = []
    page.on("response", lambda response: responses.append(response))

    page.reload()
    save_screenshot(page, "index-en")

    # The admin must work offline: every request goes to our own server, and finds its file.
    assert {response.url.split("/")[2] for response in responses} == {live_server.url.split("/")[2]}
    static = [response for response in responses if "/static/" in response.url]
    assert any(response.url.endswith("admin/css/base.css") for response in static)
    assert [response.url for response in static if response.status != 200] == []
    assert page.locator("#header").evaluate("el => getComputedStyle(el).display") == "flex"


def test_a_supervisor_reconciles_an_uncounted_session_through_its_page(
    login, group_member, sessions
):
    session = sessions["uncounted"]
    page = login(group_member("Supervisors"))

    page.goto(f"/admin/payments/cashsession/{session.pk}/change/")
    reconcile_from_session_page(page, counted_cash="9500.00", notes="500 short, agent explained")

    expect(page.locator(".messagelist .success")).to_contain_text(session.number)
    session.refresh_from_db()
    assert session.status == SessionStatus.RECONCILED
    assert session.counted_balance == Decimal("9500.00")
    assert session.discrepancy == Decimal("-500.00")
    assert session.reconciliation_notes == "500 short, agent explained"
    entry = AuditEntry.objects.get(action="session.reconciled", subject_id=str(session.pk))
    assert entry.actor == session.reconciled_by
    assert entry.actor.groups.filter(name="Supervisors").exists()


def test_a_refused_reconciliation_shows_why_once_and_writes_nothing(login, group_member, sessions):
    session = sessions["uncounted"]
    page = login(group_member("Supervisors"))
    head = audit_head()

    page.goto(f"/admin/payments/cashsession/{session.pk}/change/")
    reconcile_from_session_page(page, counted_cash="9500.00", notes="")

    # A discrepancy beyond the tolerance needs notes: the form says so, once.
    expect(page.locator(".errornote, .errorlist")).to_have_count(1)
    expect(page.locator(".errorlist")).to_contain_text("notes")
    session.refresh_from_db()
    assert session.status == SessionStatus.CLOSED
    assert session.counted_balance is None
    assert audit_head() == head


def test_a_supervisor_sees_the_unreconciled_count_and_the_chart_on_the_dashboard(
    login, group_member, sessions
):
    waiting = CashSession.objects.filter(status=SessionStatus.CLOSED).count()
    page = login(group_member("Supervisors"))

    count = page.locator("#dashboard-unreconciled")
    expect(count).to_be_visible()
    assert re.search(r"\d+", count.inner_text()).group() == str(waiting)
    chart = page.locator("#dashboard-chart")
    expect(chart).to_be_visible()
    # Drawn in the page (an inline SVG), not fetched from elsewhere.
    assert chart.evaluate(
        "el => el.tagName.toLowerCase() === 'svg' || el.querySelector('svg') !== null"
    )


def test_a_supervisor_reconciles_from_the_to_reconcile_list(login, group_member, sessions):
    waiting = [sessions["counted"], sessions["uncounted"]]
    page = login(group_member("Supervisors"))

    page.goto("/admin/payments/cashsession/?attention=to_reconcile")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(len(waiting))
    for session in waiting:
        expect(rows.filter(has_text=session.number)).to_have_count(1)

    counted = sessions["counted"]
    rows.filter(has_text=counted.number).get_by_role("link", name=counted.number).click()
    page.click("#content a[href$='/reconcile/']")
    # Counted at closing: only the notes remain to give (here none, no discrepancy).
    expect(page.locator("#id_counted_cash")).to_have_count(0)
    page.click("#content form input[type=submit]")
    expect(page.locator(".messagelist .success")).to_contain_text(counted.number)

    page.goto("/admin/payments/cashsession/?attention=to_reconcile")
    expect(rows).to_have_count(1)
    expect(rows.filter(has_text=counted.number)).to_have_count(0)
    counted.refresh_from_db()
    assert counted.status == SessionStatus.RECONCILED


def test_an_auditor_is_refused_a_reconciliation_and_nothing_is_written(
    login, group_member, sessions, live_server
):
    session = sessions["uncounted"]
    page = login(group_member("Auditors"))
    head = audit_head()
    reconcile_url = f"/admin/payments/cashsession/{session.pk}/reconcile/"

    # Whether or not auditors may read sessions, the page offers no reconciliation.
    session_page = page.goto(f"/admin/payments/cashsession/{session.pk}/change/")
    if session_page.status == 200:
        expect(page.locator(f"a[href='{reconcile_url}']")).to_have_count(0)
    else:
        assert session_page.status == 403
    assert page.goto(reconcile_url).status == 403
    # A hand-made POST, with a valid CSRF token, is refused too.
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    posted = page.request.post(
        reconcile_url,
        form={"csrfmiddlewaretoken": token, "counted_cash": "10000.00", "notes": "x"},
        headers={"Referer": f"{live_server.url}{reconcile_url}"},
    )

    assert posted.status == 403
    session.refresh_from_db()
    assert session.status == SessionStatus.CLOSED
    assert session.counted_balance is None
    assert audit_head() == head


# The supervisor of the walk-through, and the auditor who reads reports too.
@pytest.mark.parametrize("role", ["Supervisors", "Auditors"])
def test_a_stored_report_downloads_as_csv_and_xlsx_from_its_page(login, group_member, config, role):
    october_takings(three_agents())
    start, end = period_bounds(year=2026, month=10)
    report, _ = commission_report_store(
        year=2026,
        month=10,
        trigger="manual",
        generated_at=timezone.now(),
        figures=commission_figures_select(start=start, end=end),
        recipients=["chief@example.com"],
    )
    lines = list(report.lines.values_list("agent_code", "agent_name", "commission_earned"))
    assert lines, "the report must have rows for the downloads to show"
    page = login(group_member(role))
    page.goto(f"/admin/reporting/commissionreport/{report.pk}/change/")

    with page.expect_download() as csv_download:
        page.click("#report-download-csv")
    content = csv_download.value.path().read_bytes()
    with page.expect_download() as xlsx_download:
        page.click("#report-download-xlsx")
    # Playwright stores a download under a name without extension, which openpyxl refuses.
    workbook = openpyxl.load_workbook(io.BytesIO(xlsx_download.value.path().read_bytes()))

    assert csv_download.value.suggested_filename.endswith(".csv")
    # A French Excel reads UTF-8 only after a byte-order mark, and splits on ";".
    assert content.startswith(UTF8_BOM)
    csv_rows = list(csv.reader(io.StringIO(content[len(UTF8_BOM) :].decode()), delimiter=";"))
    assert len(csv_rows[0]) > 1
    assert xlsx_download.value.suggested_filename.endswith(".xlsx")
    xlsx_rows = [
        [cell for cell in row if cell is not None]
        for sheet in workbook.worksheets
        for row in sheet.iter_rows(values_only=True)
    ]
    for code, name, commission in lines:
        assert any(row[:2] == [code, name] for row in csv_rows), code
        # Amounts are numbers in the workbook, so a spreadsheet can add them up.
        assert any({code, name, commission} <= set(row) for row in xlsx_rows), code
    assert CommissionReport.objects.count() == 1


def test_the_dashboard_speaks_french_to_a_french_browser(
    login, group_member, sessions, month_of_takings
):
    supervisor = group_member("Supervisors")
    english = login(supervisor, language="en")
    french = login(supervisor, language="fr")
    # The dashboard's title: the first heading above the unreconciled count.
    heading = """el => {
        for (let n = el; n; n = n.parentElement) {
            const h = n.querySelector('h2, h3');
            if (h) return h.textContent.trim();
        }
        return null;
    }"""
    english_title = english.locator("#dashboard-unreconciled").evaluate(heading)
    french_title = french.locator("#dashboard-unreconciled").evaluate(heading)

    expect(french.locator("html")).to_have_attribute("lang", "fr")
    assert english_title and french_title
    with translation.override("fr"):
        assert french_title == translation.gettext(english_title) != english_title
    save_screenshot(english, "dashboard-en")
    save_screenshot(french, "dashboard-fr")
