"""PostgreSQL plans each execution of a prepared statement with its values.

psycopg prepares a statement on the server after five uses; PostgreSQL would then
settle on a generic plan, made without the parameters, for the life of the
connection. Over a table that was nearly empty when that plan was made, `id =
ANY($1)` became a sequential scan, and importing 100,000 reports into a new database
took twice the database's CPU (`pipeline.store.db.make_engine`)."""

from __future__ import annotations

from sqlalchemy import text, update

from pipeline.store.models import Case


def test_prepared_statements_are_planned_with_each_executions_values(pg_runtime):
    table = Case.__table__
    with pg_runtime.session_factory() as session:
        assert session.execute(text("SHOW plan_cache_mode")).scalar_one() == (
            "force_custom_plan")
        for attempt in range(12):  # prepared after five, then planned each time
            session.execute(update(table).where(table.c.id.in_([attempt, attempt + 1]))
                            .values(report_count=table.c.report_count + 1))
        plans = session.execute(text(
            "SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0) "
            "FROM pg_prepared_statements WHERE statement LIKE 'UPDATE cases%'")).one()
        session.rollback()
    assert plans[0] == 0, "a generic plan was used"
    assert plans[1] >= 5, "the statement was not prepared: nothing was checked"
