"""The groups follow backoffice/roles.py after every migrate: created when missing (a test
database flushed by a transactional test gets them back), and set to exactly their lists,
with what changed logged."""

import logging

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management.sql import emit_post_migrate_signal

from backoffice.roles import ROLES, roles_sync
from tests.migrations import migrated, migrated_to_latest

pytestmark = pytest.mark.django_db


def codenames(group_name: str) -> set[tuple[str, str]]:
    return set(
        Group.objects.get(name=group_name).permissions.values_list(
            "content_type__app_label", "codename"
        )
    )


def test_every_migrate_gives_each_group_exactly_its_role():
    for name, wanted in ROLES.items():
        assert codenames(name) == set(wanted)


def test_after_a_flush_post_migrate_brings_the_groups_back():
    Group.objects.all().delete()
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    assert set(Group.objects.values_list("name", flat=True)) == set(ROLES)
    assert codenames("Auditors") == set(ROLES["Auditors"])


def test_a_sync_sets_each_role_to_its_list_and_says_what_it_changed(caplog):
    supervisors = Group.objects.get(name="Supervisors")
    supervisors.permissions.remove(Permission.objects.get(codename="change_cashsession"))
    supervisors.permissions.add(Permission.objects.get(codename="view_dailycounter"))

    with caplog.at_level(logging.WARNING, logger="backoffice.roles"):
        roles_sync()
        roles_sync()

    assert codenames("Supervisors") == set(ROLES["Supervisors"])
    assert Group.objects.filter(name="Supervisors").count() == 1
    # Said once each, at the sync that changed it; the second sync had nothing to say.
    assert [record.getMessage() for record in caplog.records] == [
        "Role Supervisors: granted [('payments', 'change_cashsession')], as "
        "backoffice/roles.py lists",
        "Role Supervisors: withdrew [('payments', 'view_dailycounter')], which "
        "backoffice/roles.py does not list",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_roles_migration_creates_the_groups(at_backoffice_latest_afterwards):
    migrated(("backoffice", "0001_schedule_run_permission"))
    Group.objects.all().delete()

    migrated(("backoffice", "0002_roles"))

    assert set(Group.objects.values_list("name", flat=True)) == set(ROLES)
    for name, wanted in ROLES.items():
        assert codenames(name) == set(wanted)


@pytest.fixture
def at_backoffice_latest_afterwards():
    yield
    migrated_to_latest()
