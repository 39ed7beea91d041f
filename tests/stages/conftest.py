"""The trace stage's tests use the tracer fixtures of the tracing adapter's tests."""

from tests.adapters.tracing.conftest import (  # noqa: F401
    bootstrap_dir,
    fake_dns,
    fake_rdap,
    make_tracer,
    trace_config,
)
