"""Adapters: the outside world behind small interfaces.

DNS and RDAP tracing with its caches, rate limits and provider data
(`adapters/tracing`); the stages call these and never open a socket themselves.
"""
