"""App: what wires the stages to a running process.

The runtime (settings, database, Redis, the process's tracer), the analysts' use
cases (`casework`: one function per action, called by the API, the console and the
CLI alike), authentication and users, the scheduler, health, the metrics
collector, dead letters and the privacy jobs. Entry points (web, cli, workers) sit
above it.
"""
