"""Core: what every layer needs and that needs nothing of the hotline's own.

The error tree, the clock, the configuration, logging with redaction, secrets, the
names of the stage queues (`messaging`), the Prometheus counters, the working-time
calendar and the cipher of reporter contacts. Nothing here opens a session or
imports a higher layer (docs/dev/architecture.md).
"""
