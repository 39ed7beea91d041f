"""Stages: the hotline's steps, one module per stage or activity.

Each is a plain function taking its dependencies (session, tracer, clock,
settings) and returning the ids to send on: intake, import, normalise, dedupe,
trace, queueing, assessment, routing, dispatch, monitoring, escalation, police
hold, retention, statistics, evidence and the reconciler. Stages do not import
each other round, and never the layers above (app, web, cli, workers).
"""
