"""The `json_log` fixture: the root logger configured for JSON lines into a string,
restored afterwards (the logs' and the secrets' tests read what reached a line)."""

from __future__ import annotations

import io
import logging

import pytest

from pipeline.core.config import LoggingSection
from pipeline.core.logs import configure


@pytest.fixture
def json_log():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure(LoggingSection(level="DEBUG", format="json"), stream=stream)
    yield stream
    root.handlers[:], _ = saved
    root.setLevel(saved[1])
