"""Migrations driven from code (`pipeline.store.migrate`): the chain goes up and back
down again on both databases, so an operator can roll a release back. (Each model
module's test checks its tables against what the chain makes.)"""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect, text

from pipeline.store.db import normalise_database_url
from pipeline.store.migrate import alembic_config, upgrade


def test_every_migration_goes_down_and_up_again_on_both_databases(tmp_path, pg_database_url):
    for url in (f"sqlite:///{tmp_path}/m.db", pg_database_url):
        upgrade(url)
        command.downgrade(alembic_config(url), "0008")
        upgrade(url)


def test_upgrade_makes_the_folder_of_a_new_sqlite_database(tmp_path):
    url = f"sqlite:///{tmp_path}/not/there/yet/hotline.db"
    upgrade(url)
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"alembic_version", "reports", "cases", "notices", "helpline_cases"} <= tables


def test_upgrade_goes_to_the_revision_asked_for(tmp_path):
    url = f"sqlite:///{tmp_path}/m.db"
    upgrade(url, "0008")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version.startswith("0008")
        assert "helpline_cases" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_a_percent_sign_in_the_password_survives_alembics_config():
    url = "postgresql://app:50%25off@db.example/hotline"
    config = alembic_config(url)
    assert config.get_main_option("sqlalchemy.url") == normalise_database_url(url)
    assert config.get_main_option("script_location").endswith("migrations")
