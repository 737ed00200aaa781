"""Every rule of the money tables is held by PostgreSQL itself (issue 14): each test writes
with raw SQL, as a script, a console or a buggy service would, and sees the database
refuse with the rule's name, or accept the valid case.

Rows are made through the services where they can be (they are the real writers), so a
refusal here is the database's and not a factory's.
"""

import datetime as dt
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from payments.checks import not_valid_constraints_check
from payments.database_rules import not_valid_constraints
from payments.errors import PaymentsError
from payments.models import (
    Agent,
    CashSession,
    CommissionStatus,
    NotificationKind,
    ReminderKind,
    SessionStatus,
    SystemConfiguration,
    TransactionStatus,
)
from payments.money import (
    COMMISSION_RATE_MAX,
    COMMISSION_RATE_MIN,
    MINOR_UNITS,
    commission_for,
)
from payments.services import (
    configuration_update,
    session_close,
    session_open,
    session_reconcile,
    transaction_record,
    transaction_void,
)
from tests.factories import AgentFactory, StaffUserFactory
from tests.migrations import migrated, migrated_to_latest

pytestmark = pytest.mark.django_db


# Raw SQL -------------------------------------------------------------------------------


def execute(statement: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def insert(table: str, **values) -> int:
    columns = ", ".join(values)
    holes = ", ".join(["%s"] * len(values))
    [(pk,)] = execute(
        f"INSERT INTO {table} ({columns}) VALUES ({holes}) RETURNING id",  # noqa: S608
        list(values.values()),
    )
    return pk


def update(table: str, pk: int, **values) -> None:
    assignments = ", ".join(f"{column} = %s" for column in values)
    execute(
        f"UPDATE {table} SET {assignments} WHERE id = %s",  # noqa: S608
        [*values.values(), pk],
    )


def immediately() -> None:
    """Run the deferred constraint triggers now rather than at the commit."""
    execute("SET CONSTRAINTS ALL IMMEDIATE")


@contextmanager
def refused_by(rule: str) -> Iterator[None]:
    """The database refuses what the block writes, naming ``rule``; the savepoint keeps
    the test's transaction usable."""
    with pytest.raises(IntegrityError, match=rule):
        with transaction.atomic():
            yield
            immediately()


@contextmanager
def accepted() -> Iterator[None]:
    with transaction.atomic():
        yield
        immediately()


NOW = timezone.now()


def session_row(agent: Agent, **overrides) -> dict:
    return {
        "number": f"CS-RAW-{agent.pk}-{overrides.get('status', 'open')}",
        "agent_id": agent.pk,
        "status": SessionStatus.OPEN,
        "opened_at": NOW - dt.timedelta(hours=8),
        "opening_balance": Decimal("1000.00"),
        "auto_closed": False,
        "closing_notes": "",
        "reconciliation_notes": "",
    } | overrides


def closed_row(agent: Agent, **overrides) -> dict:
    return (
        session_row(
            agent,
            status=SessionStatus.CLOSED,
            closed_at=NOW,
            expected_balance=Decimal("1000.00"),
            counted_balance=Decimal("1000.00"),
            discrepancy=Decimal("0.00"),
            closed_by_id=agent.user_id,
        )
        | overrides
    )


def payment_row(session_id: int, agent_id: int, **overrides) -> dict:
    return {
        "receipt_number": f"RC-RAW-{session_id}-{overrides.get('payer_reference', 'x')}",
        "session_id": session_id,
        "agent_id": agent_id,
        "payer_reference": "NIF-RAW",
        "tax_amount": Decimal("5000.00"),
        "amount_tendered": Decimal("5000.00"),
        "change_given": Decimal("0.00"),
        "status": TransactionStatus.COMPLETED,
        "created_at": NOW,
        "void_reason": "",
    } | overrides


# Fixtures: rows made by the services ---------------------------------------------------


@pytest.fixture
def agent() -> Agent:
    return AgentFactory()


@pytest.fixture
def session(agent) -> CashSession:
    return session_open(agent=agent, opening_balance=Decimal("1000.00"), actor=agent.user)


@pytest.fixture
def payment(session):
    return transaction_record(
        session=session,
        payer_reference="NIF-0001",
        tax_amount=Decimal("5000.00"),
        amount_tendered=Decimal("5000.00"),
        actor=session.agent.user,
    )


@pytest.fixture
def voided(payment):
    return transaction_void(cash_transaction=payment, actor=payment.agent.user, reason="Typo")


@pytest.fixture
def closed(session, payment) -> CashSession:
    return session_close(session=session, counted_cash=Decimal("6000.00"), actor=None)


@pytest.fixture
def reconciled(closed) -> CashSession:
    return session_reconcile(session=closed, actor=StaffUserFactory())


# 1. Choice columns hold one of their choices -------------------------------------------


def test_a_made_up_session_status_is_refused(agent):
    with refused_by("payments_session_status_valid"):
        insert("payments_cashsession", **session_row(agent, status="paused"))


def test_a_made_up_payment_status_is_refused(session):
    with refused_by("payments_payment_status_valid"):
        insert("payments_cashtransaction", **payment_row(session.pk, session.agent_id, status="x"))


def test_a_made_up_commission_status_is_refused(session):
    payment_id = insert("payments_cashtransaction", **payment_row(session.pk, session.agent_id))
    with refused_by("payments_commission_status_valid"):
        insert(
            "payments_commission",
            cash_transaction_id=payment_id,
            session_id=session.pk,
            agent_id=session.agent_id,
            base_amount=Decimal("5000.00"),
            rate=Decimal("2.00"),
            amount=Decimal("100.00"),
            status="refunded",
            created_at=NOW,
        )


def test_a_made_up_notification_kind_is_refused(agent):
    row = {"agent_id": agent.pk, "title": "t", "message": "m", "created_at": NOW}
    with refused_by("payments_notification_kind_valid"):
        insert("payments_notification", kind="gossip", **row)
    with accepted():
        for kind in NotificationKind.values:
            insert("payments_notification", kind=kind, **row)


def test_a_made_up_reminder_kind_is_refused(agent):
    """The rule that a reminder's agent matches its kind already refused an unknown kind
    (and PostgreSQL checks it first, by name); the kind's own rule says it plainly."""
    row = {"day": NOW.date(), "session_numbers": "[]", "created_at": NOW}
    with refused_by("payments_reminder_(agent_matches_kind|kind_valid)"):
        insert("payments_reconciliationreminder", kind="nag", agent_id=agent.pk, **row)
    with accepted():
        insert("payments_reconciliationreminder", kind=ReminderKind.AGENT, agent_id=agent.pk, **row)
        insert("payments_reconciliationreminder", kind=ReminderKind.ADMIN_SUMMARY, **row)


def test_an_unknown_currency_is_refused(config):
    with refused_by("payments_configuration_currency_code_valid"):
        update("payments_systemconfiguration", 1, currency_code="BTC")


def test_the_status_checks_are_built_from_the_choices():
    """Adding a choice without a migration would leave the CHECK behind: the model's
    condition is its TextChoices' values, and makemigrations would see the change."""
    constraints = {c.name: c for c in CashSession._meta.constraints}
    assert constraints["payments_session_status_valid"].condition.children == [
        ("status__in", sorted(SessionStatus.values))
    ]
    currency = {c.name: c for c in SystemConfiguration._meta.constraints}
    assert currency["payments_configuration_currency_code_valid"].condition.children == [
        ("currency_code__in", sorted(MINOR_UNITS))
    ]


def test_the_migrations_hold_the_models_rules(db):
    """A choice added to a TextChoices (or a currency to MINOR_UNITS) changes its CHECK:
    makemigrations must find nothing left to migrate, or the database lags the code."""
    call_command("makemigrations", "payments", check=True, dry_run=True, stdout=StringIO())


# 2. Session states ----------------------------------------------------------------------


def test_a_reconciled_session_without_a_count_is_refused(closed):
    with refused_by("payments_session_reconciled_has_count_and_reconciler"):
        update(
            "payments_cashsession",
            closed.pk,
            status=SessionStatus.RECONCILED,
            counted_balance=None,
            discrepancy=None,
            reconciled_at=NOW,
            reconciled_by_id=closed.agent.user_id,
        )


def test_a_reconciled_session_without_its_reconciler_is_refused(closed):
    with refused_by("payments_session_reconciled_has_count_and_reconciler"):
        update(
            "payments_cashsession", closed.pk, status=SessionStatus.RECONCILED, reconciled_at=NOW
        )


def test_a_closed_session_without_its_closing_time_or_expected_cash_is_refused(agent):
    with refused_by("payments_session_closed_has_closed_at_and_expected"):
        insert("payments_cashsession", **closed_row(agent, closed_at=None))
    with refused_by("payments_session_closed_has_closed_at_and_expected"):
        insert(
            "payments_cashsession",
            **closed_row(agent, expected_balance=None, counted_balance=None, discrepancy=None),
        )


@pytest.mark.parametrize(
    "closing_field",
    [
        {"closed_at": NOW},
        {"expected_balance": Decimal("1.00")},
        {
            "counted_balance": Decimal("1.00"),
            "expected_balance": Decimal("1.00"),
            "discrepancy": Decimal("0.00"),
        },
        {"reconciled_at": NOW},
        {"auto_closed": True},
    ],
)
def test_an_open_session_has_no_closing_fields(agent, closing_field):
    with refused_by("payments_session_open_has_no_closing_fields"):
        insert("payments_cashsession", **session_row(agent, **closing_field))


def test_a_session_not_reconciled_has_no_reconciler(agent):
    with refused_by("payments_session_unreconciled_has_no_reconciler"):
        insert("payments_cashsession", **closed_row(agent, reconciled_at=NOW))
    with refused_by("payments_session_unreconciled_has_no_reconciler"):
        insert("payments_cashsession", **closed_row(agent, reconciled_by_id=agent.user_id))


@pytest.mark.parametrize("discrepancy", [Decimal("5.00"), None])
def test_the_discrepancy_is_the_count_minus_the_expected_cash(agent, discrepancy):
    row = closed_row(agent, counted_balance=Decimal("990.00"), discrepancy=discrepancy)
    with refused_by("payments_session_discrepancy_is_counted_minus_expected"):
        insert("payments_cashsession", **row)
    with accepted():
        insert("payments_cashsession", **(row | {"discrepancy": Decimal("-10.00")}))


def test_a_negative_count_is_refused(agent):
    with refused_by("payments_session_counted_not_negative"):
        insert(
            "payments_cashsession",
            **closed_row(agent, counted_balance=Decimal("-1.00"), discrepancy=Decimal("-1001.00")),
        )


def test_a_session_closes_after_it_opened(agent):
    with refused_by("payments_session_closed_after_opened"):
        insert("payments_cashsession", **closed_row(agent, closed_at=NOW - dt.timedelta(days=1)))


def test_a_session_the_system_closed_names_no_closer(agent):
    row = closed_row(agent, auto_closed=True, counted_balance=None, discrepancy=None)
    with refused_by("payments_session_auto_closed_has_no_closer"):
        insert("payments_cashsession", **row)
    with accepted():
        insert("payments_cashsession", **(row | {"closed_by_id": None}))


def test_sessions_closed_and_reconciled_by_the_services_keep_every_rule(reconciled):
    immediately()
    reconciled.refresh_from_db()
    assert reconciled.status == SessionStatus.RECONCILED
    for constraint in CashSession._meta.constraints:
        constraint.validate(CashSession, reconciled)


# 3. No payment on a session that is not open --------------------------------------------


def test_a_payment_recorded_on_a_reconciled_session_is_refused(reconciled):
    with refused_by("payments_payment_session_is_open"):
        insert("payments_cashtransaction", **payment_row(reconciled.pk, reconciled.agent_id))


def test_a_payment_recorded_on_a_closed_session_is_refused(closed):
    with refused_by("payments_payment_session_is_open"):
        insert("payments_cashtransaction", **payment_row(closed.pk, closed.agent_id))


def test_a_temporary_table_cannot_stand_in_for_a_session(closed):
    """The rules read their own schema's tables: a temporary table of the same name, which
    the session's search_path would find first, shows them nothing."""
    execute("CREATE TEMP TABLE payments_cashsession (id bigint, number text, status text)")
    execute("INSERT INTO payments_cashsession VALUES (%s, 'FAKE', 'open')", [closed.pk])

    with refused_by("payments_payment_session_is_open"):
        insert("payments_cashtransaction", **payment_row(closed.pk, closed.agent_id))


def test_a_temporary_table_cannot_stand_in_for_the_configuration(config):
    execute("CREATE TEMP TABLE payments_systemconfiguration (id int, currency_code text)")
    execute("INSERT INTO payments_systemconfiguration VALUES (1, 'XOF')")

    assert execute("SELECT payments_configured_currency()") == [("MGA",)]


def test_a_payment_of_a_closed_session_is_frozen(closed, payment):
    with refused_by("payments_payment_session_is_open"):
        update(
            "payments_cashtransaction",
            payment.pk,
            status=TransactionStatus.VOIDED,
            voided_at=NOW,
            void_reason="Late",
        )


def test_a_payment_on_an_open_session_is_accepted(session):
    with accepted():
        insert("payments_cashtransaction", **payment_row(session.pk, session.agent_id))


@pytest.mark.django_db(transaction=True)
def test_a_payment_racing_a_close_waits_for_it_then_is_refused():
    """The trigger reads the session FOR SHARE: a payment written while another
    transaction is closing the session waits for that close to commit, then sees the
    session closed. A plain read would see it still open and let the payment in."""
    agent = AgentFactory()
    session = session_open(agent=agent, opening_balance=Decimal("0"), actor=None)
    closing = threading.Event()
    outcome: dict[str, object] = {}

    def close_slowly() -> None:
        try:
            with transaction.atomic():
                execute(
                    "SELECT id FROM payments_cashsession WHERE id = %s FOR UPDATE", [session.pk]
                )
                update(
                    "payments_cashsession",
                    session.pk,
                    status=SessionStatus.CLOSED,
                    closed_at=timezone.now(),
                    expected_balance=Decimal("0"),
                )
                closing.set()
                time.sleep(0.5)  # the payment below is waiting on the row meanwhile
        finally:
            connection.close()

    def pay() -> None:
        closing.wait(timeout=10)
        started = time.monotonic()
        try:
            insert("payments_cashtransaction", **payment_row(session.pk, agent.pk))
            outcome["result"] = "recorded"
        except IntegrityError as error:
            outcome["result"] = error
        finally:
            outcome["waited"] = time.monotonic() - started
            connection.close()

    threads = [threading.Thread(target=close_slowly), threading.Thread(target=pay)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert isinstance(outcome["result"], IntegrityError), outcome
    assert "payments_payment_session_is_open" in str(outcome["result"])
    assert "which is closed" in str(outcome["result"])
    assert outcome["waited"] >= 0.3


# 4. A payment's agent is its session's; a commission agrees with its payment -------------


def test_a_payment_whose_agent_is_not_the_sessions_agent_is_refused(session):
    other = AgentFactory()
    with refused_by("payments_payment_agent_is_session_agent"):
        insert("payments_cashtransaction", **payment_row(session.pk, other.pk))


def test_a_commission_of_another_agent_or_session_than_its_payment_is_refused(payment):
    other = AgentFactory()
    other_session = session_open(agent=other, opening_balance=Decimal("0"), actor=None)
    with refused_by("payments_commission_payment_session_agent_agree"):
        update("payments_commission", payment.commission.pk, agent_id=other.pk)
    with refused_by("payments_commission_payment_session_agent_agree"):
        update(
            "payments_commission",
            payment.commission.pk,
            agent_id=other.pk,
            session_id=other_session.pk,
        )


def test_a_commission_base_other_than_its_payments_tax_is_refused(payment):
    with refused_by("payments_commission_base_is_payment_tax"):
        update(
            "payments_commission",
            payment.commission.pk,
            base_amount=Decimal("4000.00"),
            amount=Decimal("80.00"),
        )
    with refused_by("payments_commission_base_is_payment_tax"):
        update(
            "payments_cashtransaction",
            payment.pk,
            tax_amount=Decimal("4000.00"),
            amount_tendered=Decimal("4000.00"),
        )


# 5. A commission is cancelled exactly when its payment is voided; statuses move forward --


@pytest.mark.parametrize("status", [CommissionStatus.PENDING, CommissionStatus.PAID])
def test_a_commission_on_a_voided_payment_set_back_is_refused(voided, status):
    commission = voided.commission
    with refused_by("payments_commission_status_moves_forward"):
        update(
            "payments_commission",
            commission.pk,
            status=status,
            cancelled_at=None,
            paid_at=NOW if status == CommissionStatus.PAID else None,
        )


def test_a_voided_payment_with_a_pending_commission_is_refused_at_commit(payment):
    with refused_by("payments_commission_cancelled_iff_payment_voided"):
        update(
            "payments_cashtransaction",
            payment.pk,
            status=TransactionStatus.VOIDED,
            voided_at=NOW,
            void_reason="Typo",
        )


def test_a_cancelled_commission_of_a_completed_payment_is_refused_at_commit(payment):
    with refused_by("payments_commission_cancelled_iff_payment_voided"):
        update(
            "payments_commission",
            payment.commission.pk,
            status=CommissionStatus.CANCELLED,
            cancelled_at=NOW,
        )


def test_voiding_the_payment_and_cancelling_its_commission_together_is_accepted(payment):
    with accepted():
        update(
            "payments_cashtransaction",
            payment.pk,
            status=TransactionStatus.VOIDED,
            voided_at=NOW,
            void_reason="Typo",
        )
        update(
            "payments_commission",
            payment.commission.pk,
            status=CommissionStatus.CANCELLED,
            cancelled_at=NOW,
        )


def test_the_void_service_keeps_the_rule(voided):
    immediately()
    voided.commission.refresh_from_db()
    assert voided.commission.status == CommissionStatus.CANCELLED


def test_a_session_status_never_moves_back(reconciled, closed):
    with refused_by("payments_session_status_moves_forward"):
        update("payments_cashsession", reconciled.pk, status=SessionStatus.CLOSED)


def test_a_closed_session_does_not_reopen(closed):
    with refused_by("payments_session_status_moves_forward"):
        update(
            "payments_cashsession",
            closed.pk,
            status=SessionStatus.OPEN,
            closed_at=None,
            closed_by_id=None,
            expected_balance=None,
            counted_balance=None,
            discrepancy=None,
        )


def test_a_voided_payment_is_not_completed_again(voided):
    with refused_by("payments_payment_status_moves_forward"):
        update("payments_cashtransaction", voided.pk, status=TransactionStatus.COMPLETED)


def test_a_paid_commission_is_not_cancelled(payment):
    update("payments_commission", payment.commission.pk, status="paid", paid_at=NOW)
    with refused_by("payments_commission_status_moves_forward"):
        update(
            "payments_commission",
            payment.commission.pk,
            status=CommissionStatus.CANCELLED,
            paid_at=None,
            cancelled_at=NOW,
        )


def test_a_voided_payment_has_its_time_and_reason(session):
    row = payment_row(session.pk, session.agent_id, status=TransactionStatus.VOIDED)
    with refused_by("payments_payment_voided_has_time_and_reason"):
        insert("payments_cashtransaction", **(row | {"voided_at": NOW}))
    with refused_by("payments_payment_voided_has_time_and_reason"):
        insert("payments_cashtransaction", **(row | {"void_reason": "Typo"}))


def test_a_completed_payment_has_no_void_fields(session):
    with refused_by("payments_payment_completed_has_no_void_fields"):
        insert(
            "payments_cashtransaction",
            **payment_row(session.pk, session.agent_id, void_reason="Typo"),
        )


def test_a_paid_commission_has_its_payment_time(payment):
    with refused_by("payments_commission_paid_has_paid_at"):
        update("payments_commission", payment.commission.pk, status=CommissionStatus.PAID)


def test_a_cancelled_commission_has_its_cancellation_time(payment):
    with refused_by("payments_commission_cancelled_has_cancelled_at"):
        update(
            "payments_cashtransaction",
            payment.pk,
            status=TransactionStatus.VOIDED,
            voided_at=NOW,
            void_reason="Typo",
        )
        update("payments_commission", payment.commission.pk, status=CommissionStatus.CANCELLED)


def test_a_pending_commission_has_no_payment_or_cancellation_time(payment):
    with refused_by("payments_commission_pending_has_no_paid_or_cancelled_at"):
        update("payments_commission", payment.commission.pk, paid_at=NOW)


# 6. Commission rates within bounds, amounts as computed ---------------------------------


def test_a_commission_at_500_percent_is_refused(payment):
    with refused_by("payments_commission_rate_in_bounds"):
        update(
            "payments_commission",
            payment.commission.pk,
            rate=Decimal("500.00"),
            amount=Decimal("25000.00"),
        )


def test_a_negative_rate_is_refused(agent):
    with refused_by("payments_agent_commission_rate_in_bounds"):
        update("payments_agent", agent.pk, commission_rate=Decimal("-0.01"))


@pytest.mark.parametrize("rate", [COMMISSION_RATE_MIN, COMMISSION_RATE_MAX])
def test_the_rate_bounds_themselves_are_accepted(payment, rate):
    with accepted():
        update(
            "payments_commission",
            payment.commission.pk,
            rate=rate,
            amount=commission_for(
                base_amount=payment.tax_amount, rate_percent=rate, currency="MGA"
            ),
        )


def test_an_agents_rate_and_the_default_rate_have_the_same_bounds(agent, config):
    with refused_by("payments_agent_commission_rate_in_bounds"):
        update("payments_agent", agent.pk, commission_rate=Decimal("500.00"))
    with refused_by("payments_configuration_default_rate_in_bounds"):
        update("payments_systemconfiguration", 1, default_commission_rate=Decimal("100.01"))
    with accepted():
        update("payments_agent", agent.pk, commission_rate=COMMISSION_RATE_MAX)
        update("payments_agent", agent.pk, commission_rate=None)


def test_the_model_validators_use_the_same_bounds(agent, config):
    agent.commission_rate = Decimal("500.00")
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        agent.full_clean()
    with pytest.raises(ValidationError, match="payments_agent_commission_rate_in_bounds"):
        agent.validate_constraints()
    config.default_commission_rate = COMMISSION_RATE_MAX + Decimal("0.01")
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        config.full_clean()


def test_a_commission_amount_other_than_base_times_rate_is_refused(payment):
    with refused_by("payments_commission_amount_is_base_times_rate"):
        update("payments_commission", payment.commission.pk, amount=Decimal("101.00"))


def test_a_commission_rounded_half_up_at_the_third_decimal_is_accepted(session):
    """5.00 x 2.50 % = 0.125: half-up gives 0.13 (banker's rounding would give 0.12)."""
    payment = transaction_record(
        session=session,
        payer_reference="NIF-5",
        tax_amount=Decimal("5.00"),
        amount_tendered=Decimal("5.00"),
        actor=None,
    )
    commission = payment.commission
    assert commission_for(
        base_amount=Decimal("5.00"), rate_percent=Decimal("2.50"), currency="MGA"
    ) == Decimal("0.13")
    with accepted():
        update("payments_commission", commission.pk, rate=Decimal("2.50"), amount=Decimal("0.13"))
    with refused_by("payments_commission_amount_is_base_times_rate"):
        update("payments_commission", commission.pk, rate=Decimal("2.50"), amount=Decimal("0.12"))
    # Whole units pass the CHECK (for XOF), but MGA has cents: the currency trigger says no.
    with refused_by("payments_commission_amount_rounded_for_currency"):
        update("payments_commission", commission.pk, rate=Decimal("2.50"), amount=Decimal("0"))


def test_a_commission_in_a_currency_without_minor_units_is_whole(agent, config):
    update("payments_systemconfiguration", 1, currency_code="XOF")
    session = session_open(agent=agent, opening_balance=Decimal("0"), actor=None)
    payment = transaction_record(
        session=session,
        payer_reference="NIF-X",
        tax_amount=Decimal("1000"),
        amount_tendered=Decimal("1000"),
        actor=None,
    )
    commission = payment.commission
    # 1000 x 2.55 % = 25.5: 26 francs, half-up.
    with accepted():
        update("payments_commission", commission.pk, rate=Decimal("2.55"), amount=Decimal("26"))
    # Rounded to cents, as for MGA: not for francs.
    with refused_by("payments_commission_amount_rounded_for_currency"):
        update("payments_commission", commission.pk, rate=Decimal("2.55"), amount=Decimal("25.50"))
    # Rounded down: neither rounding.
    with refused_by("payments_commission_amount_is_base_times_rate"):
        update("payments_commission", commission.pk, rate=Decimal("2.55"), amount=Decimal("25"))


# 7. Money has the currency's scale -------------------------------------------------------


def test_the_minor_units_function_is_money_py(db):
    for code, units in MINOR_UNITS.items():
        assert execute("SELECT payments_currency_minor_units(%s)", [code]) == [(units,)]


def test_amounts_in_francs_are_whole(agent, config):
    update("payments_systemconfiguration", 1, currency_code="XOF")
    with refused_by("payments_session_money_has_currency_scale"):
        insert("payments_cashsession", **session_row(agent, opening_balance=Decimal("100.50")))
    session_id = insert(
        "payments_cashsession", **session_row(agent, opening_balance=Decimal("100"))
    )
    with refused_by("payments_payment_money_has_currency_scale"):
        insert(
            "payments_cashtransaction",
            **payment_row(
                session_id,
                agent.pk,
                tax_amount=Decimal("100.50"),
                amount_tendered=Decimal("100.50"),
            ),
        )
    with accepted():
        insert("payments_cashtransaction", **payment_row(session_id, agent.pk))


def test_amounts_in_ariary_keep_their_cents(agent):
    with accepted():
        insert("payments_cashsession", **session_row(agent, opening_balance=Decimal("100.50")))


def test_the_currency_is_fixed_once_a_session_exists(session, config):
    with refused_by("payments_configuration_currency_fixed_once_sessions_exist"):
        update("payments_systemconfiguration", 1, currency_code="EUR")
    config.currency_code = "EUR"
    with pytest.raises(PaymentsError, match="currency cannot change from MGA to EUR"):
        configuration_update(
            config=config, changes={"currency_code": "EUR"}, actor=StaffUserFactory()
        )


def test_the_currency_may_change_before_any_session(config):
    config.currency_code = "EUR"
    configuration_update(config=config, changes={"currency_code": "EUR"}, actor=StaffUserFactory())
    assert SystemConfiguration.load().currency_code == "EUR"


def test_a_configuration_row_created_late_cannot_change_the_currency(session):
    """Without the row the amounts are in MGA (the default): creating it with another
    currency would relabel them too."""
    execute("DELETE FROM payments_systemconfiguration")
    with refused_by("payments_configuration_currency_fixed_once_sessions_exist"):
        insert(
            "payments_systemconfiguration",
            id=1,
            session_timeout_hours=12,
            default_commission_rate=Decimal("2.00"),
            reconciliation_tolerance=Decimal("0.00"),
            currency_code="XOF",
            updated_at=NOW,
        )


def test_deleting_the_configuration_row_cannot_change_the_currency(config):
    """Without the row the amounts are in MGA: deleting a EUR row would relabel them."""
    update("payments_systemconfiguration", 1, currency_code="EUR")
    session_open(agent=AgentFactory(), opening_balance=Decimal("0"), actor=None)
    with refused_by("payments_configuration_currency_fixed_once_sessions_exist"):
        execute("DELETE FROM payments_systemconfiguration")


def test_deleting_a_configuration_row_in_the_default_currency_changes_nothing(session):
    with accepted():
        execute("DELETE FROM payments_systemconfiguration")


# 8. The configuration's own rules ------------------------------------------------------


def test_the_tolerance_is_not_negative(config):
    with refused_by("payments_configuration_tolerance_not_negative"):
        update("payments_systemconfiguration", 1, reconciliation_tolerance=Decimal("-0.01"))


@pytest.mark.parametrize("hours", [0, 24 * 7 + 1])
def test_the_session_timeout_is_within_its_bounds(config, hours):
    with refused_by("payments_configuration_timeout_hours_in_bounds"):
        update("payments_systemconfiguration", 1, session_timeout_hours=hours)


@pytest.mark.parametrize("hours", [1, 24 * 7])
def test_the_session_timeout_bounds_themselves_are_accepted(config, hours):
    with accepted():
        update("payments_systemconfiguration", 1, session_timeout_hours=hours)


def test_there_is_one_configuration_row(config):
    with refused_by("payments_configuration_singleton_pk_1"):
        execute(
            "INSERT INTO payments_systemconfiguration (id, session_timeout_hours,"
            " default_commission_rate, reconciliation_tolerance, currency_code, updated_at)"
            " VALUES (2, 12, 2, 0, 'MGA', now())"
        )


# The rules that already existed keep refusing -------------------------------------------


def test_a_second_open_session_is_still_refused(session):
    with refused_by("payments_one_open_session_per_agent"):
        insert("payments_cashsession", **session_row(session.agent, number="CS-SECOND"))


@pytest.mark.parametrize("tax", [Decimal("0.00"), Decimal("-5.00")])
def test_a_zero_or_negative_payment_is_still_refused(session, tax):
    with refused_by("payments_tax_positive"):
        insert(
            "payments_cashtransaction",
            **payment_row(session.pk, session.agent_id, tax_amount=tax, amount_tendered=tax),
        )


def test_tendering_less_than_the_tax_is_still_refused(session):
    with refused_by("payments_tendered_covers_tax"):
        insert(
            "payments_cashtransaction",
            **payment_row(
                session.pk,
                session.agent_id,
                amount_tendered=Decimal("4000.00"),
                change_given=Decimal("-1000.00"),
            ),
        )


def test_wrong_change_is_still_refused(session):
    with refused_by("payments_change_is_tendered_minus_tax"):
        insert(
            "payments_cashtransaction",
            **payment_row(
                session.pk,
                session.agent_id,
                amount_tendered=Decimal("6000.00"),
                change_given=Decimal("500.00"),
            ),
        )


def test_a_negative_commission_is_still_refused(payment):
    """A rate within bounds on a positive tax cannot give a negative amount, so the
    amount's own rule may refuse it first: the old rule stands all the same."""
    assert execute(
        "SELECT 1 FROM pg_constraint WHERE conname = 'payments_commission_not_negative'"
    ) == [(1,)]
    with refused_by("payments_commission_(not_negative|amount_is_base_times_rate)"):
        update(
            "payments_commission",
            payment.commission.pk,
            rate=Decimal("0"),
            amount=Decimal("-1.00"),
        )


def test_a_discrepancy_without_a_count_is_still_refused(closed):
    with refused_by("payments_session_discrepancy_needs_count"):
        update("payments_cashsession", closed.pk, counted_balance=None, discrepancy=Decimal("1"))


# Migration 0005 on a database whose rows already break a rule --------------------------

BEFORE_RULES = ("payments", "0004_audited_rows_baseline")
RULES = ("payments", "0005_database_rules")


def not_valid() -> set[str]:
    return {name for _, name in not_valid_constraints()}


@pytest.fixture
def old_rows_cleaned_afterwards(transactional_db) -> Iterator[None]:
    """Put the schema back at the latest migrations with every rule validated, whatever
    happens: later tests share this database."""
    yield
    execute("SET session_replication_role = replica")
    for table in ("payments_commission", "payments_cashtransaction", "payments_cashsession"):
        execute(f"DELETE FROM {table}")  # noqa: S608
    execute("SET session_replication_role = DEFAULT")
    migrated_to_latest()
    for table, name in not_valid_constraints():
        execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")
    assert not_valid() == set()


@pytest.mark.django_db(transaction=True)
def test_the_migration_adds_a_broken_rule_not_valid_and_says_how_to_fix_it(
    old_rows_cleaned_afterwards, capsys
):
    apps = migrated(BEFORE_RULES).loader.project_state(BEFORE_RULES).apps
    User = apps.get_model("auth", "User")
    OldAgent = apps.get_model("payments", "Agent")
    OldSession = apps.get_model("payments", "CashSession")
    OldPayment = apps.get_model("payments", "CashTransaction")
    OldCommission = apps.get_model("payments", "Commission")
    hery, tiana = (
        OldAgent.objects.create(
            user=User.objects.create(username=name), code=f"AG-{name}", full_name=name
        )
        for name in ("hery", "tiana")
    )
    paused = OldSession.objects.create(
        number="CS-PAUSED",
        agent=hery,
        status="paused",
        opened_at=NOW,
        opening_balance=Decimal("0"),
    )
    herys = OldSession.objects.create(
        number="CS-HERY", agent=tiana, opened_at=NOW, opening_balance=Decimal("0")
    )
    # Tiana's session, Hery's payment.
    stray = OldPayment.objects.create(
        receipt_number="RC-STRAY",
        session=herys,
        agent=hery,
        payer_reference="NIF-1",
        tax_amount=Decimal("10.00"),
        amount_tendered=Decimal("10.00"),
        change_given=Decimal("0.00"),
        created_at=NOW,
    )
    # A commission computed on another amount than its payment's tax: a trigger's rule.
    off_base = OldCommission.objects.create(
        cash_transaction=stray,
        agent=hery,
        session=herys,
        base_amount=Decimal("9.00"),
        rate=Decimal("2.00"),
        amount=Decimal("0.18"),
        created_at=NOW,
    )

    migrated(RULES)

    said = capsys.readouterr().out
    assert (
        f"payments_session_status_valid: 1 existing row(s) of payments_cashsession break this "
        f"rule (id {paused.pk}). It was added NOT VALID"
    ) in said
    assert (
        "ALTER TABLE payments_cashsession VALIDATE CONSTRAINT payments_session_status_valid;"
        in said
    )
    assert (
        f"payments_payment_agent_is_session_agent: 1 existing row(s) of "
        f"payments_cashtransaction break this rule (id {stray.pk})"
    ) in said
    assert (
        f"payments_commission_base_is_payment_tax: 1 existing row(s) of payments_commission "
        f"break this rule (id {off_base.pk}). A trigger holds it"
    ) in said
    # The rules the old rows keep are valid; the two they break are not, yet.
    assert not_valid() == {
        "payments_session_status_valid",
        "payments_payment_agent_is_session_agent",
    }
    # New rows are held to them all the same.
    agent = AgentFactory()
    with pytest.raises(IntegrityError, match="payments_session_status_valid"):
        insert("payments_cashsession", **session_row(agent, status="paused"))
    session = session_open(agent=agent, opening_balance=Decimal("0"), actor=None)
    with pytest.raises(IntegrityError, match="payments_payment_agent_is_session_agent"):
        insert("payments_cashtransaction", **payment_row(session.pk, hery.pk))
    # And check --deploy says so until they are validated.
    [warning] = not_valid_constraints_check(None)
    assert warning.id == "payments.W001"
    assert "payments_session_status_valid on payments_cashsession" in warning.msg
    assert (
        "ALTER TABLE payments_cashtransaction VALIDATE CONSTRAINT "
        "payments_payment_agent_is_session_agent;"
    ) in warning.hint

    execute("DELETE FROM payments_commission WHERE id = %s", [off_base.pk])
    execute("DELETE FROM payments_cashtransaction WHERE id = %s", [stray.pk])
    execute("UPDATE payments_cashsession SET status = 'open' WHERE id = %s", [paused.pk])
    execute("ALTER TABLE payments_cashsession VALIDATE CONSTRAINT payments_session_status_valid")
    execute(
        "ALTER TABLE payments_cashtransaction"
        " VALIDATE CONSTRAINT payments_payment_agent_is_session_agent"
    )
    assert not_valid_constraints_check(None) == []


@pytest.mark.django_db(transaction=True)
def test_the_migration_on_valid_rows_adds_every_rule_valid(old_rows_cleaned_afterwards, capsys):
    migrated(BEFORE_RULES)
    agent = AgentFactory()
    session = session_open(agent=agent, opening_balance=Decimal("0"), actor=None)
    transaction_record(
        session=session,
        payer_reference="NIF-1",
        tax_amount=Decimal("10.00"),
        amount_tendered=Decimal("10.00"),
        actor=None,
    )

    migrated(RULES)

    assert "NOT VALID" not in capsys.readouterr().out
    assert not_valid() == set()
