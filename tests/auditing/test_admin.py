"""The audit trail's admin pages: read-only, the findings of a run as a table, its CSV, and
a superuser's acknowledgement of a checkpoint finding."""

import csv
import dataclasses
import datetime as dt
import io

import pytest
import time_machine
from django.db import connection
from django.urls import reverse

from auditing.chain import Violation, ViolationKind
from auditing.exports import FINDINGS_CSV_HEADER
from auditing.models import AuditEntry, Checkpoint, VerificationFinding, VerificationRun
from auditing.selectors import (
    CHECKPOINT_ACKNOWLEDGED,
    audit_chain_head,
    checkpoint_acknowledged_references,
)
from auditing.services import (
    audit_entry_append,
    checkpoint_sign_and_store,
    verification_run_finish,
    verification_run_start,
)
from auditing.verification import VerificationResult
from tasks.operations.verify_audit_trail import audit_trail_verify, options_parse
from tasks.results import Trigger
from tests.auditing.tampering import (
    APPEND_ONLY_TRIGGER,
    delete_entries,
    disable_append_only_trigger,
    set_column,
)
from tests.factories import StaffUserFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2026, 5, 20, 7, 0, tzinfo=UTC)


def append(count: int) -> list[AuditEntry]:
    return [
        audit_entry_append(action="test.event", actor=None, data={"n": n}) for n in range(count)
    ]


def stored_run(violations: list[Violation], **fields) -> VerificationRun:
    """A finished run with these findings, as verify_audit_trail stores one."""
    run = verification_run_start(
        started_at=NOW,
        trigger="beat",
        full=fields.get("full", False),
        range_start=dt.date(2026, 5, 1),
        range_end=dt.date(2026, 5, 19),
        head=audit_chain_head(),
    )
    result = VerificationResult(
        entries_checked=fields.get("entries_checked", 3),
        first_sequence=1,
        last_sequence=3,
        ranges=[(1, 3)],
    )
    return verification_run_finish(run=run, result=result, violations=violations, duration_ms=42)


def run_url(run: VerificationRun) -> str:
    return reverse("admin:auditing_verificationrun_change", args=[run.pk])


def acknowledge_url(finding: VerificationFinding) -> str:
    return reverse("admin:auditing_verificationfinding_acknowledge", args=[finding.pk])


def content_mismatch(sequence: int) -> Violation:
    return Violation(
        kind=ViolationKind.CONTENT_MISMATCH,
        sequence=sequence,
        timestamp=NOW,
        expected="a" * 64,
        stored="b" * 64,
        detail="the stored hash does not match the entry's content",
    )


def checkpoint_mismatch(sequence: int, head_hash: str = "c" * 64) -> Violation:
    return Violation(
        kind=ViolationKind.CHECKPOINT_MISMATCH,
        sequence=sequence,
        expected=head_hash,
        stored="d" * 64,
        detail="the checkpoint holds another hash for this entry",
        reference=f"checkpoint {sequence} {head_hash}",
    )


def enable_append_only_trigger() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE auditing_auditentry ENABLE TRIGGER {APPEND_ONLY_TRIGGER}")


# --- Runs ---------------------------------------------------------------------------------


def test_run_list_shows_range_entries_outcome_and_issue_count(admin_client):
    append(3)
    tampered = stored_run([content_mismatch(2), content_mismatch(3)])
    intact = stored_run([])

    page = admin_client.get(reverse("admin:auditing_verificationrun_changelist"))

    assert page.status_code == 200
    assert "2026-05-01 to 2026-05-19" in page.text
    assert "2 issues" in page.text
    assert "intact" in page.text
    assert {row.pk for row in page.context["cl"].result_list} == {tampered.pk, intact.pk}


def test_run_page_summarizes_the_run(admin_client):
    entries = append(3)
    checkpoint = checkpoint_sign_and_store(head=audit_chain_head(), signed_at=NOW).row
    run = stored_run([content_mismatch(2)])
    run.checkpoint = checkpoint  # as if signed by this run
    run.save()

    page = admin_client.get(run_url(run))

    assert page.status_code == 200
    assert "1 issue" in page.text
    assert "0.042 s" in page.text
    assert "#1 – #3" in page.text
    assert entries[2].current_hash in page.text
    assert reverse("admin:auditing_checkpoint_change", args=[checkpoint.pk]) in page.text


def test_run_that_could_not_complete_says_why(admin_client):
    run = verification_run_start(
        started_at=NOW, trigger="beat", full=True, range_start=None, range_end=None, head=None
    )
    run.error = "OperationalError: the database went away"
    run.finished_at = NOW
    run.save()

    page = admin_client.get(run_url(run))
    listing = admin_client.get(reverse("admin:auditing_verificationrun_changelist"))

    assert "could not complete" in page.text
    assert "the database went away" in page.text
    assert "could not complete" in listing.text


def test_run_page_shows_findings_as_a_table_linked_to_their_entries(admin_client):
    append(3)
    disable_append_only_trigger()
    delete_entries(3)
    run = stored_run(
        [
            content_mismatch(2),
            content_mismatch(3),  # deleted since: no entry to link to
            Violation(kind=ViolationKind.ENFORCEMENT_OFF, sequence=None, detail="trigger off"),
        ]
    )

    page = admin_client.get(run_url(run))

    assert page.status_code == 200
    rows = page.context["findings"]
    assert [row["finding"].position for row in rows] == [1, 2, 3]
    entry_2 = reverse("admin:auditing_auditentry_change", args=[2])
    assert f'<a href="{entry_2}">#2</a>' in page.text
    assert reverse("admin:auditing_auditentry_change", args=[3]) not in page.text
    assert "#3 (no entry)" in page.text
    assert "content mismatch (the entry was changed)" in page.text
    assert "append-only enforcement off" in page.text
    assert "content_mismatch" not in page.text.replace('id="findings"', "")
    assert "a" * 64 in page.text and "b" * 64 in page.text
    assert "2026-05-20 10:00:00" in page.text  # 07:00 UTC on Antananarivo's clock


def test_run_page_shows_200_findings_and_links_to_all_of_them(admin_client):
    append(3)
    run = stored_run([content_mismatch(n) for n in range(1, 251)])

    page = admin_client.get(run_url(run))

    assert len(page.context["findings"]) == 200
    assert page.context["findings_total"] == 250
    assert "See all 250 findings" in page.text
    listing_url = reverse("admin:auditing_verificationfinding_changelist")
    all_findings = f"{listing_url}?run__id__exact={run.pk}"
    assert all_findings in page.text

    listing = admin_client.get(all_findings)
    second_page = admin_client.get(f"{all_findings}&p=2")
    other_run = stored_run([content_mismatch(1)])

    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 250
    assert len(listing.context["cl"].result_list) == 100
    assert len(second_page.context["cl"].result_list) == 100
    assert all(finding.run_id == run.pk for finding in listing.context["cl"].result_list)
    assert other_run.findings.count() == 1


def test_findings_csv_download_holds_every_finding(admin_client):
    append(3)
    run = stored_run([content_mismatch(n) for n in range(1, 251)])

    response = admin_client.get(
        reverse("admin:auditing_verificationrun_findings_csv", args=[run.pk])
    )

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["position", "sequence", "kind"]
    assert [row[0] for row in rows[1:]] == [str(n) for n in range(1, 251)]
    assert rows[1][3] == "content mismatch (the entry was changed)"


def test_a_stored_value_a_spreadsheet_would_run_is_defused_in_the_findings_csv(admin_client):
    """Whoever tampered chose the stored value: it must not run in an auditor's Excel."""
    append(3)
    tampered = dataclasses.replace(content_mismatch(2), stored='=HYPERLINK("http://x")')
    run = stored_run([tampered])

    response = admin_client.get(
        reverse("admin:auditing_verificationrun_findings_csv", args=[run.pk])
    )

    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[1][FINDINGS_CSV_HEADER.index("stored")] == '\'=HYPERLINK("http://x")'
    assert rows[1][FINDINGS_CSV_HEADER.index("expected")] == "a" * 64


def test_runs_are_read_only(admin_client):
    append(3)
    run = stored_run([content_mismatch(2)])

    listing = admin_client.get(reverse("admin:auditing_verificationrun_changelist"))
    page = admin_client.get(run_url(run))

    assert reverse("admin:auditing_verificationrun_add") not in listing.text
    assert admin_client.get(reverse("admin:auditing_verificationrun_add")).status_code == 403
    delete = reverse("admin:auditing_verificationrun_delete", args=[run.pk])
    assert delete not in page.text
    assert admin_client.post(delete).status_code == 403
    assert admin_client.post(run_url(run), {"trigger": "forged"}).status_code == 403
    run.refresh_from_db()
    assert run.trigger == "beat"


# --- Findings list ------------------------------------------------------------------------


def test_findings_list_filters_by_kind_and_searches_by_sequence(admin_client):
    append(3)
    stored_run([content_mismatch(2), checkpoint_mismatch(3)])
    listing_url = reverse("admin:auditing_verificationfinding_changelist")

    by_kind = admin_client.get(f"{listing_url}?kind=checkpoint_mismatch")
    by_sequence = admin_client.get(f"{listing_url}?q=2")
    nonsense = admin_client.get(f"{listing_url}?q=abc")
    bad_run = admin_client.get(f"{listing_url}?run__id__exact=abc")

    assert [f.sequence for f in by_kind.context["cl"].result_list] == [3]
    assert [f.sequence for f in by_sequence.context["cl"].result_list] == [2]
    assert nonsense.status_code == 200
    assert bad_run.status_code == 302
    assert bad_run.url.endswith("?e=1")  # the admin's "invalid filter", not every finding
    assert "checkpoint no longer matches the chain" in by_kind.text
    assert reverse("admin:auditing_verificationfinding_add") not in by_kind.text
    assert admin_client.get(reverse("admin:auditing_verificationfinding_add")).status_code == 403


def test_finding_page_is_read_only(admin_client):
    append(3)
    run = stored_run([content_mismatch(2)])
    finding = run.findings.get()
    url = reverse("admin:auditing_verificationfinding_change", args=[finding.pk])

    page = admin_client.get(url)

    assert page.status_code == 200
    assert "content mismatch (the entry was changed)" in page.text
    assert "only checkpoint findings are acknowledged" in page.text
    assert admin_client.post(url, {"detail": "forged"}).status_code == 403
    delete = reverse("admin:auditing_verificationfinding_delete", args=[finding.pk])
    assert admin_client.post(delete).status_code == 403


# --- Acknowledgement ----------------------------------------------------------------------


@pytest.fixture
def checkpoint_finding() -> VerificationFinding:
    append(3)
    run = stored_run([content_mismatch(2), checkpoint_mismatch(3)])
    return run.findings.get(kind=ViolationKind.CHECKPOINT_MISMATCH)


def acknowledgements() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=CHECKPOINT_ACKNOWLEDGED))


def test_run_page_offers_to_acknowledge_checkpoint_findings_only(admin_client, checkpoint_finding):
    page = admin_client.get(run_url(checkpoint_finding.run))

    assert acknowledge_url(checkpoint_finding) in page.text
    other = checkpoint_finding.run.findings.get(kind=ViolationKind.CONTENT_MISMATCH)
    assert acknowledge_url(other) not in page.text


def test_acknowledge_page_shows_the_finding_and_asks_for_a_reason(admin_client, checkpoint_finding):
    page = admin_client.get(acknowledge_url(checkpoint_finding))

    assert page.status_code == 200
    assert "checkpoint no longer matches the chain" in page.text
    assert checkpoint_finding.reference in page.text
    assert '<textarea name="reason"' in page.text


@pytest.mark.parametrize("reason", ["", "   \n  ", "x" * 1001])
def test_acknowledgement_without_a_usable_reason_writes_nothing(
    admin_client, checkpoint_finding, reason
):
    page = admin_client.post(acknowledge_url(checkpoint_finding), {"reason": reason})

    assert page.status_code == 200
    assert page.context["form"].errors["reason"]
    assert "errornote" in page.text
    assert acknowledgements() == []


def test_acknowledgement_is_an_audit_entry_with_the_reference_and_the_reason(
    admin_client, admin_user, checkpoint_finding
):
    reason = "Restored from backup on 2026-05-19; the cut was the restore, see ticket 88."

    response = admin_client.post(acknowledge_url(checkpoint_finding), {"reason": reason})

    assert response.status_code == 302
    assert response.url == run_url(checkpoint_finding.run)
    [entry] = acknowledgements()
    assert entry.actor == admin_user
    assert entry.data["reference"] == checkpoint_finding.reference
    assert entry.data["reason"] == reason
    assert checkpoint_acknowledged_references() == {checkpoint_finding.reference}

    page = admin_client.get(response.url)
    assert "Finding acknowledged" in page.text
    assert f"acknowledged by admin on {entry.timestamp:%Y}" in page.text
    assert reason in page.text
    assert acknowledge_url(checkpoint_finding) not in page.text


def test_acknowledging_twice_writes_one_entry(admin_client, checkpoint_finding):
    admin_client.post(acknowledge_url(checkpoint_finding), {"reason": "looked into it"})

    again = admin_client.post(acknowledge_url(checkpoint_finding), {"reason": "once more"})

    assert again.status_code == 302
    assert len(acknowledgements()) == 1


def test_a_finding_that_is_not_about_a_checkpoint_cannot_be_acknowledged(
    admin_client, checkpoint_finding
):
    other = checkpoint_finding.run.findings.get(kind=ViolationKind.CONTENT_MISMATCH)

    response = admin_client.post(acknowledge_url(other), {"reason": "nothing to see"}, follow=True)

    assert "Only a checkpoint finding can be acknowledged" in response.text
    assert acknowledgements() == []


def test_staff_who_are_not_superusers_cannot_acknowledge(client, checkpoint_finding):
    staff = StaffUserFactory()
    staff.user_permissions.add(*_view_permissions())
    client.force_login(staff)

    page = client.get(run_url(checkpoint_finding.run))
    get = client.get(acknowledge_url(checkpoint_finding))
    post = client.post(acknowledge_url(checkpoint_finding), {"reason": "let me"})

    assert page.status_code == 200
    assert acknowledge_url(checkpoint_finding) not in page.text
    assert get.status_code == 403
    assert post.status_code == 403
    assert acknowledgements() == []


def test_acknowledging_a_missing_finding_is_a_404(admin_client):
    assert (
        admin_client.get("/admin/auditing/verificationfinding/999999/acknowledge/").status_code
        == 404
    )
    assert (
        admin_client.get("/admin/auditing/verificationfinding/abc/acknowledge/").status_code == 404
    )


def _view_permissions():
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(
        content_type__app_label="auditing", codename__startswith="view_"
    )


def test_an_acknowledged_checkpoint_finding_is_no_longer_reported(admin_client):
    """Cut the tail and append again: the signed checkpoint no longer matches, on every run,
    until a superuser acknowledges it with a reason through the admin."""
    options = options_parse()
    with time_machine.travel(NOW - dt.timedelta(days=1), tick=False):
        append(3)
        assert audit_trail_verify(options=options, trigger=Trigger.MANUAL).intact
    disable_append_only_trigger()
    delete_entries(3)
    enable_append_only_trigger()
    with time_machine.travel(NOW - dt.timedelta(hours=1), tick=False):
        append(1)

    with time_machine.travel(NOW, tick=False):
        first = audit_trail_verify(options=options, trigger=Trigger.MANUAL)
        second = audit_trail_verify(options=options, trigger=Trigger.MANUAL)

    assert not first.intact and not second.intact
    finding = VerificationFinding.objects.get(run_id=second.run_id)
    assert finding.kind == ViolationKind.CHECKPOINT_MISMATCH
    page = admin_client.get(run_url(finding.run))
    assert acknowledge_url(finding) in page.text

    with time_machine.travel(NOW + dt.timedelta(minutes=30), tick=False):
        admin_client.post(acknowledge_url(finding), {"reason": "the restore of 2026-05-19"})
    with time_machine.travel(NOW + dt.timedelta(hours=1), tick=False):
        third = audit_trail_verify(options=options, trigger=Trigger.MANUAL)

    assert third.intact, third.violations
    assert not VerificationFinding.objects.filter(run_id=third.run_id).exists()
    assert "acknowledged by admin" in admin_client.get(run_url(finding.run)).text


# --- Checkpoints --------------------------------------------------------------------------


def test_checkpoint_list_renders_read_only(admin_client):
    entries = append(3)
    checkpoint = checkpoint_sign_and_store(head=audit_chain_head(), signed_at=NOW).row

    listing = admin_client.get(reverse("admin:auditing_checkpoint_changelist"))
    page = admin_client.get(reverse("admin:auditing_checkpoint_change", args=[checkpoint.pk]))

    assert listing.status_code == 200
    assert entries[2].current_hash[:12] in listing.text
    assert checkpoint.public_key[:12] in listing.text
    assert page.status_code == 200
    assert reverse("admin:auditing_checkpoint_add") not in listing.text
    assert admin_client.get(reverse("admin:auditing_checkpoint_add")).status_code == 403
    delete = reverse("admin:auditing_checkpoint_delete", args=[checkpoint.pk])
    assert admin_client.post(delete).status_code == 403
    assert Checkpoint.objects.count() == 1


# --- Audit entries ------------------------------------------------------------------------


def test_audit_entries_are_read_only(admin_client):
    [entry] = append(1)
    url = reverse("admin:auditing_auditentry_change", args=[entry.sequence])

    page = admin_client.get(url)

    assert page.status_code == 200
    assert "&quot;n&quot;: 0" in page.text
    assert admin_client.post(url, {"action": "forged"}).status_code == 403
    assert admin_client.get(reverse("admin:auditing_auditentry_add")).status_code == 403
    delete = reverse("admin:auditing_auditentry_delete", args=[entry.sequence])
    assert admin_client.post(delete).status_code == 403


def test_entry_with_data_nested_5000_deep_is_shown_as_stored(admin_client):
    append(3)
    disable_append_only_trigger()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE auditing_auditentry SET data = (repeat('[', 5000) || repeat(']', 5000))::jsonb"
            " WHERE sequence = 2"
        )

    page = admin_client.get(reverse("admin:auditing_auditentry_change", args=[2]))
    listing = admin_client.get(reverse("admin:auditing_auditentry_changelist"))
    search = admin_client.get(reverse("admin:auditing_auditentry_changelist") + "?q=abc")

    assert page.status_code == 200
    assert "cannot be decoded" in page.text
    assert "[" * 5000 in page.text
    assert listing.status_code == 200
    assert search.status_code == 200


def test_entry_changed_in_place_still_renders(admin_client):
    append(3)
    disable_append_only_trigger()
    set_column(2, "action", "forged")

    page = admin_client.get(reverse("admin:auditing_auditentry_change", args=[2]))

    assert page.status_code == 200
    assert "forged" in page.text


def test_entry_stamped_infinity_is_listed_and_shown(admin_client):
    append(3)
    disable_append_only_trigger()
    set_column(2, "timestamp", "infinity")

    page = admin_client.get(reverse("admin:auditing_auditentry_change", args=[2]))
    listing = admin_client.get(reverse("admin:auditing_auditentry_changelist"))

    assert page.status_code == 200
    assert "(out of range)" in page.text
    assert listing.status_code == 200
