"""The roles on every admin page and action: each registered model admin's list, add,
change, delete and history pages (of a real object), its custom pages (``get_urls()``) and
its actions, and each app's index, for a supervisor, an auditor and an administrator made
members of the groups every migrate brings up to backoffice/roles.py.

The tables below are the spec. A page or an action that is not in them fails the test: a
new page must be classified here before it ships.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django_celery_beat.models import ClockedSchedule, IntervalSchedule, SolarSchedule
from django_celery_results.models import GroupResult, TaskResult

from auditing.chain import Violation, ViolationKind
from auditing.selectors import audit_chain_head
from auditing.services import verification_run_finish, verification_run_start
from auditing.verification import VerificationResult
from mailing.models import OutboxSweep, SmtpConfiguration
from payments.models import Notification, NotificationKind, ReconciliationReminder, ReminderKind
from payments.services import session_close, session_open, transaction_record
from tasks.models import Heartbeat, Incident, IncidentKind
from tests.factories import AgentFactory, StaffUserFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.frozen_at(dt.datetime(2026, 5, 20, 7, 0, tzinfo=dt.UTC)),
]

ROLES = ("supervisor", "auditor", "administrator")
GROUPS = {"supervisor": "Supervisors", "auditor": "Auditors", "administrator": "Administrators"}

# Expected status per role, in the order of ROLES. 403: refused; 302: a redirect (a
# singleton's list opens its one row for whoever may see it); 404: an app index shows
# nothing to a user with no permission in that app.
NO = (403, 403, 403)
SUPERVISORS_VIEW = (200, 403, 200)
AUDITORS_VIEW = (403, 200, 200)
BOTH_VIEW = (200, 200, 200)
ADMINS = (403, 403, 200)


def read_only(codes: tuple[int, int, int]) -> dict[str, tuple[int, int, int]]:
    """A model the role may only look at: its list, row and history; no add, no delete."""
    return {"changelist": codes, "add": NO, "change": codes, "delete": NO, "history": codes}


PAGES: dict[str, dict[str, tuple[int, int, int]]] = {
    "auth.group": {**read_only(NO)},
    "auth.user": {**read_only(ADMINS), "auth_user_password_change": NO},
    # Schedules: administrators manage them.
    **{
        f"django_celery_beat.{model}": {**read_only(ADMINS), "add": ADMINS, "delete": ADMINS}
        for model in (
            "periodictask",
            "crontabschedule",
            "intervalschedule",
            "solarschedule",
            "clockedschedule",
        )
    },
    "django_celery_results.taskresult": read_only(ADMINS),
    "django_celery_results.groupresult": read_only(ADMINS),
    # The audit trail: auditors and administrators read it; acknowledging a finding is a
    # superuser's (auditing/admin.py may_acknowledge).
    "auditing.auditentry": read_only(AUDITORS_VIEW),
    "auditing.checkpoint": read_only(AUDITORS_VIEW),
    "auditing.verificationrun": {
        **read_only(AUDITORS_VIEW),
        "auditing_verificationrun_findings_csv": AUDITORS_VIEW,
    },
    "auditing.verificationfinding": {
        **read_only(AUDITORS_VIEW),
        "auditing_verificationfinding_acknowledge": NO,
    },
    # Mail: administrators only.
    "mailing.emailmessage": read_only(ADMINS),
    "mailing.outboxsweep": read_only(ADMINS),
    "mailing.smtpconfiguration": {
        **read_only(ADMINS),
        "changelist": (403, 403, 302),
        "mailing_smtpconfiguration_send_test": ADMINS,
    },
    # Cash records: supervisors and administrators; administrators manage agents.
    "payments.systemconfiguration": {**read_only(SUPERVISORS_VIEW), "changelist": (302, 403, 302)},
    "payments.agent": {**read_only(SUPERVISORS_VIEW), "add": ADMINS},
    "payments.cashsession": {
        **read_only(SUPERVISORS_VIEW),
        "payments_cashsession_reconcile": SUPERVISORS_VIEW,
    },
    "payments.cashtransaction": read_only(SUPERVISORS_VIEW),
    "payments.commission": read_only(SUPERVISORS_VIEW),
    "payments.notification": read_only(SUPERVISORS_VIEW),
    "payments.reconciliationreminder": read_only(SUPERVISORS_VIEW),
    "payments.dailycounter": read_only(ADMINS),
    # Reports: every role.
    "reporting.commissionreport": {
        **read_only(BOTH_VIEW),
        "reporting_commissionreport_csv": BOTH_VIEW,
        "reporting_commissionreport_xlsx": BOTH_VIEW,
    },
    # Job health: administrators.
    "tasks.jobhealth": read_only(ADMINS),
    "tasks.heartbeat": read_only(ADMINS),
    "tasks.incident": read_only(ADMINS),
}

APP_INDEXES: dict[str, tuple[int, int, int]] = {
    "auth": (404, 404, 200),
    "django_celery_beat": (404, 404, 200),
    "django_celery_results": (404, 404, 200),
    "auditing": (404, 200, 200),
    "mailing": (404, 404, 200),
    "payments": (200, 404, 200),
    "reporting": BOTH_VIEW,
    "tasks": (404, 404, 200),
}

# The actions each role is offered on each list (Django hides the others).
ACTIONS: dict[str, dict[str, set[str]]] = {
    "django_celery_beat.periodictask": {
        "administrator": {
            "delete_selected",
            "enable_tasks",
            "disable_tasks",
            "toggle_tasks",
            "run_tasks",
        },
    },
    **{
        f"django_celery_beat.{model}": {"administrator": {"delete_selected"}}
        for model in ("crontabschedule", "intervalschedule", "solarschedule", "clockedschedule")
    },
    "payments.cashsession": {
        "supervisor": {"reconcile_sessions"},
        "administrator": {"reconcile_sessions"},
    },
    "payments.commission": {"administrator": {"mark_paid"}},
    "mailing.emailmessage": {"administrator": {"retry_delivery"}},
}

# Arguments of custom pages beyond the object's id (none yet).
URL_ARGUMENTS: dict[str, dict[str, str]] = {}

STANDARD_PAGES = ("changelist", "add", "change", "delete", "history")


# --- Data: a real row of every registered model --------------------------------------------


def violation(kind: ViolationKind, sequence: int) -> Violation:
    return Violation(
        kind=kind,
        sequence=sequence,
        expected="a" * 64,
        stored="b" * 64,
        detail="a finding for the roles' tests",
        reference=f"checkpoint {sequence} {'c' * 64}",
    )


@pytest.fixture
def every_model(clock, run_command, config, smtp_configuration):
    """What the office holds after a month: a session closed, a report, a verification run
    with findings, the schedules, job health; the rest made directly."""
    agent = AgentFactory()
    clock.move_to(dt.datetime(2026, 4, 10, 8, 0, tzinfo=dt.UTC))
    session = session_open(agent=agent, opening_balance=Decimal("1000.00"), actor=agent.user)
    transaction_record(
        session=session,
        payer_reference="NIF-1",
        tax_amount=Decimal("500.00"),
        amount_tendered=Decimal("500.00"),
        actor=agent.user,
    )
    clock.move_to(dt.datetime(2026, 4, 10, 17, 0, tzinfo=dt.UTC))
    session_close(session=session, counted_cash=Decimal("1400.00"), actor=agent.user)
    clock.move_to(dt.datetime(2026, 5, 20, 7, 0, tzinfo=dt.UTC))
    run_command("sync_schedules")
    run_command("generate_commission_report", "--email", "boss@example.com")
    run_command("audit_checkpoint")
    run = verification_run_start(
        started_at=dt.datetime(2026, 5, 20, 7, 0, tzinfo=dt.UTC),
        trigger="beat",
        full=False,
        range_start=dt.date(2026, 5, 1),
        range_end=dt.date(2026, 5, 19),
        head=audit_chain_head(),
    )
    verification_run_finish(
        run=run,
        result=VerificationResult(
            entries_checked=1, first_sequence=1, last_sequence=1, ranges=[(1, 1)]
        ),
        violations=[violation(ViolationKind.CHECKPOINT_MISMATCH, 1)],
        duration_ms=5,
    )
    Notification.objects.create(
        agent=agent, kind=NotificationKind.SESSION_EXPIRED, session=session, title="t", message="m"
    )
    ReconciliationReminder.objects.create(
        kind=ReminderKind.AGENT, agent=agent, day=dt.date(2026, 5, 19), session_numbers=[]
    )
    OutboxSweep.load()
    SmtpConfiguration.load()
    Heartbeat.objects.create(name="beat", beat_at=dt.datetime(2026, 5, 20, 6, 59, tzinfo=dt.UTC))
    Incident.objects.create(
        kind=IncidentKind.choices[0][0],
        subject="close_expired_sessions",
        opened_at=dt.datetime(2026, 5, 20, 6, 0, tzinfo=dt.UTC),
    )
    IntervalSchedule.objects.create(every=10, period=IntervalSchedule.MINUTES)
    SolarSchedule.objects.create(event="sunrise", latitude=-18.9, longitude=47.5)
    ClockedSchedule.objects.create(clocked_time=dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    TaskResult.objects.create(task_id="roles-task", task_name="tasks.audit_checkpoint")
    GroupResult.objects.create(group_id="roles-group")


@pytest.fixture
def role_clients() -> dict[str, Client]:
    clients = {}
    for role in ROLES:
        user = StaffUserFactory(username=role)
        user.groups.add(Group.objects.get(name=GROUPS[role]))
        client = Client()
        client.force_login(user)
        clients[role] = client
    return clients


# --- The pages -----------------------------------------------------------------------------


def custom_urls(model_admin, obj) -> dict[str, str]:
    """The model admin's own pages, by URL name, built for ``obj`` when they take its id."""
    opts = model_admin.model._meta
    standard = {f"{opts.app_label}_{opts.model_name}_{page}" for page in STANDARD_PAGES}
    urls = {}
    for pattern in model_admin.get_urls():
        if not pattern.name or pattern.name in standard:
            continue
        keywords = dict(URL_ARGUMENTS.get(pattern.name, {}))
        for name in pattern.pattern.converters:
            if name in ("object_id", "id", "pk"):
                keywords[name] = obj.pk
        try:
            urls[pattern.name] = reverse(f"admin:{pattern.name}", kwargs=keywords)
        except NoReverseMatch:
            pytest.fail(f"{pattern.name}: say its arguments in URL_ARGUMENTS")
    return urls


def every_page() -> list[tuple[str, str, str]]:
    """(model, page, url) for every registered model admin."""
    pages = []
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        obj = model._default_manager.order_by("pk").first()
        assert obj is not None, f"no {opts.label_lower} row: add one to the every_model fixture"
        prefix = f"admin:{opts.app_label}_{opts.model_name}"
        pages += [
            (opts.label_lower, "changelist", reverse(f"{prefix}_changelist")),
            (opts.label_lower, "add", reverse(f"{prefix}_add")),
            (opts.label_lower, "change", reverse(f"{prefix}_change", args=[obj.pk])),
            (opts.label_lower, "delete", reverse(f"{prefix}_delete", args=[obj.pk])),
            (opts.label_lower, "history", reverse(f"{prefix}_history", args=[obj.pk])),
        ]
        pages += [
            (opts.label_lower, name, url) for name, url in custom_urls(model_admin, obj).items()
        ]
    return pages


def test_every_page_and_every_app_is_in_the_table(every_model):
    registered = {model._meta.label_lower for model in admin.site._registry}
    assert registered == set(PAGES), "classify every registered model in PAGES"
    for model, page, _url in every_page():
        assert page in PAGES[model], f"{model} {page}: classify it in PAGES"
    assert {model._meta.app_label for model in admin.site._registry} == set(APP_INDEXES)
    assert set(ACTIONS) <= set(PAGES)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_its_pages(every_model, role_clients, role):
    client = role_clients[role]
    index = ROLES.index(role)
    wrong = []
    for model, page, url in every_page():
        expected = PAGES[model].get(page)
        got = client.get(url).status_code
        if expected is None or got != expected[index]:
            wrong.append(f"{model} {page} {url}: {got}, expected {expected and expected[index]}")
    for app_label, expected in APP_INDEXES.items():
        got = client.get(reverse("admin:app_list", args=[app_label])).status_code
        if got != expected[index]:
            wrong.append(f"app {app_label}: {got}, expected {expected[index]}")
    assert client.get(reverse("admin:index")).status_code == 200
    assert wrong == []


@pytest.mark.parametrize("role", ROLES)
def test_each_role_is_offered_exactly_its_actions(every_model, role_clients, role, rf):
    request = rf.get("/")
    request.user = get_user_model().objects.get(username=role)
    offered = {}
    for model, model_admin in admin.site._registry.items():
        if not model_admin.has_view_or_change_permission(request):
            continue  # the list itself is refused (the pages' test)
        actions = set(model_admin.get_actions(request))
        if actions:
            offered[model._meta.label_lower] = actions
    expected = {model: by_role[role] for model, by_role in ACTIONS.items() if role in by_role}
    assert offered == expected


def test_a_staff_user_without_a_role_sees_nothing(every_model):
    client = Client()
    client.force_login(StaffUserFactory(username="nobody"))
    # Refused everywhere; a singleton's list only redirects to its refused row.
    shown = {
        url: status
        for _model, _page, url in every_page()
        if (status := client.get(url).status_code) not in (302, 403)
    }
    assert shown == {}


def test_the_roles_grant_no_user_administration_and_auditors_change_nothing():
    for name in GROUPS.values():
        group = Group.objects.get(name=name)
        # Administrators see users, to link an agent to one; nobody may change one.
        allowed = {"view_user"} if name == "Administrators" else set()
        held = set(
            group.permissions.filter(content_type__app_label="auth").values_list(
                "codename", flat=True
            )
        )
        assert held == allowed
    administrators = Group.objects.get(name="Administrators")
    assert administrators.permissions.filter(codename="run_schedule").exists()
    assert administrators.permissions.filter(codename="view_email_content").exists()
    for name in ("Supervisors", "Auditors"):
        group = Group.objects.get(name=name)
        assert not group.permissions.filter(codename__in=["run_schedule", "view_email_content"])
    # Auditors change nothing.
    assert set(
        Group.objects.get(name="Auditors").permissions.values_list("codename", flat=True)
    ) == {
        "view_auditentry",
        "view_checkpoint",
        "view_verificationrun",
        "view_verificationfinding",
        "view_commissionreport",
        "view_commissionreportline",
        "view_commissionreportdelivery",
    }


def test_an_administrator_finds_the_user_to_link_an_agent_to(client):
    """The agent form's user field is an autocomplete, which asks for view on users."""
    user = StaffUserFactory(username="ops-admin")
    user.groups.add(Group.objects.get(name=GROUPS["administrator"]))
    StaffUserFactory(username="rakoto")
    client.force_login(user)

    response = client.get(
        "/admin/autocomplete/",
        {"term": "rako", "app_label": "payments", "model_name": "agent", "field_name": "user"},
    )

    assert response.status_code == 200
    assert [result["text"] for result in response.json()["results"]] == ["rakoto"]
