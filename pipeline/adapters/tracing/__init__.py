"""Hosting-origin tracing: DNS, RDAP, CDNs and big providers, jurisdiction.

`Tracer` (`tracer.py`) does the network work for a batch of hosts; the trace stage
(`pipeline.stages.trace`) records its results on cases. The process's one tracer is
held by the runtime (`pipeline.app.tracers.tracer_for`).
"""
