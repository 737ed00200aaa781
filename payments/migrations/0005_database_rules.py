"""Every domain rule of the money tables that a database can hold, held by the database
(issue 14), with names that say the rule: ``payments_<table>_<rule>``.

The CHECK constraints are the models' (``Meta.constraints``); the composite foreign keys,
the functions and the triggers are payments/database_rules.py's, for PostgreSQL only (the
demo's SQLite has the CHECKs).

Existing rows are checked first: a CHECK or foreign key that some rows break is added
``NOT VALID`` (new and changed rows are checked, those are not) and one message per rule
names the rows and the ``ALTER TABLE ... VALIDATE CONSTRAINT`` to run once they are
corrected; ``check --deploy`` keeps listing it until then. The deploy does not fail.
"""

import django.db.models.expressions
import django.db.models.functions.math
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models

from payments.database_rules import (
    AddConstraintCheckingRows,
    install_postgresql_rules,
    remove_postgresql_rules,
)


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0004_audited_rows_baseline'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddConstraintCheckingRows(
            model_name='agent',
            constraint=models.CheckConstraint(condition=models.Q(('commission_rate__isnull', True), models.Q(('commission_rate__gte', Decimal('0')), ('commission_rate__lte', Decimal('100'))), _connector='OR'), name='payments_agent_commission_rate_in_bounds'),
        ),
        AddConstraintCheckingRows(
            model_name='cashsession',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['closed', 'open', 'reconciled'])), name='payments_session_status_valid'),
        ),
        AddConstraintCheckingRows(
            model_name='cashsession',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status__in', ['closed', 'reconciled']), _negated=True), models.Q(('closed_at__isnull', False), ('expected_balance__isnull', False)), _connector='OR'), name='payments_session_closed_has_closed_at_and_expected'),
        ),
        AddConstraintCheckingRows(
            model_name='cashsession',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'open'), _negated=True), models.Q(('auto_closed', False), ('closed_at__isnull', True), ('closed_by__isnull', True), ('counted_balance__isnull', True), ('discrepancy__isnull', True), ('expected_balance__isnull', True), ('reconciled_at__isnull', True), ('reconciled_by__isnull', True)), _connector='OR'), name='payments_session_open_has_no_closing_fields'),
        ),
        AddConstraintCheckingRows(
            model_name='cashsession',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'reconciled'), _negated=True), models.Q(('counted_balance__isnull', False), ('reconciled_at__isnull', False), ('reconciled_by__isnull', False)), _connector='OR'), name='payments_session_reconciled_has_count_and_reconciler'),
        ),
        AddConstraintCheckingRows(
            model_name='cashsession',
            constraint=models.CheckConstraint(condition=models.Q(('status', 'reconciled'), models.Q(('reconciled_at__isnull', True), ('reconciled_by__isnull', True)), _connector='OR'), name='payments_session_unreconciled_has_no_reconciler'),
        ),
        AddConstraintCheckingRows(
            model_name='cashsession',
            constraint=models.CheckConstraint(condition=models.Q(('counted_balance__isnull', True), models.Q(('discrepancy', django.db.models.expressions.CombinedExpression(models.F('counted_balance'), '-', models.F('expected_balance'))), ('discrepancy__isnull', False), ('expected_balance__isnull', False)), _connector='OR'), name='payments_session_discrepancy_is_counted_minus_expected'),
        ),
        AddConstraintCheckingRows(
            model_name='cashsession',
            constraint=models.CheckConstraint(condition=models.Q(('counted_balance__isnull', True), ('counted_balance__gte', 0), _connector='OR'), name='payments_session_counted_not_negative'),
        ),
        AddConstraintCheckingRows(
            model_name='cashsession',
            constraint=models.CheckConstraint(condition=models.Q(('closed_at__isnull', True), ('closed_at__gte', models.F('opened_at')), _connector='OR'), name='payments_session_closed_after_opened'),
        ),
        AddConstraintCheckingRows(
            model_name='cashsession',
            constraint=models.CheckConstraint(condition=models.Q(('auto_closed', False), ('closed_by__isnull', True), _connector='OR'), name='payments_session_auto_closed_has_no_closer'),
        ),
        AddConstraintCheckingRows(
            model_name='cashtransaction',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['completed', 'voided'])), name='payments_payment_status_valid'),
        ),
        AddConstraintCheckingRows(
            model_name='cashtransaction',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'voided'), _negated=True), models.Q(('voided_at__isnull', False), models.Q(('void_reason', ''), _negated=True)), _connector='OR'), name='payments_payment_voided_has_time_and_reason'),
        ),
        AddConstraintCheckingRows(
            model_name='cashtransaction',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'completed'), _negated=True), models.Q(('void_reason', ''), ('voided_at__isnull', True), ('voided_by__isnull', True)), _connector='OR'), name='payments_payment_completed_has_no_void_fields'),
        ),
        AddConstraintCheckingRows(
            model_name='commission',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['cancelled', 'paid', 'pending'])), name='payments_commission_status_valid'),
        ),
        AddConstraintCheckingRows(
            model_name='commission',
            constraint=models.CheckConstraint(condition=models.Q(('rate__gte', Decimal('0')), ('rate__lte', Decimal('100'))), name='payments_commission_rate_in_bounds'),
        ),
        AddConstraintCheckingRows(
            model_name='commission',
            constraint=models.CheckConstraint(condition=models.Q(('amount', django.db.models.functions.math.Round(django.db.models.expressions.CombinedExpression(django.db.models.expressions.CombinedExpression(models.F('base_amount'), '*', models.F('rate')), '/', models.Value(Decimal('100'))), precision=2)), ('amount', django.db.models.functions.math.Round(django.db.models.expressions.CombinedExpression(django.db.models.expressions.CombinedExpression(models.F('base_amount'), '*', models.F('rate')), '/', models.Value(Decimal('100'))), precision=0)), _connector='OR'), name='payments_commission_amount_is_base_times_rate'),
        ),
        AddConstraintCheckingRows(
            model_name='commission',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'pending'), _negated=True), models.Q(('cancelled_at__isnull', True), ('paid_at__isnull', True), ('paid_by__isnull', True)), _connector='OR'), name='payments_commission_pending_has_no_paid_or_cancelled_at'),
        ),
        AddConstraintCheckingRows(
            model_name='commission',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'paid'), _negated=True), models.Q(('cancelled_at__isnull', True), ('paid_at__isnull', False)), _connector='OR'), name='payments_commission_paid_has_paid_at'),
        ),
        AddConstraintCheckingRows(
            model_name='commission',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'cancelled'), _negated=True), models.Q(('cancelled_at__isnull', False), ('paid_at__isnull', True)), _connector='OR'), name='payments_commission_cancelled_has_cancelled_at'),
        ),
        AddConstraintCheckingRows(
            model_name='notification',
            constraint=models.CheckConstraint(condition=models.Q(('kind__in', ['reconciliation_reminder', 'session_auto_closed', 'session_expired'])), name='payments_notification_kind_valid'),
        ),
        AddConstraintCheckingRows(
            model_name='reconciliationreminder',
            constraint=models.CheckConstraint(condition=models.Q(('kind__in', ['admin_summary', 'agent'])), name='payments_reminder_kind_valid'),
        ),
        AddConstraintCheckingRows(
            model_name='systemconfiguration',
            constraint=models.CheckConstraint(condition=models.Q(('pk', 1)), name='payments_configuration_singleton_pk_1'),
        ),
        AddConstraintCheckingRows(
            model_name='systemconfiguration',
            constraint=models.CheckConstraint(condition=models.Q(('currency_code__in', ['EUR', 'KMF', 'MGA', 'MUR', 'USD', 'XAF', 'XOF'])), name='payments_configuration_currency_code_valid'),
        ),
        AddConstraintCheckingRows(
            model_name='systemconfiguration',
            constraint=models.CheckConstraint(condition=models.Q(('reconciliation_tolerance__gte', 0)), name='payments_configuration_tolerance_not_negative'),
        ),
        AddConstraintCheckingRows(
            model_name='systemconfiguration',
            constraint=models.CheckConstraint(condition=models.Q(('session_timeout_hours__gte', 1), ('session_timeout_hours__lte', 168)), name='payments_configuration_timeout_hours_in_bounds'),
        ),
        AddConstraintCheckingRows(
            model_name='systemconfiguration',
            constraint=models.CheckConstraint(condition=models.Q(('default_commission_rate__gte', Decimal('0')), ('default_commission_rate__lte', Decimal('100'))), name='payments_configuration_default_rate_in_bounds'),
        ),
        migrations.RunPython(install_postgresql_rules, remove_postgresql_rules),
    ]
