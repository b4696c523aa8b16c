"""The cold-start shortcut's list of migration names matches the migrations themselves."""

from __future__ import annotations

from simpleai.audit.migrations import migrations
from simpleai.audit.sqlite import MIGRATION_SET, MIGRATIONS


def test_the_names_the_store_checks_are_the_migrations_in_order() -> None:
    assert migrations.name == MIGRATION_SET
    assert tuple(migration.name for migration in migrations._migrations) == MIGRATIONS
