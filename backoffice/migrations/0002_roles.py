"""The three roles arrive with the schema: Supervisors, Auditors and Administrators.

The lists live in backoffice/roles.py, reviewed with the code, and this migration applies
them once; a post_migrate handler applies them again after every migrate (and after a test
database's flush), so a permission added to a role later reaches existing installs too.
It runs the live lists on purpose: a group is data the project defines, not a schema, and
a sync only adds (what a superuser granted a group on top is left alone)."""

from django.db import migrations


def roles_create(apps, schema_editor) -> None:
    from backoffice.roles import roles_sync

    roles_sync(using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("backoffice", "0001_schedule_run_permission"),
    ]

    # Going back leaves the groups: people may have been put in them since.
    operations = [migrations.RunPython(roles_create, migrations.RunPython.noop)]
