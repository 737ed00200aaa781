"""The three roles (README, "Roles"): Supervisors, Auditors and Administrators, each a group
holding the least its people need. Giving someone a role is adding them to a group.

The migration ``backoffice/0002_roles`` creates the groups; they are brought up to these
lists again after every ``migrate`` by a post_migrate handler (``apps.py``), because:
- permissions are rows that post_migrate creates, after every migration has run; the
  sync creates them first (``create_permissions`` for every app), then looks them up;
- a test database that a transactional test flushed (every table truncated, then
  post_migrate sent again) gets its groups back, which the migration, run once, would
  not give: the browser and live-server tests log people in by these group names;
- the lists stay here, reviewed with the code, and every deploy applies them.
A sync sets each group to exactly its list, and logs what it changed: a role is what the
code says it is, reviewed with it, so a permission granted or removed by hand in the admin
is put back at the next deploy, visibly (give someone more through a group of your own).
"""

import logging

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Q

SUPERVISORS = "Supervisors"
AUDITORS = "Auditors"
ADMINISTRATORS = "Administrators"

logger = logging.getLogger(__name__)


def _view(app_label: str, *models: str) -> list[tuple[str, str]]:
    return [(app_label, f"view_{model}") for model in models]


def _manage(app_label: str, *models: str) -> list[tuple[str, str]]:
    return [
        (app_label, f"{action}_{model}")
        for model in models
        for action in ("add", "change", "delete", "view")
    ]


_REPORTS = _view(
    "reporting", "commissionreport", "commissionreportline", "commissionreportdelivery"
)

# Cash records and the reports about them. Reconciling is the one change the admin makes
# to a session (every other field is read-only: payments/admin.py ServiceActionsAdminMixin),
# so change_cashsession is the permission to reconcile.
_SUPERVISORS = [
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
    *_REPORTS,
]

# The audit trail and what checks it, and the reports: to read, never to change.
_AUDITORS = [
    *_view("auditing", "auditentry", "checkpoint", "verificationrun", "verificationfinding"),
    *_REPORTS,
]

# Everything above, and running the office: agents, configuration, commissions paid,
# schedules (and running one by hand), the mail server and the mail with its content, job
# health. Users and groups stay with superusers: whoever edits users can make themselves one.
_ADMINISTRATORS = [
    *_SUPERVISORS,
    *_AUDITORS,
    *_view("payments", "dailycounter"),
    ("payments", "add_agent"),
    ("payments", "change_agent"),
    # To link an agent to their login (the agent form's user field searches the users);
    # viewing users grants no way to change one.
    ("auth", "view_user"),
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

ROLES: dict[str, list[tuple[str, str]]] = {
    SUPERVISORS: _SUPERVISORS,
    AUDITORS: _AUDITORS,
    ADMINISTRATORS: _ADMINISTRATORS,
}


def roles_sync(*, using: str = DEFAULT_DB_ALIAS) -> None:
    """Create the groups that are missing and set each to exactly its role's permissions,
    logging what changed. Idempotent."""
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)
    with transaction.atomic(using=using):
        for name, wanted in ROLES.items():
            natural_keys = set(wanted)
            lookup = Q()
            for app_label, codename in natural_keys:
                lookup |= Q(content_type__app_label=app_label, codename=codename)
            permissions = list(
                Permission.objects.using(using).filter(lookup).select_related("content_type")
            )
            found = {(p.content_type.app_label, p.codename) for p in permissions}
            if missing := sorted(natural_keys - found):
                # A mistake in the lists above: fail the migrate loudly, grant nothing.
                raise LookupError(f"The {name} role names unknown permissions: {missing}")
            group, created = Group.objects.using(using).get_or_create(name=name)
            held = (
                set(natural_keys)  # a new group is what its list says: nothing to report
                if created
                else set(group.permissions.values_list("content_type__app_label", "codename"))
            )
            if added := sorted(natural_keys - held):
                logger.warning("Role %s: granted %s, as backoffice/roles.py lists", name, added)
            if removed := sorted(held - natural_keys):
                logger.warning(
                    "Role %s: withdrew %s, which backoffice/roles.py does not list", name, removed
                )
            group.permissions.set(permissions)


def roles_sync_after_migrate(sender, using: str = DEFAULT_DB_ALIAS, **kwargs) -> None:
    roles_sync(using=using)
