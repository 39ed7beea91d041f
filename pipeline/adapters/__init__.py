"""Adapters: the outside world behind small interfaces.

DNS and RDAP tracing with its caches, rate limits and provider data
(`adapters/tracing`); the channels a notice is delivered through, SMTP, webhook and
the outbox folder (`adapters/channels`); the stages call these and never open a
socket themselves. An adapter never imports a stage.
"""
