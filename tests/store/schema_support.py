"""What a model module declares, against what the migrations make: the differences
Alembic's autogenerate finds in that module's tables (columns, types, nullability,
indexes, unique constraints, foreign keys), on a database migrated to head."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Table, create_engine

import pipeline.store.models_all  # noqa: F401  (every table on the metadata)
from pipeline.store.db import Base, normalise_database_url


def tables_of(module: ModuleType) -> set[str]:
    """The tables the module itself declares (its models and plain tables)."""
    names = set()
    for value in vars(module).values():
        if isinstance(value, Table) and value.metadata is Base.metadata:
            names.add(value.name)
        elif (isinstance(value, type) and issubclass(value, Base) and value is not Base
              and value.__module__ == module.__name__ and hasattr(value, "__table__")):
            names.add(value.__table__.name)
    return names


def _table_name(diff: tuple[Any, ...]) -> str | None:
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        return diff[1].name
    if kind in ("add_column", "remove_column") or kind.startswith("modify_"):
        return diff[2]
    thing = diff[1]
    table = getattr(thing, "table", None)
    return table.name if table is not None else None


def _expression_indexes() -> set[str]:
    return {index.name for table in Base.metadata.tables.values()
            for index in table.indexes
            if any(not isinstance(e, Column) for e in index.expressions)}


def schema_differences(url: str, module: ModuleType,
                       allowed: set[tuple[str, str]] = frozenset()) -> list[tuple[Any, ...]]:
    """Autogenerate's differences in `module`'s tables, except `allowed` (kind, name)
    pairs. SQLite cannot reflect expression indexes, so those are compared on
    PostgreSQL only."""
    tables = tables_of(module)
    assert tables, f"{module.__name__} declares no table"
    engine = create_engine(normalise_database_url(url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            found = compare_metadata(context, Base.metadata)
            sqlite = conn.dialect.name == "sqlite"
    finally:
        engine.dispose()
    skip = _expression_indexes() if sqlite else set()
    out = []
    for diff in found:
        for item in diff if isinstance(diff, list) else [diff]:
            if _table_name(item) not in tables:
                continue
            name = getattr(item[1], "name", None)
            if "index" in item[0] and name in skip:
                continue
            if (item[0], name) in allowed:
                continue
            out.append(item)
    return out
