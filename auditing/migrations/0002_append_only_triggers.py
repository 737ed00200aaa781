"""Make the audit table append-only on PostgreSQL: UPDATE, DELETE and TRUNCATE are refused.

The triggers guard against accidents and application bugs. A database owner can still
disable them, so verification keeps assuming that tampering can happen.
"""

from django.db import migrations

INSTALL = """
CREATE OR REPLACE FUNCTION auditing_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % is refused', TG_OP, TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER auditing_auditentry_no_update_delete
    BEFORE UPDATE OR DELETE ON auditing_auditentry
    FOR EACH ROW EXECUTE FUNCTION auditing_refuse_change();

CREATE TRIGGER auditing_auditentry_no_truncate
    BEFORE TRUNCATE ON auditing_auditentry
    FOR EACH STATEMENT EXECUTE FUNCTION auditing_refuse_change();
"""

REMOVE = """
DROP TRIGGER IF EXISTS auditing_auditentry_no_truncate ON auditing_auditentry;
DROP TRIGGER IF EXISTS auditing_auditentry_no_update_delete ON auditing_auditentry;
DROP FUNCTION IF EXISTS auditing_refuse_change();
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INSTALL, params=None)


def remove(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(REMOVE, params=None)


class Migration(migrations.Migration):
    dependencies = [("auditing", "0001_initial")]

    operations = [migrations.RunPython(install, remove)]
