"""Imports every model module so that `Base.metadata` knows every table (Alembic's
autogenerate, the schema tests and `create_all` in tests read it)."""

from pipeline.store import (  # noqa: F401
    assessment_models,
    console_models,
    helpline_models,
    mail_models,
    models,
    ops_models,
    takedown_models,
    trace_models,
)
