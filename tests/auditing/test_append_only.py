import pytest
from django.db import DatabaseError, connection, transaction

from auditing.models import AuditEntry
from auditing.services import audit_entry_append
from auditing.verification import chain_verify
from tests.auditing.tampering import disable_append_only_trigger, rolled_back

pytestmark = pytest.mark.django_db

REFUSED = "append-only"


@pytest.fixture
def chain():
    return [audit_entry_append(action="chain.grew", actor=None, data={"n": n}) for n in range(3)]


def _snapshot():
    return list(AuditEntry.objects.order_by("sequence").values())


def _refused(operation) -> None:
    """Run ``operation`` in a savepoint and check the database refused it."""
    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
        operation()


def _sql(statement: str, params=()):
    def run():
        with connection.cursor() as cursor:
            # Fire the deferred FK checks of the fixture's inserts first: PostgreSQL refuses
            # to TRUNCATE a table with pending trigger events before any trigger runs.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(statement, params)

    return run


def test_orm_queryset_update_is_refused(chain):
    before = _snapshot()

    _refused(lambda: AuditEntry.objects.filter(sequence=2).update(action="rewritten"))
    _refused(lambda: AuditEntry.objects.update(data={}))

    assert _snapshot() == before


def test_orm_save_of_an_existing_entry_is_refused(chain):
    before = _snapshot()
    entry = AuditEntry.objects.get(sequence=2)
    entry.actor_name = "someone else"

    _refused(entry.save)

    assert _snapshot() == before


def test_orm_delete_is_refused(chain):
    before = _snapshot()

    _refused(lambda: AuditEntry.objects.filter(sequence=3).delete())
    _refused(lambda: AuditEntry.objects.all().delete())
    _refused(AuditEntry.objects.get(sequence=1).delete)

    assert _snapshot() == before


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE auditing_auditentry SET action = 'rewritten' WHERE sequence = 2",
        "UPDATE auditing_auditentry SET data = '{}'::jsonb",
        "DELETE FROM auditing_auditentry WHERE sequence = 3",
        "DELETE FROM auditing_auditentry",
        "TRUNCATE auditing_auditentry",
        "TRUNCATE auditing_auditentry CASCADE",
    ],
)
def test_raw_sql_update_delete_and_truncate_are_refused(chain, statement):
    before = _snapshot()

    _refused(_sql(statement))

    assert _snapshot() == before
    assert chain_verify().intact


def test_refusal_names_the_operation():
    audit_entry_append(action="chain.started", actor=None)

    with pytest.raises(DatabaseError) as refused, transaction.atomic():
        _sql("DELETE FROM auditing_auditentry")()

    assert "DELETE on auditing_auditentry is refused" in str(refused.value)


def test_appending_is_still_allowed_after_a_refusal(chain):
    _refused(_sql("DELETE FROM auditing_auditentry"))

    entry = audit_entry_append(action="chain.grew", actor=None)

    assert entry.sequence == 4
    assert chain_verify().entries_checked == 4


def test_disabled_trigger_is_restored_when_the_savepoint_rolls_back(chain):
    with rolled_back():
        disable_append_only_trigger()
        AuditEntry.objects.filter(sequence=2).update(action="rewritten")
        assert AuditEntry.objects.get(sequence=2).action == "rewritten"

    assert AuditEntry.objects.get(sequence=2).action == "chain.grew"
    _refused(lambda: AuditEntry.objects.filter(sequence=2).update(action="rewritten"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE auditing_auditentry SET actor_name = 'someone else'",
        "DELETE FROM auditing_auditentry",
        "TRUNCATE auditing_auditentry",
    ],
)
def test_committed_entries_cannot_be_changed_from_another_transaction(statement):
    for n in range(3):
        audit_entry_append(action="chain.grew", actor=None, data={"n": n})
    before = _snapshot()

    with pytest.raises(DatabaseError, match=REFUSED):
        with connection.cursor() as cursor:
            cursor.execute(statement)  # autocommit: a transaction of its own

    assert _snapshot() == before
