"""The tables of operations: legal holds and heartbeats."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect

from pipeline.store import ops_models
from pipeline.store.db import normalise_database_url
from tests.store.schema_support import schema_differences


def test_the_tables_are_what_the_migrations_make(migrated_url):
    # The foreign key to helpline_cases is made by migration 0017 only: the helpline
    # models import the base models, so these cannot name that table.
    allowed = {("remove_fk", "fk_legal_holds_helpline_case")}
    assert schema_differences(migrated_url, ops_models, allowed=allowed) == []
    engine = create_engine(normalise_database_url(migrated_url))
    try:
        keys = inspect(engine).get_foreign_keys("legal_holds")
    finally:
        engine.dispose()
    assert {(k["constrained_columns"][0], k["referred_table"]) for k in keys} == {
        ("case_id", "cases"), ("helpline_case_id", "helpline_cases")}
