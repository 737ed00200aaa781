"""The rules of the money tables that PostgreSQL holds beyond CHECK constraints.

A CHECK constraint sees one row, so the models' ``Meta.constraints`` hold every rule about
a row on its own (and Django's ``validate_constraints`` and SQLite know them). The rules
that span rows or tables live here, for PostgreSQL only: composite foreign keys where a
declaration can say it, triggers where it cannot. Each is named ``payments_<table>_<rule>``
and each trigger raises ``check_violation`` (SQLSTATE 23514, an ``IntegrityError`` in
Django) with a message that names the rule, the row and what to do.

Migration 0005 installs them, checking the rows already there first: a CHECK or a foreign
key that existing rows break is added ``NOT VALID`` (new writes are checked, the old rows
are not) with one message per rule saying how to fix and validate it, instead of failing
the deploy. ``check --deploy`` lists what is still NOT VALID (payments/checks.py).
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections, migrations

from payments.models import CommissionStatus, SessionStatus, TransactionStatus
from payments.money import DEFAULT_CURRENCY, MINOR_UNITS

FIRST_IDS = 10

# Where each status may go: it only moves forward.
STATUS_MOVES = {
    "payments_cashsession": [
        (SessionStatus.OPEN, SessionStatus.CLOSED),
        (SessionStatus.CLOSED, SessionStatus.RECONCILED),
    ],
    "payments_cashtransaction": [(TransactionStatus.COMPLETED, TransactionStatus.VOIDED)],
    "payments_commission": [
        (CommissionStatus.PENDING, CommissionStatus.PAID),
        (CommissionStatus.PENDING, CommissionStatus.CANCELLED),
    ],
}
STATUS_TRIGGERS = {
    "payments_cashsession": "payments_session_status_moves_forward",
    "payments_cashtransaction": "payments_payment_status_moves_forward",
    "payments_commission": "payments_commission_status_moves_forward",
}
# The money columns that must have the configured currency's scale.
MONEY_COLUMNS = {
    "payments_cashsession": (
        "payments_session_money_has_currency_scale",
        ["opening_balance", "expected_balance", "counted_balance", "discrepancy"],
    ),
    "payments_cashtransaction": (
        "payments_payment_money_has_currency_scale",
        ["tax_amount", "amount_tendered", "change_given"],
    ),
    "payments_commission": (
        "payments_commission_money_has_currency_scale",
        ["base_amount", "amount"],
    ),
}


def _sql_text(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def minor_units_function_sql() -> str:
    """``payments_currency_minor_units(code)``, generated from ``MINOR_UNITS``."""
    cases = "\n".join(
        f"        WHEN {_sql_text(code)} THEN {units}"
        for code, units in sorted(MINOR_UNITS.items())
    )
    # The codes are MINOR_UNITS' constants, quoted.
    return f"""
CREATE OR REPLACE FUNCTION payments_currency_minor_units(code text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE code
{cases}
    END
$$;

CREATE OR REPLACE FUNCTION payments_configured_currency() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT currency_code FROM payments_systemconfiguration WHERE id = 1),
        {_sql_text(DEFAULT_CURRENCY)}
    )
$$;
"""  # noqa: S608


TRIGGER_FUNCTIONS = """
CREATE OR REPLACE FUNCTION payments_payment_session_is_open() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    session_number text;
    session_status text;
BEGIN
    -- FOR SHARE: a close of this session that is under way finishes first, then we see it.
    SELECT number, status INTO session_number, session_status
      FROM payments_cashsession WHERE id = NEW.session_id FOR SHARE;
    IF FOUND AND session_status <> 'open' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation',
            CONSTRAINT = 'payments_payment_session_is_open',
            MESSAGE = format(
                'payments_payment_session_is_open: payment %s (id %s) cannot be %s on session '
                '%s, which is %s; a session takes payments, and their voids, only while it '
                'is open.',
                NEW.receipt_number, NEW.id,
                CASE TG_OP WHEN 'INSERT' THEN 'recorded' ELSE 'changed' END,
                session_number, session_status),
            HINT = 'Record the payment on an open session of its agent.';
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION payments_commission_base_is_payment_tax() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    payment record;
    commission record;
BEGIN
    IF TG_TABLE_NAME = 'payments_commission' THEN
        SELECT id, receipt_number, tax_amount INTO payment
          FROM payments_cashtransaction WHERE id = NEW.cash_transaction_id;
        IF FOUND AND payment.tax_amount <> NEW.base_amount THEN
            RAISE EXCEPTION USING
                ERRCODE = 'check_violation',
                CONSTRAINT = 'payments_commission_base_is_payment_tax',
                MESSAGE = format(
                    'payments_commission_base_is_payment_tax: commission id %s has a base of '
                    '%s but its payment %s has a tax of %s.',
                    NEW.id, NEW.base_amount, payment.receipt_number, payment.tax_amount),
                HINT = 'A commission is computed on its payment''s tax amount.';
        END IF;
    ELSE
        SELECT id, base_amount INTO commission
          FROM payments_commission WHERE cash_transaction_id = NEW.id;
        IF FOUND AND commission.base_amount <> NEW.tax_amount THEN
            RAISE EXCEPTION USING
                ERRCODE = 'check_violation',
                CONSTRAINT = 'payments_commission_base_is_payment_tax',
                MESSAGE = format(
                    'payments_commission_base_is_payment_tax: payment %s cannot have a tax of '
                    '%s: its commission id %s was computed on %s.',
                    NEW.receipt_number, NEW.tax_amount, commission.id, commission.base_amount),
                HINT = 'Void the payment and record a new one instead.';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION payments_commission_cancelled_iff_payment_voided() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    pair record;
BEGIN
    -- Deferred to the commit: read both rows as they are then, not as this event saw them.
    SELECT c.id AS commission_id, c.status AS commission_status,
           t.receipt_number, t.status AS payment_status
      INTO pair
      FROM payments_commission c
      JOIN payments_cashtransaction t ON t.id = c.cash_transaction_id
     WHERE (TG_TABLE_NAME = 'payments_commission' AND c.id = NEW.id)
        OR (TG_TABLE_NAME = 'payments_cashtransaction' AND t.id = NEW.id);
    IF FOUND AND (pair.commission_status = 'cancelled') <> (pair.payment_status = 'voided') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation',
            CONSTRAINT = 'payments_commission_cancelled_iff_payment_voided',
            MESSAGE = format(
                'payments_commission_cancelled_iff_payment_voided: commission id %s is %s '
                'but its payment %s is %s; a commission is cancelled exactly when its payment '
                'is voided.',
                pair.commission_id, pair.commission_status, pair.receipt_number,
                pair.payment_status),
            HINT = 'Void a payment and cancel its commission in the same transaction.';
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION payments_status_moves_forward() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- TG_ARGV holds the allowed moves, 'old>new'. A status none of them knows (a row from
    -- before the status CHECK) may be corrected to any status the CHECK accepts.
    IF NEW.status IS DISTINCT FROM OLD.status
       AND NOT (OLD.status || '>' || NEW.status) = ANY (TG_ARGV)
       AND EXISTS (SELECT FROM unnest(TG_ARGV) AS move
                   WHERE OLD.status IN (split_part(move, '>', 1), split_part(move, '>', 2)))
    THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation',
            CONSTRAINT = TG_NAME,
            MESSAGE = format(
                '%s: %s id %s cannot go from %s back or across to %s; a status only moves '
                'forward (%s).',
                TG_NAME, TG_TABLE_NAME, NEW.id, OLD.status, NEW.status,
                array_to_string(TG_ARGV, ', ')),
            HINT = 'Undo nothing in place: record what happened next instead.';
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION payments_money_has_currency_scale() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    currency text := payments_configured_currency();
    places integer := payments_currency_minor_units(payments_configured_currency());
    fields jsonb := to_jsonb(NEW);
    column_name text;
    amount numeric;
BEGIN
    -- TG_ARGV holds the money columns of the table.
    FOREACH column_name IN ARRAY TG_ARGV LOOP
        amount := (fields ->> column_name)::numeric;
        IF amount IS NOT NULL AND amount <> round(amount, places) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'check_violation',
                CONSTRAINT = TG_NAME,
                MESSAGE = format(
                    '%s: %s of %s id %s is %s, finer than %s allows (%s decimal places).',
                    TG_NAME, column_name, TG_TABLE_NAME, NEW.id, amount, currency, places),
                HINT = format('Round it to %s decimal places.', places);
        END IF;
    END LOOP;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION payments_commission_amount_rounded_for_currency() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    currency text := payments_configured_currency();
    places integer := payments_currency_minor_units(payments_configured_currency());
    exact numeric := round(NEW.base_amount * NEW.rate / 100, places);
BEGIN
    -- payments_commission_amount_is_base_times_rate allows 2 or 0 places (and refuses any
    -- other amount itself); this one says which: the configured currency's, rounded
    -- half-up as payments.money rounds.
    IF NEW.amount <> exact
       AND NEW.amount IN (round(NEW.base_amount * NEW.rate / 100, 2),
                          round(NEW.base_amount * NEW.rate / 100, 0)) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation',
            CONSTRAINT = 'payments_commission_amount_rounded_for_currency',
            MESSAGE = format(
                'payments_commission_amount_rounded_for_currency: commission id %s is %s, '
                'but %s x %s %% rounded half-up to %s decimal places (%s) is %s.',
                NEW.id, NEW.amount, NEW.base_amount, NEW.rate, places, currency, exact),
            HINT = 'Compute it with payments.money.commission_for.';
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION payments_configuration_currency_fixed_once_sessions_exist()
RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was text := CASE WHEN TG_OP = 'INSERT' THEN payments_configured_currency()
                     ELSE OLD.currency_code END;
    becomes text := CASE WHEN TG_OP = 'DELETE' THEN __DEFAULT_CURRENCY__ ELSE NEW.currency_code END;
BEGIN
    -- Without the row the amounts are in the default currency: creating or deleting the
    -- row may change the currency as much as an update.
    IF becomes IS DISTINCT FROM was THEN
        -- A first session being opened meanwhile would be invisible to EXISTS until it
        -- commits: wait for it (SHARE conflicts with its insert), then look.
        LOCK TABLE payments_cashsession IN SHARE MODE;
    END IF;
    IF becomes IS DISTINCT FROM was
       AND EXISTS (SELECT 1 FROM payments_cashsession) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation',
            CONSTRAINT = 'payments_configuration_currency_fixed_once_sessions_exist',
            MESSAGE = format(
                'payments_configuration_currency_fixed_once_sessions_exist: the currency '
                'cannot change from %s to %s: sessions exist, and their amounts are in %s.',
                was, becomes, was),
            HINT = 'Amounts are stored without a currency; relabelling them would misstate them.';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END;
$$;
"""


# The functions name their tables without a schema. Searched through the caller's
# search_path, a temporary table of the same name (pg_temp comes first by default) would
# stand in for the real one: a fake configuration, or a closed session shown as open. Each
# function searches its own schema, then pg_temp last.
FUNCTIONS_PINNED_TO_THEIR_SCHEMA = r"""
DO $$
DECLARE
    function regprocedure;
BEGIN
    FOR function IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.proname LIKE 'payments\_%' AND p.pronamespace = current_schema()::regnamespace
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', function,
                       current_schema());
    END LOOP;
END;
$$;
"""


def trigger_functions_sql() -> str:
    return TRIGGER_FUNCTIONS.replace("__DEFAULT_CURRENCY__", _sql_text(DEFAULT_CURRENCY))


def triggers_sql() -> str:
    moves = []
    for table, trigger in STATUS_TRIGGERS.items():
        arguments = ", ".join(_sql_text(f"{old}>{new}") for old, new in STATUS_MOVES[table])
        moves.append(
            f"CREATE TRIGGER {trigger} BEFORE UPDATE OF status ON {table}\n"
            f"    FOR EACH ROW EXECUTE FUNCTION payments_status_moves_forward({arguments});"
        )
    money = []
    for table, (trigger, columns) in MONEY_COLUMNS.items():
        arguments = ", ".join(_sql_text(column) for column in columns)
        money.append(
            f"CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE ON {table}\n"
            f"    FOR EACH ROW EXECUTE FUNCTION payments_money_has_currency_scale({arguments});"
        )
    return "\n".join(
        [
            """
CREATE TRIGGER payments_payment_session_is_open
    BEFORE INSERT OR UPDATE ON payments_cashtransaction
    FOR EACH ROW EXECUTE FUNCTION payments_payment_session_is_open();

CREATE TRIGGER payments_commission_base_is_payment_tax
    BEFORE INSERT OR UPDATE OF base_amount, cash_transaction_id ON payments_commission
    FOR EACH ROW EXECUTE FUNCTION payments_commission_base_is_payment_tax();
CREATE TRIGGER payments_commission_base_is_payment_tax
    BEFORE UPDATE OF tax_amount ON payments_cashtransaction
    FOR EACH ROW EXECUTE FUNCTION payments_commission_base_is_payment_tax();

CREATE CONSTRAINT TRIGGER payments_commission_cancelled_iff_payment_voided
    AFTER INSERT OR UPDATE ON payments_commission
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION payments_commission_cancelled_iff_payment_voided();
CREATE CONSTRAINT TRIGGER payments_commission_cancelled_iff_payment_voided
    AFTER INSERT OR UPDATE ON payments_cashtransaction
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION payments_commission_cancelled_iff_payment_voided();

CREATE TRIGGER payments_commission_amount_rounded_for_currency
    BEFORE INSERT OR UPDATE OF base_amount, rate, amount ON payments_commission
    FOR EACH ROW EXECUTE FUNCTION payments_commission_amount_rounded_for_currency();

CREATE TRIGGER payments_configuration_currency_fixed_once_sessions_exist
    BEFORE INSERT OR UPDATE OF currency_code OR DELETE ON payments_systemconfiguration
    FOR EACH ROW EXECUTE FUNCTION payments_configuration_currency_fixed_once_sessions_exist();
""",
            *moves,
            *money,
        ]
    )


def triggers_remove_sql() -> str:
    drops = [
        "DROP TRIGGER IF EXISTS payments_payment_session_is_open ON payments_cashtransaction;",
        "DROP TRIGGER IF EXISTS payments_commission_base_is_payment_tax ON payments_commission;",
        "DROP TRIGGER IF EXISTS payments_commission_base_is_payment_tax"
        " ON payments_cashtransaction;",
        "DROP TRIGGER IF EXISTS payments_commission_cancelled_iff_payment_voided"
        " ON payments_commission;",
        "DROP TRIGGER IF EXISTS payments_commission_cancelled_iff_payment_voided"
        " ON payments_cashtransaction;",
        "DROP TRIGGER IF EXISTS payments_commission_amount_rounded_for_currency"
        " ON payments_commission;",
        "DROP TRIGGER IF EXISTS payments_configuration_currency_fixed_once_sessions_exist"
        " ON payments_systemconfiguration;",
    ]
    drops += [f"DROP TRIGGER IF EXISTS {t} ON {table};" for table, t in STATUS_TRIGGERS.items()]
    drops += [f"DROP TRIGGER IF EXISTS {t} ON {table};" for table, (t, _) in MONEY_COLUMNS.items()]
    functions = [
        "payments_payment_session_is_open()",
        "payments_commission_base_is_payment_tax()",
        "payments_commission_cancelled_iff_payment_voided()",
        "payments_status_moves_forward()",
        "payments_money_has_currency_scale()",
        "payments_commission_amount_rounded_for_currency()",
        "payments_configuration_currency_fixed_once_sessions_exist()",
        "payments_configured_currency()",
        "payments_currency_minor_units(text)",
    ]
    drops += [f"DROP FUNCTION IF EXISTS {function};" for function in functions]
    return "\n".join(drops)


@dataclass(frozen=True)
class ForeignKeyRule:
    """A composite foreign key and the unique key it points at."""

    name: str
    table: str
    columns: str
    target_table: str
    target_key_name: str
    target_columns: str
    # The ids of the rows that break it, in id order.
    violators_sql: str


FOREIGN_KEY_RULES = (
    ForeignKeyRule(
        name="payments_payment_agent_is_session_agent",
        table="payments_cashtransaction",
        columns="session_id, agent_id",
        target_table="payments_cashsession",
        target_key_name="payments_session_id_agent_unique",
        target_columns="id, agent_id",
        violators_sql=(
            "SELECT t.id FROM payments_cashtransaction t"
            " JOIN payments_cashsession s ON s.id = t.session_id"
            " WHERE t.agent_id <> s.agent_id ORDER BY t.id"
        ),
    ),
    ForeignKeyRule(
        name="payments_commission_payment_session_agent_agree",
        table="payments_commission",
        columns="cash_transaction_id, session_id, agent_id",
        target_table="payments_cashtransaction",
        target_key_name="payments_payment_id_session_agent_unique",
        target_columns="id, session_id, agent_id",
        violators_sql=(
            "SELECT c.id FROM payments_commission c"
            " JOIN payments_cashtransaction t ON t.id = c.cash_transaction_id"
            " WHERE (c.session_id, c.agent_id) <> (t.session_id, t.agent_id) ORDER BY c.id"
        ),
    ),
)


@dataclass(frozen=True)
class TriggerRule:
    """A rule a trigger holds: it checks rows as they are written, so rows already there
    that break it are only reported; a write that touches what the rule reads may be
    refused until they are corrected."""

    name: str
    table: str
    violators_sql: str


_PLACES = "payments_currency_minor_units(payments_configured_currency())"


def _off_scale(columns: list[str]) -> str:
    return " OR ".join(f"{column} <> round({column}, {_PLACES})" for column in columns)


TRIGGER_RULES = (
    TriggerRule(
        name="payments_commission_base_is_payment_tax",
        table="payments_commission",
        violators_sql=(
            "SELECT c.id FROM payments_commission c"
            " JOIN payments_cashtransaction t ON t.id = c.cash_transaction_id"
            " WHERE c.base_amount <> t.tax_amount ORDER BY c.id"
        ),
    ),
    TriggerRule(
        name="payments_commission_cancelled_iff_payment_voided",
        table="payments_commission",
        violators_sql=(
            "SELECT c.id FROM payments_commission c"
            " JOIN payments_cashtransaction t ON t.id = c.cash_transaction_id"
            " WHERE (c.status = 'cancelled') <> (t.status = 'voided') ORDER BY c.id"
        ),
    ),
    TriggerRule(
        name="payments_commission_amount_rounded_for_currency",
        table="payments_commission",
        violators_sql=(
            f"SELECT id FROM payments_commission"  # noqa: S608 - constant SQL
            f" WHERE amount <> round(base_amount * rate / 100, {_PLACES}) ORDER BY id"
        ),
    ),
    *(
        TriggerRule(
            name=trigger,
            table=table,
            violators_sql=f"SELECT id FROM {table} WHERE {_off_scale(columns)} ORDER BY id",  # noqa: S608
        )
        for table, (trigger, columns) in MONEY_COLUMNS.items()
    ),
)


def _violators(schema_editor, sql: str) -> list[int]:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


def _ids(ids: list[int]) -> str:
    shown = ", ".join(str(pk) for pk in ids[:FIRST_IDS])
    more = f" and {len(ids) - FIRST_IDS} more" if len(ids) > FIRST_IDS else ""
    return f"id {shown}{more}"


def not_valid_message(*, rule: str, table: str, ids: list[int], find_sql: str) -> str:
    return (
        f"\n  {rule}: {len(ids)} existing row(s) of {table} break this rule "
        f"({_ids(ids)}). It was added NOT VALID: new and changed rows are checked, "
        f"these are not. Correct them (find them with: {find_sql};), then run:\n"
        f"    ALTER TABLE {table} VALIDATE CONSTRAINT {rule};\n"
    )


def trigger_rule_message(*, rule: str, table: str, ids: list[int], find_sql: str) -> str:
    return (
        f"\n  {rule}: {len(ids)} existing row(s) of {table} break this rule "
        f"({_ids(ids)}). A trigger holds it, so it checks rows only as they are written: "
        "these stay as they are, and a write that touches what the rule reads may be refused "
        f"until they are corrected. Correct them (find them with: {find_sql};).\n"
    )


def _report(message: str) -> None:
    sys.stdout.write(message)
    sys.stdout.flush()


class AddConstraintCheckingRows(migrations.AddConstraint):
    """``AddConstraint`` that counts the existing rows a CHECK would refuse first. With
    none, it is added as usual; with some, on PostgreSQL, it is added ``NOT VALID`` and
    a message says which rows and how to validate it afterwards, instead of failing."""

    report: Callable[[str], None] = staticmethod(_report)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if schema_editor.connection.vendor != "postgresql" or not self.allow_migrate_model(
            schema_editor.connection.alias, model
        ):
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        table = model._meta.db_table
        quote = schema_editor.quote_name
        check = self.constraint._get_check_sql(model, schema_editor)
        # The model's own CHECK, compiled by Django with its values quoted.
        find = f"SELECT id FROM {quote(table)} WHERE NOT ({check}) ORDER BY id"  # noqa: S608
        ids = _violators(schema_editor, find)
        statement = str(self.constraint.create_sql(model, schema_editor))
        if ids:
            statement += " NOT VALID"
            self.report(
                not_valid_message(rule=self.constraint.name, table=table, ids=ids, find_sql=find)
            )
        schema_editor.execute(statement, params=None)


def install_postgresql_rules(apps, schema_editor) -> None:
    """The composite foreign keys (``NOT VALID`` when existing rows break them), then the
    functions and triggers. PostgreSQL only: the demo's SQLite has the CHECKs alone."""
    if schema_editor.connection.vendor != "postgresql":
        return
    for rule in FOREIGN_KEY_RULES:
        schema_editor.execute(
            f"ALTER TABLE {rule.target_table} ADD CONSTRAINT {rule.target_key_name}"
            f" UNIQUE ({rule.target_columns})",
            params=None,
        )
        ids = _violators(schema_editor, rule.violators_sql)
        statement = (
            f"ALTER TABLE {rule.table} ADD CONSTRAINT {rule.name} FOREIGN KEY ({rule.columns})"
            f" REFERENCES {rule.target_table} ({rule.target_columns})"
        )
        if ids:
            statement += " NOT VALID"
            _report(
                not_valid_message(
                    rule=rule.name, table=rule.table, ids=ids, find_sql=rule.violators_sql
                )
            )
        schema_editor.execute(statement, params=None)
    schema_editor.execute(minor_units_function_sql(), params=None)
    schema_editor.execute(trigger_functions_sql(), params=None)
    schema_editor.execute(FUNCTIONS_PINNED_TO_THEIR_SCHEMA, params=None)
    schema_editor.execute(triggers_sql(), params=None)
    for rule in TRIGGER_RULES:
        ids = _violators(schema_editor, rule.violators_sql)
        if ids:
            _report(
                trigger_rule_message(
                    rule=rule.name, table=rule.table, ids=ids, find_sql=rule.violators_sql
                )
            )


def remove_postgresql_rules(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(triggers_remove_sql(), params=None)
    for rule in reversed(FOREIGN_KEY_RULES):
        schema_editor.execute(
            f"ALTER TABLE {rule.table} DROP CONSTRAINT IF EXISTS {rule.name}", params=None
        )
        schema_editor.execute(
            f"ALTER TABLE {rule.target_table} DROP CONSTRAINT IF EXISTS {rule.target_key_name}",
            params=None,
        )


def not_valid_constraints(using: str = DEFAULT_DB_ALIAS) -> list[tuple[str, str]]:
    """(table, constraint) of every constraint of the payments tables still NOT VALID."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.conrelid::regclass::text, c.conname FROM pg_constraint c"
            " JOIN pg_class t ON t.oid = c.conrelid"
            " WHERE NOT c.convalidated AND t.relname LIKE %s"
            " AND t.relnamespace = current_schema()::regnamespace"
            " ORDER BY 1, 2",
            ["payments\\_%"],
        )
        return list(cursor.fetchall())
