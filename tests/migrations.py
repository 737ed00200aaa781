"""Migration tests move the shared test database back and forth: these put it where a test
needs it, and back at the latest migrations afterwards, for the tests that follow."""

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrated(*targets: tuple[str, str]) -> MigrationExecutor:
    """Migrate to ``targets``; a new executor, which reads the applied migrations afresh."""
    MigrationExecutor(connection).migrate(list(targets))
    return MigrationExecutor(connection)


def migrated_to_latest() -> None:
    """Every app at its latest migration, and nothing left to apply."""
    executor = migrated(*MigrationExecutor(connection).loader.graph.leaf_nodes())
    assert not executor.migration_plan(executor.loader.graph.leaf_nodes())
