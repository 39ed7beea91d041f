"""Imports every model module so that `Base.metadata` knows every table."""

from pipeline import assessment_models, models, ops_models  # noqa: F401
from pipeline import takedown as takedown_models  # noqa: F401
from pipeline.store import helpline_models  # noqa: F401
from pipeline.tracing import models as tracing_models  # noqa: F401
from pipeline.web.console import models as console_models  # noqa: F401

# Other parts add their model modules here.
