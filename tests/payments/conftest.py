from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db.models import Max

from auditing.models import AuditEntry
from payments.errors import PaymentsError
from tests.migrations import migrated_to_latest
from tests.payments.helpers import database_snapshot


@pytest.fixture(autouse=True)
def _configuration(config):
    """The configuration row exists before each test, as it does once the admin is used."""
    return config


@pytest.fixture
def refused():
    """``with refused("regex"):`` expects a PaymentsError whose message matches, and proves that
    the refused operation changed no row and appended no audit entry."""

    @contextmanager
    def expect_refusal(match: str):
        before = database_snapshot()
        with pytest.raises(PaymentsError, match=match) as info:
            yield info
        assert database_snapshot() == before

    return expect_refusal


@pytest.fixture
def audit_entries_written():
    """``with audit_entries_written() as entries:`` fills ``entries`` with the audit entries
    appended inside the block, in chain order."""

    @contextmanager
    def watch():
        head = AuditEntry.objects.aggregate(head=Max("sequence"))["head"] or 0
        entries: list[AuditEntry] = []
        yield entries
        entries.extend(AuditEntry.objects.filter(sequence__gt=head).order_by("sequence"))

    return watch


@pytest.fixture
def at_latest_afterwards(transactional_db) -> Iterator[None]:
    """Whatever happens, put the schema back at the latest migrations before the flush."""
    yield
    migrated_to_latest()
