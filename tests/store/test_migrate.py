"""Migrations: the chain goes up to the models' schema and back down again on both
databases, so an operator can roll a release back."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

import pipeline.store.models_all  # noqa: F401  (every table on the metadata)
from pipeline.store.db import Base, normalise_database_url
from pipeline.store.migrate import alembic_config, upgrade


def _index_differences(url: str) -> list[object]:
    engine = create_engine(normalise_database_url(url))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    return [d for d in diff if isinstance(d, tuple) and "index" in d[0]]


def test_every_migration_goes_down_and_up_again_on_both_databases(tmp_path, pg_database_url):
    for url in (f"sqlite:///{tmp_path}/m.db", pg_database_url):
        upgrade(url)
        command.downgrade(alembic_config(url), "0008")
        upgrade(url)


def test_the_indexes_of_the_models_are_what_the_migrations_make(pg_database_url):
    upgrade(pg_database_url)
    assert _index_differences(pg_database_url) == []


def test_the_reconcilers_waiting_states_are_in_its_partial_indexes():
    """The (state, state_changed_at) indexes cover only the states the reconciler looks
    in (migration 0012): a state added to its list needs the index to cover it too."""
    from pipeline.stages.reconciler import PENDING
    from pipeline.store.models import Case, Report

    for model in (Report, Case):
        [index] = [i for i in model.__table__.indexes if i.name.endswith("_state_changed")]
        where = str(index.dialect_options["postgresql"]["where"])
        assert where == str(index.dialect_options["sqlite"]["where"])
        for waiting_model, state, _stage in PENDING:
            if waiting_model is model:
                assert f"'{state}'" in where, (model.__tablename__, state)
