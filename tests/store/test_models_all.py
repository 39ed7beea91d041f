"""`models_all` puts every table on the metadata: Alembic's autogenerate and the schema
tests read `Base.metadata` after importing it alone, so a model module it missed would
be proposed for dropping (the helpline's tables once were)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, inspect

from pipeline.store.db import normalise_database_url

STORE = Path(__file__).resolve().parents[2] / "pipeline" / "store"


def _tables_in_a_fresh_process() -> set[str]:
    code = ("import json, pipeline.store.models_all\n"
            "from pipeline.store.db import Base\n"
            "print(json.dumps(sorted(Base.metadata.tables)))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_importing_models_all_alone_declares_every_table_the_migrations_make(migrated_url):
    engine = create_engine(normalise_database_url(migrated_url))
    try:
        made = set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()
    assert _tables_in_a_fresh_process() == made


def test_every_model_module_is_imported():
    source = (STORE / "models_all.py").read_text(encoding="utf-8")
    modules = sorted(p.stem for p in STORE.glob("*models.py") if p.stem != "models_all")
    assert modules and [m for m in modules if m not in source] == []
