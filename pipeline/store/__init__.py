"""Store: the database, and the only code that changes a state.

Engine and sessions (`db`), every table (`models` and the `*_models` modules), the
declared states and transitions (`states`), the one way a state changes
(`lifecycle`), the hash-chained audit trail (`audit`), the session listeners that
count changes for /metrics, and the Alembic migrations. It imports only `core`.
"""
