"""The three roles (README, "Roles"): Supervisors, Auditors and Administrators, each a group
holding the least it needs. Giving someone a role is adding them to a group.

Permissions are rows that Django's post_migrate signal creates only after every migration
has run, so on a new database none exists yet when this runs. We create them here first
with ``create_permissions`` over the migration's own app registry (the known trick), rather
than syncing the groups in a post_migrate handler: a handler would run on every migrate and
grant again what an administrator deliberately took away from a group; a migration runs
once, after the migrations its permissions come from, and a later change to the roles is a
new migration, visible in review. The lists are frozen here, as a migration's data must be.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def _view(app_label: str, *models: str) -> list[tuple[str, str]]:
    return [(app_label, f"view_{model}") for model in models]


def _manage(app_label: str, *models: str) -> list[tuple[str, str]]:
    return [
        (app_label, f"{action}_{model}")
        for model in models
        for action in ("add", "change", "delete", "view")
    ]


REPORTS = _view("reporting", "commissionreport", "commissionreportline", "commissionreportdelivery")

# Cash records and the reports about them; reconciling is the one change the admin makes to
# a session (every other field is read-only, payments/admin.py ServiceActionsAdminMixin),
# so change_cashsession is the permission to reconcile.
SUPERVISORS = [
    *_view(
        "payments",
        "agent",
        "cashsession",
        "cashtransaction",
        "commission",
        "notification",
        "reconciliationreminder",
        "systemconfiguration",
    ),
    ("payments", "change_cashsession"),
    *REPORTS,
]

# The audit trail and what checks it, and the reports: to read, never to change.
AUDITORS = [
    *_view("auditing", "auditentry", "checkpoint", "verificationrun", "verificationfinding"),
    *REPORTS,
]

# Everything above, and running the office: agents, configuration, commissions paid,
# schedules (and running one by hand), the mail server and the mail, job health. Users and
# groups stay with superusers: whoever edits users can make themselves a superuser.
ADMINISTRATORS = [
    *SUPERVISORS,
    *AUDITORS,
    *_view("payments", "dailycounter"),
    ("payments", "add_agent"),
    ("payments", "change_agent"),
    ("payments", "change_systemconfiguration"),
    ("payments", "change_commission"),
    *_manage(
        "django_celery_beat",
        "periodictask",
        "crontabschedule",
        "intervalschedule",
        "solarschedule",
        "clockedschedule",
    ),
    ("backoffice", "run_schedule"),
    *_view("mailing", "emailmessage", "emailattempt", "outboxsweep", "smtpconfiguration"),
    ("mailing", "change_emailmessage"),
    ("mailing", "view_email_content"),
    ("mailing", "change_smtpconfiguration"),
    *_view("tasks", "jobhealth", "heartbeat", "incident"),
    *_view("django_celery_results", "taskresult", "groupresult"),
]

ROLES = {
    "Supervisors": SUPERVISORS,
    "Auditors": AUDITORS,
    "Administrators": ADMINISTRATORS,
}


def roles_create(apps, schema_editor) -> None:
    for app_config in apps.get_app_configs():
        # create_permissions skips an app without a models module; the migration registry's
        # app configs have none, so pretend for the call.
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, wanted in ROLES.items():
        permissions = []
        for app_label, codename in dict.fromkeys(wanted):
            # .get(): a permission missing here is a mistake in these lists; fail loudly.
            permissions.append(
                permission_model.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group, _ = group_model.objects.get_or_create(name=name)
        # Exactly the role: a group of that name made by hand before is brought to it.
        group.permissions.set(permissions)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("backoffice", "0001_schedule_run_permission"),
        ("payments", "0006_differences_rounded_for_sqlite"),
        ("auditing", "0005_row_findings"),
        ("mailing", "0004_email_content_permission"),
        ("reporting", "0006_one_report_per_month"),
        ("tasks", "0002_job_health_requested_by"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("django_celery_results", "0014_alter_taskresult_status"),
    ]

    # Leaving the groups on the way back: removing them would take people's roles away.
    operations = [migrations.RunPython(roles_create, migrations.RunPython.noop)]
