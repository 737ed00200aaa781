"""The demo gives each seeded person their role, and a second seed adds nothing."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from payments.demo import DEMO_PASSWORD
from payments.management.commands.seed_demo import demo_roles_give
from tests.factories import StaffUserFactory

pytestmark = pytest.mark.django_db


def test_the_supervisor_and_an_auditor_get_their_groups_once():
    StaffUserFactory(username="supervisor")  # as the demo's first seed made them

    demo_roles_give()
    demo_roles_give()

    users = get_user_model().objects
    supervisor = users.get(username="supervisor")
    auditor = users.get(username="auditor")
    assert list(supervisor.groups.values_list("name", flat=True)) == ["Supervisors"]
    assert list(auditor.groups.values_list("name", flat=True)) == ["Auditors"]
    assert auditor.is_staff and not auditor.is_superuser
    assert auditor.check_password(DEMO_PASSWORD)
    assert Group.objects.get(name="Auditors").user_set.count() == 1
    assert Group.objects.get(name="Supervisors").user_set.count() == 1
    # What the groups let them do, through Django's own permission check.
    assert supervisor.has_perm("payments.change_cashsession")
    assert not supervisor.has_perm("auditing.view_auditentry")
    assert auditor.has_perm("auditing.view_auditentry")
    assert not auditor.has_perm("payments.change_cashsession")
