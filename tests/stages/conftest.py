"""The trace stage's tests use the tracer fixtures of the tracing adapter's tests;
the dispatch stage's use the loopback servers it shares with the channels' tests."""

from tests.adapters.tracing.conftest import (  # noqa: F401
    bootstrap_dir,
    fake_dns,
    fake_rdap,
    make_tracer,
    trace_config,
)
from tests.dispatch_support import smtp_server, webhook  # noqa: F401
