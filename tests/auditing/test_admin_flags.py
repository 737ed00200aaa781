"""What a verification flagged, where operators look: the run page names the row a row
finding is about, and the audit list marks and filters the entries a run reported."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from auditing.chain import Violation, ViolationKind
from auditing.models import VerificationFinding
from tests.auditing.test_admin import append, content_mismatch, run_url, stored_run

pytestmark = pytest.mark.django_db

ENTRIES = reverse("admin:auditing_auditentry_changelist")


def flag_cells(response) -> dict[int, str]:
    """Each listed entry's sequence and its flag cell."""
    html = response.content.decode()
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    shown = {}
    for row in rows:
        sequence = re.search(r'class="field-sequence"><a [^>]*>(\d+)</a>', row)
        flag = re.search(r'<td class="field-flag">(.*?)</td>', row, re.S)
        if sequence and flag:
            shown[int(sequence.group(1))] = flag.group(1)
    return shown


def test_the_run_page_names_the_table_row_and_field_of_a_row_finding(admin_client):
    append(1)
    run = stored_run(
        [
            Violation(
                kind=ViolationKind.ROW_DIFFERS,
                sequence=1,
                detail="the row differs from its audited state",
                expected="1000.00",
                stored="10.00",
                table="payments_cashsession",
                row="42",
                field="counted_balance",
            )
        ]
    )

    page = admin_client.get(run_url(run)).text
    french = admin_client.get(run_url(run), headers={"accept-language": "fr"}).text

    assert "<code>payments_cashsession</code> / 42 / <code>counted_balance</code>" in page
    assert "row differs from its audited state" in page
    assert "Table / ligne / champ" in french
    with translation.override("fr"):
        kind = str(VerificationFinding.KIND_LABELS[ViolationKind.ROW_DIFFERS])
    assert kind != "row differs from its audited state"
    assert kind in french


def test_the_audit_list_marks_the_entries_a_run_flagged(admin_client):
    append(4)
    stored_run([content_mismatch(2), content_mismatch(4)])

    response = admin_client.get(ENTRIES)

    flags = flag_cells(response)
    assert set(flags) == {1, 2, 3, 4}
    assert [sequence for sequence, cell in flags.items() if "audit-flagged" in cell] == [4, 2]
    findings = reverse("admin:auditing_verificationfinding_changelist")
    assert f'href="{findings}?q=2"' in flags[2]
    assert flags[1] == ""  # nothing to see: no mark, not even a dash


@pytest.mark.parametrize(("value", "expected"), [("yes", [4, 2]), ("no", [3, 1])])
def test_the_flagged_filter_lists_exactly_the_flagged_or_the_other_entries(
    admin_client, value, expected
):
    append(4)
    stored_run([content_mismatch(2), content_mismatch(4)])
    stored_run([content_mismatch(2)])  # flagged twice, listed once

    response = admin_client.get(ENTRIES, {"flagged": value})

    assert list(flag_cells(response)) == expected


def test_the_flagged_filter_reads_in_french(admin_client):
    append(1)

    html = admin_client.get(ENTRIES, headers={"accept-language": "fr"}).text

    assert "?flagged=yes" in html
    assert "signalée par une vérification" in html.lower()


def test_an_unknown_flagged_value_is_refused_without_an_error_page(admin_client):
    append(1)

    response = admin_client.get(ENTRIES, {"flagged": "maybe"})

    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_the_audit_list_query_count_does_not_grow_with_flags(admin_client):
    append(2)
    stored_run([content_mismatch(1)])
    with CaptureQueriesContext(connection) as few:
        admin_client.get(ENTRIES)
    append(30)
    stored_run([content_mismatch(n) for n in range(3, 30, 2)])
    with CaptureQueriesContext(connection) as many:
        admin_client.get(ENTRIES)

    assert len(many) == len(few)


def test_a_flagged_entry_page_says_so(admin_client):
    [entry] = append(1)
    stored_run([content_mismatch(entry.sequence)])

    page = admin_client.get(reverse("admin:auditing_auditentry_change", args=[entry.sequence]))

    assert page.status_code == 200
    assert "audit-flagged" in page.text
