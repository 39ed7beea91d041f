"""The normalise stage (pipeline.stages.normalise): reports' URLs read with the configured
rules, facts of accepted URLs kept, rejected input with a readable reason."""

from __future__ import annotations

from pipeline.core.config import UrlsSection
from pipeline.domain.urls import canonicalise


def test_the_normalise_stage_keeps_facts_of_urls_and_reasons_of_rejected_input(runtime):
    from pipeline.stages.normalise import normalise_reports
    from pipeline.store.models import Report
    from tests.factories import make_report

    with runtime.session_factory.begin() as session:
        good = make_report(session, at=runtime.clock.now(),
                           url=" http://me:pw@Bücher.example/a?utm_source=x ").id
        bad = make_report(session, at=runtime.clock.now(), url="javascript:alert(1)").id
        done = normalise_reports(session, [good, bad], clock=runtime.clock)
    assert done == [good]
    with runtime.session_factory() as session:
        accepted, refused = session.get(Report, good), session.get(Report, bad)
    assert accepted.state == "normalised"
    assert accepted.canonical_url == "http://xn--bcher-kva.example/a"
    assert (accepted.host, accepted.host_unicode) == ("xn--bcher-kva.example", "bücher.example")
    assert accepted.url_userinfo == "me:pw" and accepted.url_kind == "domain"
    assert accepted.dedup_key == canonicalise("http://bücher.example/a").dedup_key
    assert refused.state == "rejected"
    assert refused.reject_reason == "javascript: URLs are scripts, not addresses of content"


def test_the_normalise_actor_reads_urls_with_the_configured_rules(settings_factory):
    from pipeline.app.runtime import build_runtime
    from pipeline.core.clock import FrozenClock
    from pipeline.domain.urls import configure
    from pipeline.store.migrate import upgrade
    from pipeline.store.models import Report
    from tests.factories import make_report
    from workers import actors, context

    settings = settings_factory(urls={"strip_params": ["sid"], "schemes": ["http"]})
    upgrade(settings.database.url)
    rt = build_runtime(settings, clock=FrozenClock())
    context.set_runtime(rt)
    try:
        with rt.session_factory.begin() as session:
            ids = [make_report(session, at=rt.clock.now(), url=u).id
                   for u in ("http://example.com/?sid=1&utm_source=2", "https://example.com/")]
        actors.normalise(ids)
        with rt.session_factory() as session:
            first, second = (session.get(Report, i) for i in ids)
    finally:
        context.set_runtime(None)
        configure(UrlsSection())
        rt.close()
    assert first.canonical_url == "http://example.com/?utm_source=2"
    assert second.state == "rejected" and "https: is not accepted" in second.reject_reason
