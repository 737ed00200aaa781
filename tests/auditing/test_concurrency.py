"""Several real PostgreSQL connections appending at once must still build one chain."""

import threading

import pytest
from django.db import connection, transaction

from auditing.models import GENESIS_HASH, AuditEntry
from auditing.services import audit_entry_append
from auditing.verification import chain_verify
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

BARRIER_TIMEOUT = 30
JOIN_TIMEOUT = 60


class Rollback(Exception):
    """Raised on purpose to roll a worker's transaction back."""


def _run_workers(count: int, work) -> None:
    """Run ``work(worker_index)`` in ``count`` threads, each with its own connection,
    released together by a barrier once every connection is open."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []
    backend_pids: set[int] = set()

    def worker(index: int) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend_pids.add(cursor.fetchone()[0])
            barrier.wait(timeout=BARRIER_TIMEOUT)
            work(index)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    assert not errors, errors
    assert len(backend_pids) == count, "workers must append through their own connections"


def _assert_one_gapless_unforked_chain(expected_count: int) -> list[AuditEntry]:
    entries = list(AuditEntry.objects.order_by("sequence"))
    sequences = [entry.sequence for entry in entries]
    assert sequences == list(range(1, expected_count + 1))
    previous_hashes = [entry.previous_hash for entry in entries]
    assert len(set(previous_hashes)) == len(previous_hashes), "two entries share a parent"
    assert previous_hashes[0] == GENESIS_HASH
    result = chain_verify()
    assert result.intact, result.violations[:5]
    assert result.entries_checked == expected_count
    return entries


def _assert_each_worker_kept_its_order(entries: list[AuditEntry]) -> None:
    by_worker: dict[int, list[int]] = {}
    for entry in entries:
        by_worker.setdefault(entry.data["worker"], []).append(entry.data["n"])
    for numbers in by_worker.values():
        assert numbers == sorted(numbers)


@pytest.mark.parametrize("run", range(3))
def test_concurrent_first_appends_on_an_empty_table_build_one_chain(run):
    workers = 8
    assert not AuditEntry.objects.exists()

    def work(index: int) -> None:
        audit_entry_append(action="race.first", actor=None, data={"worker": index, "n": 0})

    _run_workers(workers, work)

    entries = _assert_one_gapless_unforked_chain(workers)
    assert sorted(entry.data["worker"] for entry in entries) == list(range(workers))


def test_concurrent_appends_from_an_empty_table_build_one_gapless_chain():
    workers, per_worker = 6, 40
    actors = [None, UserFactory(), UserFactory()]
    assert not AuditEntry.objects.exists()

    def work(index: int) -> None:
        for n in range(per_worker):
            audit_entry_append(
                action="race.append",
                actor=actors[index % len(actors)],
                data={"worker": index, "n": n},
            )

    _run_workers(workers, work)

    entries = _assert_one_gapless_unforked_chain(workers * per_worker)
    _assert_each_worker_kept_its_order(entries)


def test_concurrent_appends_onto_an_existing_chain_continue_it():
    for n in range(5):
        audit_entry_append(action="before.race", actor=None, data={"worker": -1, "n": n})
    workers, per_worker = 4, 30

    def work(index: int) -> None:
        for n in range(per_worker):
            audit_entry_append(action="race.append", actor=None, data={"worker": index, "n": n})

    _run_workers(workers, work)

    entries = _assert_one_gapless_unforked_chain(5 + workers * per_worker)
    assert [entry.action for entry in entries[:5]] == ["before.race"] * 5
    _assert_each_worker_kept_its_order(entries)


def test_concurrent_appends_in_longer_transactions_that_sometimes_roll_back_leave_no_gap():
    workers, per_worker = 5, 20

    def work(index: int) -> None:
        for n in range(per_worker):
            try:
                with transaction.atomic():
                    user = UserFactory()  # the caller's own writes share the transaction
                    audit_entry_append(
                        action="race.in.transaction",
                        actor=user,
                        subject=user,
                        data={"worker": index, "n": n},
                    )
                    if n % 3 == 0:
                        raise Rollback
            except Rollback:
                pass

    _run_workers(workers, work)

    kept_per_worker = sum(1 for n in range(per_worker) if n % 3 != 0)
    entries = _assert_one_gapless_unforked_chain(workers * kept_per_worker)
    assert all(entry.data["n"] % 3 != 0 for entry in entries)
    _assert_each_worker_kept_its_order(entries)
