"""The session, payment and commission lists as operators read them: money formatted, the
discrepancy coloured against the tolerance, the "attention" filter the dashboard links to,
and a query count that does not grow with the rows."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from payments.models import SessionStatus, SystemConfiguration
from tests.factories import (
    AgentFactory,
    CashSessionFactory,
    CashTransactionFactory,
    CommissionFactory,
    StaffUserFactory,
)

pytestmark = pytest.mark.django_db

SESSIONS = reverse("admin:payments_cashsession_changelist")


def cells(response, field: str) -> list[str]:
    html = response.content.decode()
    pattern = rf'<t[dh] class="field-{field}[^"]*">(?:<a [^>]*>)?(.*?)(?:</a>)?</t[dh]>'
    return re.findall(pattern, html)


def listed(response) -> list[str]:
    """Session numbers in the order the list shows them."""
    return cells(response, "number")


def closed(number: str, *, counted: str | None, expected: str = "1000.00", hours_ago: int = 10):
    closed_at = timezone.now() - dt.timedelta(hours=hours_ago)
    return CashSessionFactory(
        number=number,
        closed=True,
        opened_at=closed_at - dt.timedelta(hours=8),
        closed_at=closed_at,
        opening_balance=Decimal(expected),
        counted_balance=None if counted is None else Decimal(counted),
    )


@pytest.fixture
def tolerance_500(config):
    config.reconciliation_tolerance = Decimal("500.00")
    config.save()
    return config


def test_a_discrepancy_is_red_when_short_amber_when_over_and_plain_within_tolerance(
    admin_client, tolerance_500
):
    closed("CS-SHORT", counted="400.00")  # 600 short
    closed("CS-OVER", counted="1600.00")  # 600 over
    closed("CS-SMALL-SHORT", counted="600.00")  # 400 short, within
    closed("CS-SMALL-OVER", counted="1500.00")  # 500 over, exactly the tolerance
    closed("CS-EVEN", counted="1000.00")

    response = admin_client.get(SESSIONS, {"o": "1"})  # by number

    shown = dict(zip(listed(response), cells(response, "discrepancy_shown"), strict=True))
    assert shown["CS-SHORT"] == '<span class="discrepancy-short" title="short">-600.00 MGA</span>'
    assert shown["CS-OVER"] == '<span class="discrepancy-over" title="over">600.00 MGA</span>'
    assert shown["CS-SMALL-SHORT"] == "-400.00 MGA"
    assert shown["CS-SMALL-OVER"] == "500.00 MGA"
    assert shown["CS-EVEN"] == "0.00 MGA"
    assert "payments/admin/lists.css" in response.content.decode()


def test_an_auto_closed_uncounted_session_is_marked_and_never_shows_a_zero(admin_client):
    CashSessionFactory(number="CS-AUTO", uncounted=True)

    response = admin_client.get(SESSIONS)

    assert "closed automatically" in cells(response, "status_shown")[0]
    assert "not counted" in cells(response, "counted")[0]
    assert "not counted" in cells(response, "discrepancy_shown")[0]
    assert "0.00" not in cells(response, "discrepancy_shown")[0]


def test_amounts_use_french_separators_for_a_french_reader(admin_client):
    closed("CS-FR", counted="1234567.50", expected="1234567.50")

    response = admin_client.get(SESSIONS, headers={"accept-language": "fr"})

    # French groups thousands with a (non-breaking) space and uses a decimal comma.
    [expected] = cells(response, "expected")
    assert re.fullmatch(r"1\s234\s567,50 MGA", expected)
    assert "écart" in response.content.decode().lower()


@pytest.fixture
def every_kind_of_session(config):
    now = timezone.now()
    timeout = dt.timedelta(hours=config.session_timeout_hours)
    CashSessionFactory(number="OPEN-FRESH", opened_at=now - timeout + dt.timedelta(minutes=5))
    CashSessionFactory(number="OPEN-LATE", opened_at=now - timeout - dt.timedelta(minutes=5))
    CashSessionFactory(number="OPEN-LATER", opened_at=now - timeout - dt.timedelta(days=2))
    closed("CLOSED-NEW", counted="1000.00", hours_ago=1)
    closed("CLOSED-OLD", counted="990.00", hours_ago=50)
    CashSessionFactory(
        number="CLOSED-UNCOUNTED",
        uncounted=True,
        opened_at=now - dt.timedelta(hours=30),
        closed_at=now - dt.timedelta(hours=20),
    )
    CashSessionFactory(
        number="RECONCILED",
        closed=True,
        status=SessionStatus.RECONCILED,
        opened_at=now - dt.timedelta(days=3),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Oldest first: the session waiting longest is the first to act on.
        ("to_reconcile", ["CLOSED-OLD", "CLOSED-UNCOUNTED", "CLOSED-NEW"]),
        ("past_timeout", ["OPEN-LATER", "OPEN-LATE"]),
        ("not_counted", ["CLOSED-UNCOUNTED"]),
    ],
)
def test_each_attention_filter_lists_exactly_its_sessions(
    admin_client, every_kind_of_session, value, expected
):
    response = admin_client.get(SESSIONS, {"attention": value})

    assert response.status_code == 200
    assert listed(response) == expected


def test_the_past_timeout_filter_follows_the_configured_timeout(
    admin_client, every_kind_of_session, config
):
    config.session_timeout_hours = 72
    config.save()

    response = admin_client.get(SESSIONS, {"attention": "past_timeout"})

    assert listed(response) == []


def test_an_unknown_attention_value_is_refused_without_an_error_page(
    admin_client, every_kind_of_session
):
    response = admin_client.get(SESSIONS, {"attention": "everything"})

    # The admin's answer to a bad filter: back to the list with ?e=1, never a 500.
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_the_attention_filter_is_offered_in_the_sidebar(admin_client, every_kind_of_session):
    content = admin_client.get(SESSIONS, headers={"accept-language": "fr"}).content.decode()

    assert "?attention=to_reconcile" in content
    assert "?attention=past_timeout" in content
    assert "?attention=not_counted" in content
    assert "À rapprocher" in content


def session_list_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(SESSIONS)
    assert response.status_code == 200
    return len(queries)


def test_the_session_list_query_count_does_not_grow_with_the_rows(admin_client, config):
    closed("CS-ONE", counted="900.00")
    few = session_list_queries(admin_client)
    for index in range(15):
        CashSessionFactory(
            number=f"CS-MORE-{index}", agent=AgentFactory(), closed=True, opened_at=timezone.now()
        )
        CashSessionFactory(number=f"CS-AUTO-{index}", uncounted=True)

    many = session_list_queries(admin_client)

    assert many == few


def test_the_commission_list_query_count_does_not_grow_with_the_rows(admin_client, config):
    url = reverse("admin:payments_commission_changelist")
    CommissionFactory()
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    CommissionFactory.create_batch(10, paid=True)
    with CaptureQueriesContext(connection) as many:
        admin_client.get(url)

    assert len(many) == len(few)


def test_a_session_page_offers_back_to_the_list_not_close(admin_client):
    session = CashSessionFactory(closed=True)
    url = reverse("admin:payments_cashsession_change", args=[session.pk])

    english = admin_client.get(url).content.decode()
    french = admin_client.get(url, headers={"accept-language": "fr"}).content.decode()

    assert 'class="closelink">Back to the list</a>' in english
    assert ">Close</a>" not in english
    assert 'class="closelink">Retour à la liste</a>' in french


def test_a_session_page_shows_its_amounts_formatted_and_its_payments(admin_client):
    session = CashSessionFactory(
        uncounted=True, opening_balance=Decimal("25000.00"), expected_balance=Decimal("1075500.00")
    )
    url = reverse("admin:payments_cashsession_change", args=[session.pk])

    english = admin_client.get(url).content.decode()
    french = admin_client.get(url, headers={"accept-language": "fr"}).content.decode()

    assert "1,075,500.00 MGA" in english
    assert "25,000.00 MGA" in english
    assert "1075500.00" not in english
    assert "closed automatically" in english
    assert "not counted" in english
    assert re.search(r"1\s075\s500,00 MGA", french)
    assert "Fond de caisse" in french or "fond de caisse" in french
    assert "Clôture" in french


def test_the_reconcile_page_reads_in_french(admin_client):
    session = CashSessionFactory(uncounted=True, expected_balance=Decimal("1500.00"))
    url = reverse("admin:payments_cashsession_reconcile", args=[session.pk])

    french = admin_client.get(url, headers={"accept-language": "fr"}).content.decode()

    assert 'value="Rapprocher"' in french
    assert "Tolérance" in french
    assert "non compté" in french
    assert re.search(r"1\s500,00 MGA", french)
    assert "Obligatoire quand la session de caisse a été clôturée sans comptage." in french


def test_the_wide_lists_give_the_navigation_sidebar_s_width_to_their_columns(admin_client):
    CashSessionFactory(closed=True)

    listing = admin_client.get(SESSIONS).content.decode()
    page = admin_client.get(
        reverse("admin:payments_cashsession_change", args=[CashSessionFactory().pk])
    ).content.decode()

    assert 'id="nav-sidebar"' not in listing
    assert 'id="nav-sidebar"' in page


def test_the_to_reconcile_list_marks_the_column_it_is_sorted_by(
    admin_client, every_kind_of_session
):
    html = admin_client.get(SESSIONS, {"attention": "to_reconcile"}).content.decode()

    sorted_columns = re.findall(r'<th scope="col" class="([^"]*sorted[^"]*)"', html)
    assert len(sorted_columns) == 1
    assert "column-closed" in sorted_columns[0] and "ascending" in sorted_columns[0]


@pytest.mark.parametrize(
    ("kind", "sections"),
    [
        ({}, []),
        ({"closed": True}, ["Closing"]),
        ({"closed": True, "status": SessionStatus.RECONCILED}, ["Closing", "Reconciliation"]),
    ],
)
def test_a_session_page_shows_the_stages_the_session_reached(admin_client, kind, sections):
    session = CashSessionFactory(**kind)

    html = admin_client.get(
        reverse("admin:payments_cashsession_change", args=[session.pk])
    ).content.decode()

    assert re.findall(r"<h2[^>]*>(Closing|Reconciliation)</h2>", html) == sections


def test_payment_and_commission_pages_show_their_amounts_formatted(admin_client):
    commission = CommissionFactory(paid=True, rate=Decimal("2.50"))
    payment = commission.cash_transaction

    payment_page = admin_client.get(
        reverse("admin:payments_cashtransaction_change", args=[payment.pk])
    ).content.decode()
    commission_page = admin_client.get(
        reverse("admin:payments_commission_change", args=[commission.pk])
    ).content.decode()

    assert f"{payment.tax_amount:,.2f} MGA" in payment_page
    assert f"{payment.amount_tendered:,.2f} MGA" in payment_page
    assert "5,000.00 MGA" in commission_page
    assert "2.50 %" in commission_page
    assert "125.00 MGA" in commission_page


def test_the_payment_list_query_count_does_not_grow_with_the_rows(admin_client, config):
    url = reverse("admin:payments_cashtransaction_changelist")
    CashTransactionFactory()
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    CashTransactionFactory.create_batch(10)
    with CaptureQueriesContext(connection) as many:
        admin_client.get(url)

    assert len(many) == len(few)


# As typed, and as the page shows amounts: grouped by a space or a no-break space.
@pytest.mark.parametrize("typed", ["1500,00", "1 500,00", "1\xa0500,00", "1\u202f500,00"])
def test_a_french_operator_reconciles_with_a_decimal_comma(admin_client, typed):
    session = CashSessionFactory(uncounted=True, expected_balance=Decimal("1500.00"))

    response = admin_client.post(
        reverse("admin:payments_cashsession_reconcile", args=[session.pk]),
        {"counted_cash": typed, "notes": ""},
        headers={"accept-language": "fr"},
    )

    assert response.status_code == 302
    session.refresh_from_db()
    assert session.status == SessionStatus.RECONCILED
    assert session.counted_balance == Decimal("1500.00")


def test_the_reconcile_page_of_no_session_is_not_found(admin_client):
    for object_id in ("abc", "999999"):
        url = f"/admin/payments/cashsession/{object_id}/reconcile/"
        assert admin_client.get(url).status_code == 404


def test_a_list_opened_on_a_fresh_database_writes_no_configuration(admin_client):
    SystemConfiguration.objects.all().delete()

    assert admin_client.get(reverse("admin:payments_cashsession_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:payments_cashtransaction_changelist")).status_code == 200

    assert not SystemConfiguration.objects.exists()


def test_the_reconcile_link_is_offered_only_to_whoever_may_reconcile(client, admin_client):
    session = CashSessionFactory(uncounted=True, expected_balance=Decimal("1500.00"))
    page = reverse("admin:payments_cashsession_change", args=[session.pk])
    viewer = StaffUserFactory()
    viewer.user_permissions.set(Permission.objects.filter(codename="view_cashsession"))
    client.force_login(viewer)

    assert "/reconcile/" in admin_client.get(page).content.decode()
    viewed = client.get(page)
    assert viewed.status_code == 200
    assert "/reconcile/" not in viewed.content.decode()
