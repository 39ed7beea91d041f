"""The takedown monitoring tables."""

from __future__ import annotations

from pipeline.store import takedown_models
from tests.store.schema_support import schema_differences


def test_the_tables_are_what_the_migrations_make(migrated_url):
    assert schema_differences(migrated_url, takedown_models) == []
