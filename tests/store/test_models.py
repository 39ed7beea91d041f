"""The base models: what the migrations make of their tables, and the indexes the
reconciler relies on."""

from __future__ import annotations

from pipeline.store import models
from tests.store.schema_support import schema_differences


def test_the_tables_are_what_the_migrations_make(migrated_url):
    # The notices' foreign key to helpline_cases is made by migration 0017 only: the
    # helpline models import this module, so it cannot name their table.
    allowed = {("remove_fk", "fk_notices_helpline_case")}
    assert schema_differences(migrated_url, models, allowed=allowed) == []


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
