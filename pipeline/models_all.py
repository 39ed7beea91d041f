"""Imports every model module so that `Base.metadata` knows every table."""

from pipeline import models  # noqa: F401

# Other parts add their model modules here.
