"""Shared by the routing, police hold and reconciler tests: assessed cases routed with
the shipped rules, and looks at their notices."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from pipeline.app.auth import issue_token
from pipeline.domain.rules import load_ruleset
from pipeline.stages.routing import route_cases
from pipeline.store.models import Case, Notice
from tests.factories import make_case

SHIPPED = Path(__file__).resolve().parents[1] / "rules"
RULES = load_ruleset(SHIPPED)


def assessed(runtime, **fields):
    values = dict(legality="illegal_international", category="csam", hosting_country="RS",
                  hosting_abuse_email="abuse@host.rs", hosting_org="Host d.o.o.",
                  hosting_asn=64500)
    values.update(fields)
    url = values.pop("url", f"http://example.rs/{len(str(fields))}-{id(fields)}")
    with runtime.session_factory.begin() as session:
        case = make_case(session, at=runtime.clock.now(), url=url, state="assessed",
                         **values)
        return case.id


def route(runtime, *ids):
    with runtime.session_factory.begin() as session:
        return route_cases(session, list(ids), clock=runtime.clock, settings=runtime.settings,
                           ruleset=RULES)


def notices_of(runtime, case_id):
    with runtime.session_factory() as session:
        return list(session.execute(select(Notice).where(Notice.case_id == case_id)
                                    .order_by(Notice.id)).scalars())


def case_of(runtime, case_id):
    with runtime.session_factory() as session:
        return session.get(Case, case_id)


def token(runtime, scope, label, destination=None):
    with runtime.session_factory.begin() as session:
        value, _ = issue_token(session, scope=scope, label=label, at=runtime.clock.now(),
                               destination=destination)
    return {"Authorization": f"Bearer {value}"}
