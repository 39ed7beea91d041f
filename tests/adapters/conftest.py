"""The channels' tests use the loopback servers they share with the dispatch stage's."""

from tests.dispatch_support import smtp_server, webhook  # noqa: F401
