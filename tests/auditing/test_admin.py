"""The audit trail's admin pages: read-only, for everyone."""

import datetime as dt

import pytest
import time_machine

from auditing.selectors import audit_chain_head
from auditing.services import audit_entry_append, verification_run_finish, verification_run_start
from auditing.verification import chain_verify_period
from tests.auditing.tampering import disable_append_only_trigger, set_column

pytestmark = pytest.mark.django_db

UTC = dt.UTC


def test_runs_are_listed_read_only_in_the_admin(admin_client):
    for day in (1, 2, 3):
        with time_machine.travel(dt.datetime(2026, 5, day, 9, 0, tzinfo=UTC), tick=False):
            audit_entry_append(action="test.event", actor=None, data={"n": day})
    disable_append_only_trigger()
    set_column(2, "action", "forged")
    run = verification_run_start(
        started_at=dt.datetime(2026, 5, 20, 7, 0, tzinfo=UTC),
        trigger="beat",
        full=False,
        range_start=dt.date(2026, 5, 1),
        range_end=dt.date(2026, 5, 10),
        head=audit_chain_head(),
    )
    result = chain_verify_period(
        start=dt.datetime(2026, 4, 30, 21, 0, tzinfo=UTC),
        end=dt.datetime(2026, 5, 10, 21, 0, tzinfo=UTC),
    )
    record = verification_run_finish(
        run=run, result=result, violations=result.violations, duration_ms=5
    )

    listing = admin_client.get("/admin/auditing/verificationrun/")
    detail = admin_client.get(f"/admin/auditing/verificationrun/{record.pk}/change/")

    assert record.intact is False
    assert listing.status_code == 200
    assert "2026-05-01 to 2026-05-10" in listing.text
    assert detail.status_code == 200
    assert admin_client.get("/admin/auditing/verificationrun/add/").status_code == 403
    assert (
        admin_client.post(f"/admin/auditing/verificationrun/{record.pk}/delete/").status_code == 403
    )
