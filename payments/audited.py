"""The cash tables whose rows verification checks against the audit trail, and their
material fields: what a row must still hold for its audit entry to vouch for it
(auditing/rows.py)."""

from typing import Any

from django.db import models

from auditing.rows import AuditedTable, row_state
from payments.models import CashSession, CashTransaction, Commission

AUDITED_TABLES = (
    AuditedTable(
        model=CashSession,
        fields=(
            "number",
            "agent_id",
            "status",
            "opened_at",
            "opening_balance",
            "closed_at",
            "auto_closed",
            "expected_balance",
            "counted_balance",
            "discrepancy",
            "reconciled_at",
        ),
    ),
    AuditedTable(
        model=CashTransaction,
        fields=(
            "receipt_number",
            "session_id",
            "agent_id",
            "payer_reference",
            "tax_amount",
            "amount_tendered",
            "change_given",
            "status",
            "created_at",
            "voided_at",
        ),
    ),
    AuditedTable(
        model=Commission,
        fields=(
            "cash_transaction_id",
            "session_id",
            "agent_id",
            "base_amount",
            "rate",
            "amount",
            "status",
            "created_at",
            "paid_at",
            "cancelled_at",
        ),
    ),
)
_FIELDS = {table.model: table.fields for table in AUDITED_TABLES}


def states_after(*rows: models.Model) -> dict[str, list[dict[str, Any]]]:
    """``data["after"]`` of an audit entry that created or changed ``rows``."""
    after: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        after.setdefault(row._meta.label_lower, []).append(row_state(row, _FIELDS[type(row)]))
    return after
