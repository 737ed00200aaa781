"""Record in the audit trail the state of every session, payment and commission that
exists before entries recorded rows' states (auditing/rows.py).

From now on each entry that creates or changes one of these rows records the row as it is
after the change, and a full verification checks every row against it. Rows written
before have no such entry; without this baseline each would be reported as "row with no
audit entry". The baseline trusts the rows as they are at the upgrade: it cannot show a
change made before it (auditing/README.md says so).

One ``audit.rows_baselined`` entry per table and batch of rows, appended to the chain
like any other (same lock, same HMAC). Appended entries cannot be removed, so going back
leaves them: they are harmless to the older code.
"""

from django.conf import settings
from django.db import migrations
from django.utils import timezone

from auditing.hashing import compute_entry_hash
from auditing.rows import AFTER, row_state

BATCH = 500
ACTION = "audit.rows_baselined"
GENESIS_HASH = "0" * 64
# The material fields as they were when this migration was written (payments/audited.py),
# frozen here so that a later change to that list does not change what this step did.
TABLES = (
    (
        "CashSession",
        (
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
    (
        "CashTransaction",
        (
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
    (
        "Commission",
        (
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
# The same key as auditing.services.CHAIN_LOCK_KEY: appenders wait for this step.
CHAIN_LOCK_KEY = 0x4155444954


def baseline_existing_rows(apps, schema_editor):
    AuditEntry = apps.get_model("auditing", "AuditEntry")
    connection = schema_editor.connection
    for model_name, fields in TABLES:
        model = apps.get_model("payments", model_name)
        label = f"payments.{model_name.lower()}"
        rows = model.objects.order_by("pk")
        batch = []
        for row in rows.iterator(chunk_size=BATCH):
            batch.append(row_state(row, fields))
            if len(batch) == BATCH:
                _append(AuditEntry, connection, label=label, states=batch)
                batch = []
        if batch:
            _append(AuditEntry, connection, label=label, states=batch)


def _append(AuditEntry, connection, *, label, states):
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
    head = AuditEntry.objects.order_by("-sequence").first()
    now = timezone.now()
    entry = AuditEntry(
        sequence=head.sequence + 1 if head else 1,
        previous_hash=head.current_hash if head else GENESIS_HASH,
        timestamp=max(now, head.timestamp) if head else now,
        action=ACTION,
        actor=None,
        actor_name="system",
        subject_type="",
        subject_id="",
        data={
            "reason": "rows that existed before entries recorded rows' states",
            "rows": len(states),
            AFTER: {label: states},
        },
        key_id=settings.AUDIT_CHAIN_KEY_ID,
    )
    entry.current_hash = compute_entry_hash(entry)
    entry.save(force_insert=True)


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0003_sessions_reminded_once_a_day"),
        ("auditing", "0005_row_findings"),
    ]

    operations = [
        migrations.RunPython(baseline_existing_rows, migrations.RunPython.noop, elidable=False),
    ]
