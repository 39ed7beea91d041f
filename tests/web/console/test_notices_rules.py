"""The notices page (delivery truth, rendered text, placeholders, resolving an
unconfirmed notice as the CLI does) and the rules page as a table."""

from __future__ import annotations

import re

from sqlalchemy import select

from pipeline.core.messaging import DISPATCH
from pipeline.store.models import Case, Event, Notice
from tests.web.console.conftest import add_person, logged_in_client, queued_case


def _notices(runtime, ref):
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        case_id = session.execute(select(Case.id).where(Case.ref == ref)).scalar_one()
        rows = [
            Notice(case_id=case_id, destination="rs_police", destination_kind="police",
                   kind="notice", channel="file", state="sent", token="a", created_at=now,
                   sent_at=now, subject="Report C-1", body="Dear colleagues, the URL ..."),
            Notice(case_id=case_id, destination="provider", destination_kind="provider",
                   kind="notice", channel="smtp", state="unconfirmed", token="b",
                   created_at=now, last_error="no reply after the final dot"),
            Notice(case_id=case_id, destination="registrar", destination_kind="registrar",
                   kind="notice", channel="smtp", state="dead", token="c", created_at=now,
                   last_error="550 mailbox unavailable"),
        ]
        session.add_all(rows)
        session.flush()
        return {n.state: n.id for n in rows}


def test_the_notices_page_tells_the_truth_about_delivery(sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "ana", "analyst")
    ref = queued_case(runtime, "http://pics.example.rs/1.html")
    ids = _notices(runtime, ref)
    with logged_in_client(runtime, "ana") as client:
        page = client.get("/console/notices").text
        row = page.split(f'id="notice-{ids["sent"]}"')[1].split("</tr>")[0]
        assert "written to outbox" in row and ">sent<" not in row
        unconfirmed = page.split(f'id="notice-{ids["unconfirmed"]}"')[1].split("</tr>")[0]
        assert "may or may not have it" in unconfirmed
        assert "resolve-" not in unconfirmed  # analysts do not resolve
        dead = page.split(f'id="notice-{ids["dead"]}"')[1].split("</tr>")[0]
        assert "550 mailbox unavailable" in dead
        # A police notice's text may hold the reporter's contact: not for analysts.
        assert "Dear colleagues" not in page
        assert "may hold the reporter&#39;s contact" in page or (
            "may hold the reporter's contact" in page)
        filtered = client.get("/console/notices", params={"state": "dead"}).text
        assert f'id="notice-{ids["dead"]}"' in filtered
        assert f'id="notice-{ids["sent"]}"' not in filtered
        bad = client.get("/console/notices", params={"state": "nonsense"})
        assert bad.status_code == 422 and "state:" not in bad.text
        assert 'href="#n-state">Choose a state from the list.</a>' in bad.text
        assert 'id="n-state" aria-invalid="true"' in bad.text


def test_a_supervisor_resolves_an_unconfirmed_notice_with_the_clis_audit(sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "sue", "supervisor")
    ref = queued_case(runtime, "http://pics.example.rs/1.html")
    ids = _notices(runtime, ref)
    with logged_in_client(runtime, "sue") as client:
        page = client.get("/console/notices").text
        assert "Dear colleagues" in page  # the rendered text, for a supervisor
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        refused = client.post(f"/console/notices/{ids['unconfirmed']}/resolve",
                              data={"csrf": csrf, "outcome": "send_again", "reason": ""})
        assert refused.status_code == 422 and "reason:" not in refused.text
        assert f'href="#reason-{ids["unconfirmed"]}">Write what the receiver said' in (
            refused.text)
        assert re.search(rf'id="reason-{ids["unconfirmed"]}"[^>]*aria-invalid="true"',
                         refused.text)
        done = client.post(f"/console/notices/{ids['unconfirmed']}/resolve", data={
            "csrf": csrf, "outcome": "send_again", "reason": "they never got it"})
        assert done.status_code == 303
    with runtime.session_factory() as session:
        notice = session.get(Notice, ids["unconfirmed"])
        assert notice.state == "planned"
        event = session.execute(select(Event).where(Event.action == "notice_send_again")
                                ).scalar_one()
        assert event.actor == "operator:sue"
    assert ids["unconfirmed"] in runtime.enqueuer.ids(DISPATCH)


def test_the_rules_page_is_a_table_with_placeholders_summarised(sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "sue", "supervisor")
    with logged_in_client(runtime, "sue") as client:
        page = client.get("/console/rules").text
    assert '<table id="rules">' in page
    assert page.count("<tr><td><code>") >= 3  # one row per shipped rule
    assert "<th>When</th><th>Then</th><th>Why</th>" in page
    summary = page.split('id="placeholders"')[1].split("</section>")[0]
    assert re.search(r"\d+ destinations? ha(s|ve) a placeholder address", summary)
    assert 'tabindex="0"' in page  # the scrollable table is reachable by keyboard
