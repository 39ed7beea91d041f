"""hotline: the case-processing pipeline of an internet hotline."""

__version__ = "0.1.0"
