"""Imports every model module so that `Base.metadata` knows every table."""

from pipeline.store import (  # noqa: F401
    assessment_models,
    console_models,  # noqa: F401
    mail_models,  # noqa: F401
    models,
    ops_models,
    takedown_models,  # noqa: F401
)
from pipeline.store import trace_models as tracing_models  # noqa: F401

# Other parts add their model modules here.
