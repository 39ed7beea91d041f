from __future__ import annotations

import pytest

from pipeline.store.migrate import upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A database migrated to head: a new SQLite file, or the run's PostgreSQL one."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_database_url")
    url = f"sqlite:///{tmp_path}/schema.db"
    upgrade(url)
    return url
