"""Dispatch through real loopback servers (tests/dispatch_support.py): retries, dead
letters, unconfirmed hand-overs, and exactly-once delivery while workers die or
worker processes are killed. What each channel does on its own is in
tests/adapters/test_channels.py."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from pipeline.core.clock import FrozenClock, SystemClock
from pipeline.core.messaging import DISPATCH, RecordingEnqueuer
from pipeline.stages.reconciler import reconcile
from pipeline.store.models import DeadLetter, Event, Notice
from tests.dispatch_support import (
    HOOK_KEY,
    SMTP_PASSWORD,
    WebhookReceiver,
    add_notices,
    deliver,
    live_settings,
    notice,
)
from tests.factories import make_case

ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- tests


def test_a_passing_failure_is_retried_after_a_backoff_with_the_same_idempotency_key(
    runtime, settings_factory, webhook
):
    settings = live_settings(settings_factory, runtime, min_backoff_seconds=60)
    (notice_id,) = add_notices(runtime, 1, channel="webhook", address=webhook.url,
                               destination="partner-hook")
    webhook.answers = [503, 429]
    assert deliver(runtime, settings, [notice_id]).retrying == [notice_id]
    n = notice(runtime, notice_id)
    assert (n.state, n.attempts, n.due_at) == (
        "failed", 1, runtime.clock.now() + dt.timedelta(seconds=60))
    assert "503" in n.last_error
    assert deliver(runtime, settings, [notice_id]).retrying == []  # not due yet
    runtime.clock.advance(seconds=61)
    with runtime.session_factory() as session:
        reconcile(session, runtime.enqueuer, now=runtime.clock.now(), deadline_seconds=120,
                  limit=10)
    assert runtime.enqueuer.ids(DISPATCH) == [notice_id]
    assert deliver(runtime, settings, [notice_id]).retrying == [notice_id]
    assert notice(runtime, notice_id).due_at == runtime.clock.now() + dt.timedelta(seconds=120)
    runtime.clock.advance(seconds=121)
    assert deliver(runtime, settings, [notice_id]).sent == [notice_id]
    assert webhook.keys == [notice(runtime, notice_id).token]


def test_a_permanent_failure_is_dead_lettered_visibly_and_can_be_retried(
    runtime, settings_factory, webhook
):
    from pipeline.app.deadletters import list_dead_letters, retry_dead_letters

    settings = live_settings(settings_factory, runtime)
    (notice_id,) = add_notices(runtime, 1, channel="webhook", address=webhook.url,
                               destination="partner-hook")
    webhook.answers = [400]
    assert deliver(runtime, settings, [notice_id]).dead == [notice_id]
    assert notice(runtime, notice_id).state == "dead"
    with runtime.session_factory() as session:
        (letter,) = list_dead_letters(session)
        assert (letter.actor, letter.args, letter.error) == (
            "dispatch", [[notice_id]], "webhook answered 400")
    runtime.enqueuer = RecordingEnqueuer()
    assert retry_dead_letters(runtime) == 1
    assert runtime.enqueuer.ids(DISPATCH) == [notice_id]
    assert deliver(runtime, settings, [notice_id]).sent == [notice_id]
    assert webhook.count() == 1


def test_a_notice_failing_past_its_attempts_is_dead_lettered(
    runtime, settings_factory, webhook
):
    settings = live_settings(settings_factory, runtime, max_attempts=2)
    (notice_id,) = add_notices(runtime, 1, channel="webhook", address=webhook.url,
                               destination="partner-hook")
    webhook.answers = [500, 500, 500]
    assert deliver(runtime, settings, [notice_id]).retrying == [notice_id]
    runtime.clock.advance(days=1)
    assert deliver(runtime, settings, [notice_id]).dead == [notice_id]
    with runtime.session_factory() as session:
        assert session.execute(select(DeadLetter)).scalar_one().retries == 2


class Killed(BaseException):
    """Stands for the process dying: not an Exception, so nothing catches it."""


def events(runtime, action):
    with runtime.session_factory() as session:
        return list(session.execute(select(Event).where(Event.action == action)
                                    .order_by(Event.id)).scalars())


def reconcile_and_deliver(runtime, settings, clock=None):
    """What the scheduler and a dispatch worker do: find stuck notices, deliver them."""
    clock = clock or runtime.clock
    enqueuer = RecordingEnqueuer()
    with runtime.session_factory() as session:
        reconcile(session, enqueuer, now=clock.now(), deadline_seconds=120, limit=1000)
    return deliver(runtime, settings, enqueuer.ids(DISPATCH), clock=clock)


def die(*args, **kwargs):
    raise Killed()


def deliver_until_killed(runtime, settings, notice_id, monkeypatch, where, dying=die):
    """Deliver `notice_id` with the worker dying when it reaches `where` (a function
    of pipeline.stages.dispatch, replaced by `dying`)."""
    import pipeline.stages.dispatch as dispatch_module

    with monkeypatch.context() as patch:
        patch.setattr(dispatch_module, where, dying)
        with pytest.raises(Killed):
            deliver(runtime, settings, [notice_id])


def test_an_smtp_worker_dying_after_the_hand_over_leaves_the_notice_unconfirmed_not_resent(
    runtime, settings_factory, smtp_server, monkeypatch
):
    """Killed after the server accepted the message, before `sent` was committed: the
    marker says the message may be with the server, so it is never sent again."""
    from pipeline.stages.dispatch import resolve_unconfirmed

    monkeypatch.setenv("HOTLINE_SMTP_PASSWORD", SMTP_PASSWORD)
    settings = live_settings(settings_factory, runtime, smtp_server, lease_seconds=300)
    (notice_id,) = add_notices(runtime, 1)
    deliver_until_killed(runtime, settings, notice_id, monkeypatch, "_finish")
    assert notice(runtime, notice_id).state == "handing_over"
    assert smtp_server.count() == 1
    assert deliver(runtime, settings, [notice_id]).sent == []  # the lease still holds
    handed_over = runtime.clock.now()  # the clock did not move since the hand-over
    runtime.clock.advance(seconds=301)
    result = reconcile_and_deliver(runtime, settings)
    assert (result.sent, result.unconfirmed) == ([], [notice_id])
    n = notice(runtime, notice_id)
    assert (n.state, n.lease_owner, n.sent_at) == ("unconfirmed", None, None)
    assert "check with the receiver" in n.last_error
    (event,) = events(runtime, "notice_unconfirmed")
    assert event.case_id == n.case_id and event.data["notice"] == notice_id
    for _ in range(2):  # nothing sends it again by itself
        runtime.clock.advance(seconds=3600)
        assert reconcile_and_deliver(runtime, settings).sent == []
        assert deliver(runtime, settings, [notice_id]).sent == []
    assert smtp_server.ids == [f"<{n.token}@hotline.example.rs>"]
    # The operator checked with the receiver: it has the message.
    with runtime.session_factory.begin() as session:
        resolve_unconfirmed(session, notice_id, outcome="sent", by="operator:ana",
                            reason="abuse desk confirmed receipt", now=runtime.clock.now())
    n = notice(runtime, notice_id)
    # Sent when it was handed over (the marker's lease less its length), not two hours
    # later when the operator decided: the takedown clock starts there.
    assert n.state == "sent"
    assert n.sent_at.replace(tzinfo=dt.UTC) == handed_over
    (event,) = events(runtime, "notice_confirmed_sent")
    assert (event.actor, event.data["reason"], event.data["sent_at_from"]) == (
        "operator:ana", "abuse desk confirmed receipt", "hand-over")
    assert smtp_server.count() == 1


def test_a_worker_dying_between_the_marker_and_the_final_dot_delivers_nothing_and_flags_it(
    runtime, settings_factory, smtp_server, monkeypatch
):
    """Killed right after committing the marker, before the final ".": the server never
    saw the end of the data and discarded it. The notice is flagged all the same (the
    marker cannot tell this from a death after the dot); the operator sends it again,
    and it arrives once."""
    import pipeline.stages.dispatch as dispatch_module
    from pipeline.stages.dispatch import resolve_unconfirmed

    monkeypatch.setenv("HOTLINE_SMTP_PASSWORD", SMTP_PASSWORD)
    settings = live_settings(settings_factory, runtime, smtp_server, lease_seconds=300)
    (notice_id,) = add_notices(runtime, 1)
    real_mark = dispatch_module._mark_handing_over

    def mark_then_die(*args, **kwargs):
        assert real_mark(*args, **kwargs)
        args[0].commit()
        raise Killed()

    deliver_until_killed(runtime, settings, notice_id, monkeypatch, "_mark_handing_over",
                         mark_then_die)
    assert notice(runtime, notice_id).state == "handing_over"
    runtime.clock.advance(seconds=301)
    assert reconcile_and_deliver(runtime, settings).unconfirmed == [notice_id]
    assert deliver(runtime, settings, [notice_id]).sent == []
    with runtime.session_factory.begin() as session:
        resolve_unconfirmed(session, notice_id, outcome="send_again", by="operator:ana",
                            reason="not in the receiver's logs", now=runtime.clock.now())
    assert notice(runtime, notice_id).state == "planned"
    assert deliver(runtime, settings, [notice_id]).sent == [notice_id]
    # Only now did the server get a whole message: the first DATA never ended.
    assert smtp_server.ids == [f"<{notice(runtime, notice_id).token}@hotline.example.rs>"]
    assert [e.action for e in events(runtime, "notice_send_again")] == ["notice_send_again"]


def test_a_worker_dying_before_the_marker_is_sent_again_and_arrives_exactly_once(
    runtime, settings_factory, smtp_server, monkeypatch
):
    """Killed with the whole message sent but the final "." not: the notice is still
    `sending`, the server discarded the unfinished message, and the next worker sends
    it after the lease: it arrives once."""

    monkeypatch.setenv("HOTLINE_SMTP_PASSWORD", SMTP_PASSWORD)
    settings = live_settings(settings_factory, runtime, smtp_server, lease_seconds=300)
    (notice_id,) = add_notices(runtime, 1)
    deliver_until_killed(runtime, settings, notice_id, monkeypatch, "_mark_handing_over")
    assert notice(runtime, notice_id).state == "sending"
    assert smtp_server.count() == 0
    runtime.clock.advance(seconds=301)
    result = reconcile_and_deliver(runtime, settings)
    assert (result.sent, result.unconfirmed) == ([notice_id], [])
    n = notice(runtime, notice_id)
    # The lost claim is a crash, audited, not a delivery attempt.
    assert (n.state, n.attempts, n.crashes) == ("sent", 0, 1)
    (lost,) = events(runtime, "notice_claim_lost")
    assert (lost.data["notice"], lost.data["reason"]) == (notice_id, "its lease ran out")
    assert smtp_server.ids == [f"<{n.token}@hotline.example.rs>"]


@pytest.mark.parametrize("step", ["after_250", "during_quit", "during_close"])
def test_an_smtp_worker_killed_at_each_step_after_the_final_dot(
    runtime, settings_factory, smtp_server, monkeypatch, step
):
    """`sent` is committed as soon as the server answered 250 to the final
    ".", before QUIT and the close. Killed before that commit, the notice is left
    `handing_over` (then `unconfirmed`, never resent); killed during QUIT or the
    close, it is `sent` already, with its audit event."""
    import smtplib

    monkeypatch.setenv("HOTLINE_SMTP_PASSWORD", SMTP_PASSWORD)
    settings = live_settings(settings_factory, runtime, smtp_server, lease_seconds=300)
    (notice_id,) = add_notices(runtime, 1)
    if step == "after_250":
        deliver_until_killed(runtime, settings, notice_id, monkeypatch, "_commit_sent")
    else:
        method = "quit" if step == "during_quit" else "close"
        with monkeypatch.context() as patch:
            patch.setattr(smtplib.SMTP, method, die)
            with pytest.raises(Killed):
                deliver(runtime, settings, [notice_id])
    n = notice(runtime, notice_id)
    assert smtp_server.count() == 1
    if step == "after_250":
        assert (n.state, n.sent_at) == ("handing_over", None)
        assert events(runtime, "notice_sent") == []
        runtime.clock.advance(seconds=301)
        assert reconcile_and_deliver(runtime, settings).unconfirmed == [notice_id]
    else:
        assert (n.state, n.sent_at, n.lease_owner) == ("sent", runtime.clock.now(), None)
        assert [e.data["notice"] for e in events(runtime, "notice_sent")] == [notice_id]
        runtime.clock.advance(seconds=301)
        result = reconcile_and_deliver(runtime, settings)
        assert (result.sent, result.unconfirmed) == ([], [])
    assert smtp_server.count() == 1 and notice(runtime, notice_id).attempts == 0


def _beat_as_a_worker(runtime):
    """This test process beats as a worker process would (pipeline.app.liveness)."""
    from pipeline.app.health import beat
    from pipeline.core.process import heartbeat_name

    beat(runtime, heartbeat_name())


def _release(runtime, settings, enqueuer=None):
    from pipeline.stages.reconciler import release_dead_holders

    return release_dead_holders(
        runtime.session_factory, enqueuer or RecordingEnqueuer(), now=runtime.clock.now(),
        dead_after_seconds=settings.recovery.dead_after_seconds,
        lease_seconds=settings.dispatch.lease_seconds)


def test_a_dead_workers_notices_come_back_when_its_heartbeat_stops_not_after_the_lease(
    runtime, settings_factory, smtp_server, monkeypatch
):
    """claims carry the process id of their holder; once that process's
    heartbeat is older than recovery.dead_after_seconds, its `sending` notices go out
    again at once (a lost claim, audited, not an attempt) and its `handing_over` ones
    become `unconfirmed` at once. A process still beating keeps its claims."""
    import pipeline.stages.dispatch as dispatch_module
    from pipeline.core.process import heartbeat_name, process_id
    from pipeline.store.ops_models import Heartbeat

    monkeypatch.setenv("HOTLINE_SMTP_PASSWORD", SMTP_PASSWORD)
    settings = live_settings(settings_factory, runtime, smtp_server, lease_seconds=300)
    before, after = add_notices(runtime, 2)
    _beat_as_a_worker(runtime)
    deliver_until_killed(runtime, settings, before, monkeypatch, "_mark_handing_over")
    real_mark = dispatch_module._mark_handing_over

    def mark_then_die(*args, **kwargs):
        assert real_mark(*args, **kwargs)
        args[0].commit()
        raise Killed()

    deliver_until_killed(runtime, settings, after, monkeypatch, "_mark_handing_over",
                         dying=mark_then_die)
    assert notice(runtime, before).lease_owner.startswith(process_id() + ".")
    assert (notice(runtime, before).state, notice(runtime, after).state) == (
        "sending", "handing_over")
    # Still beating: nothing is released, however often the scheduler looks.
    runtime.clock.advance(seconds=settings.recovery.dead_after_seconds - 1)
    assert _release(runtime, settings) == {}
    # Silent past dead_after_seconds: released, long before the 300 s lease.
    runtime.clock.advance(seconds=2)
    enqueuer = RecordingEnqueuer()
    assert _release(runtime, settings, enqueuer) == {
        "dead_processes": 1, "notices_released": 1, "notices_unconfirmed": 1}
    assert enqueuer.ids(DISPATCH) == [before]
    n = notice(runtime, before)
    assert (n.state, n.lease_owner, n.attempts, n.crashes) == ("planned", None, 0, 1)
    (lost,) = events(runtime, "notice_claim_lost")
    assert (lost.data["notice"], lost.data["reason"], lost.data["holder"]) == (
        before, "its worker died", process_id())
    assert notice(runtime, after).state == "unconfirmed"
    (flagged,) = events(runtime, "notice_unconfirmed")
    assert flagged.data["reason"] == "worker died after hand-over"
    with runtime.session_factory() as session:
        assert session.get(Heartbeat, heartbeat_name()) is None
    assert _release(runtime, settings) == {}  # once
    assert deliver(runtime, settings, [before, after]).sent == [before]
    assert smtp_server.ids == [f"<{n.token}@hotline.example.rs>"]


def test_a_claim_whose_holder_never_beat_waits_for_its_lease(
    runtime, settings_factory, monkeypatch
):
    """A claim made by a process without a heartbeat (a test, a one-off command) is
    not taken for dead: it comes back after dispatch.lease_seconds as before."""
    settings = settings_factory(database={"url": runtime.settings.database.url},
                                dispatch={"deliver": "outbox", "lease_seconds": 300})
    (notice_id,) = add_notices(runtime, 1)
    deliver_until_killed(runtime, settings, notice_id, monkeypatch, "_finish")
    runtime.clock.advance(seconds=60)
    assert _release(runtime, settings) == {}
    assert notice(runtime, notice_id).state == "sending"
    runtime.clock.advance(seconds=241)
    assert reconcile_and_deliver(runtime, settings).sent == [notice_id]
    assert (notice(runtime, notice_id).attempts, notice(runtime, notice_id).crashes) == (0, 1)


def test_workers_dying_never_send_a_notice_to_the_dead_letters(
    runtime, settings_factory, webhook, monkeypatch
):
    """with max_attempts 2, a notice whose workers died four times (twice
    found by a stopped heartbeat, twice by a lease that ran out) and that then failed
    once is still retried: attempts counts the one failure, crashes the four deaths."""
    settings = live_settings(settings_factory, runtime, max_attempts=2, lease_seconds=300,
                             min_backoff_seconds=60)
    (notice_id,) = add_notices(runtime, 1, channel="webhook", address=webhook.url,
                               destination="partner-hook")
    for death in range(4):
        if death % 2 == 0:
            _beat_as_a_worker(runtime)
        deliver_until_killed(runtime, settings, notice_id, monkeypatch, "_finish")
        if death % 2 == 0:
            runtime.clock.advance(seconds=settings.recovery.dead_after_seconds + 1)
            assert _release(runtime, settings)["notices_released"] == 1
        else:
            runtime.clock.advance(seconds=301)
    webhook.answers = [503]
    result = reconcile_and_deliver(runtime, settings)
    # The claim that found the lease run out recorded the fourth death.
    assert result.retrying == [notice_id]
    n = notice(runtime, notice_id)
    assert (n.state, n.attempts, n.crashes) == ("failed", 1, 4)
    assert len(events(runtime, "notice_claim_lost")) == 4
    runtime.clock.advance(seconds=61)
    assert reconcile_and_deliver(runtime, settings).sent == [notice_id]
    with runtime.session_factory() as session:
        assert session.execute(select(DeadLetter)).first() is None
    assert webhook.keys == [n.token]


def test_no_reply_to_the_final_dot_makes_the_notice_unconfirmed_at_once(
    runtime, settings_factory, smtp_server, monkeypatch
):
    import smtplib

    monkeypatch.setenv("HOTLINE_SMTP_PASSWORD", SMTP_PASSWORD)
    settings = live_settings(settings_factory, runtime, smtp_server)
    (notice_id,) = add_notices(runtime, 1)
    real_send, real_reply = smtplib.SMTP.send, smtplib.SMTP.getreply

    def send(self, data):
        real_send(self, data)
        self.dot_sent = data == b".\r\n"

    def getreply(self):
        if getattr(self, "dot_sent", False):
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return real_reply(self)

    monkeypatch.setattr(smtplib.SMTP, "send", send)
    monkeypatch.setattr(smtplib.SMTP, "getreply", getreply)
    result = deliver(runtime, settings, [notice_id])
    assert (result.sent, result.retrying, result.unconfirmed) == ([], [], [notice_id])
    n = notice(runtime, notice_id)
    assert n.state == "unconfirmed" and "SMTPServerDisconnected" in n.last_error
    assert [e.data["notice"] for e in events(runtime, "notice_unconfirmed")] == [notice_id]
    _wait_until(lambda: smtp_server.count() == 1, "the server to record the message")
    runtime.clock.advance(days=1)
    assert reconcile_and_deliver(runtime, settings).sent == []
    assert smtp_server.count() == 1


def test_only_an_unconfirmed_notice_can_be_resolved_and_only_with_a_reason(
    runtime, settings_factory
):
    from pipeline.core.errors import BadInput, NotFound
    from pipeline.stages.dispatch import resolve_unconfirmed

    (notice_id,) = add_notices(runtime, 1)
    with runtime.session_factory.begin() as session:
        with pytest.raises(BadInput, match="is planned, not unconfirmed"):
            resolve_unconfirmed(session, notice_id, outcome="sent", by="operator:x",
                                reason="r", now=runtime.clock.now())
        with pytest.raises(BadInput, match="reason"):
            resolve_unconfirmed(session, notice_id, outcome="sent", by="operator:x",
                                reason=" ", now=runtime.clock.now())
        with pytest.raises(NotFound):
            resolve_unconfirmed(session, 10**9, outcome="sent", by="operator:x",
                                reason="r", now=runtime.clock.now())


def test_a_webhook_repeat_after_a_crash_carries_the_same_key_and_is_recorded_once(
    runtime, settings_factory, webhook, monkeypatch
):

    settings = live_settings(settings_factory, runtime, lease_seconds=300)
    (notice_id,) = add_notices(runtime, 1, channel="webhook", address=webhook.url,
                               destination="partner-hook")
    deliver_until_killed(runtime, settings, notice_id, monkeypatch, "_finish")
    assert notice(runtime, notice_id).state == "sending"  # no marker for a POST
    runtime.clock.advance(seconds=301)
    assert reconcile_and_deliver(runtime, settings).sent == [notice_id]
    token = notice(runtime, notice_id).token
    assert webhook.posts == [token, token] and webhook.keys == [token]


def test_an_outbox_repeat_after_a_crash_finds_the_file_and_writes_nothing(
    runtime, settings_factory, monkeypatch
):
    import pipeline.adapters.channels as channels_module

    settings = settings_factory(database={"url": runtime.settings.database.url},
                                dispatch={"deliver": "outbox", "lease_seconds": 300})
    (notice_id,) = add_notices(runtime, 1)
    deliver_until_killed(runtime, settings, notice_id, monkeypatch, "_finish")
    outbox = settings.data_path / "outbox"
    (path,) = outbox.iterdir()
    token = notice(runtime, notice_id).token
    assert path.name == f"notice-{notice_id}-{token}.eml"
    first = path.stat()
    runtime.clock.advance(seconds=301)
    with monkeypatch.context() as patch:
        def no_second_write(*args, **kwargs):
            raise AssertionError("the outbox wrote the notice a second time")

        patch.setattr(channels_module.tempfile, "mkstemp", no_second_write)
        assert reconcile_and_deliver(runtime, settings).sent == [notice_id]
    assert [p.name for p in outbox.iterdir()] == [path.name]
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (first.st_ino,
                                                             first.st_mtime_ns)


# ------------------------------------------------------- exactly once, processes killed

WORKER = r"""
import json, random, sys
from sqlalchemy import select
from pipeline.core.clock import SystemClock
from pipeline.core.config import Settings
from pipeline.adapters.channels import Channels, WebhookChannel
from pipeline.stages.dispatch import deliver_notices, due_condition
from pipeline.store.models import Notice
from pipeline.app.runtime import build_runtime

config = json.loads(sys.argv[1])
settings = Settings(**config["settings"])
rt = build_runtime(settings)
clock = SystemClock()
channels = Channels(settings, webhook=WebhookChannel(settings, secrets=config["secrets"]))
print("ready", flush=True)
while True:
    with rt.session_factory() as session:
        ids = list(session.execute(select(Notice.id).where(due_condition(clock.now()))
                                   ).scalars())
    if not ids:
        break
    batch = random.sample(ids, min(5, len(ids)))
    deliver_notices(rt.session_factory, batch, clock=clock, settings=settings,
                    channels=channels)
"""


def _wait_until(predicate, what, limit=120.0):
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def test_notices_arrive_exactly_once_while_worker_processes_are_killed_mid_batch(
    runtime, settings_factory, smtp_server, tmp_path, monkeypatch
):
    monkeypatch.setenv("HOTLINE_SMTP_PASSWORD", SMTP_PASSWORD)
    receiver = WebhookReceiver(delay=0.02)
    try:
        settings = live_settings(settings_factory, runtime, smtp_server, lease_seconds=300)
        smtp_ids = add_notices(runtime, 30)
        hook_ids = add_notices(runtime, 30, channel="webhook", address=receiver.url,
                               destination="partner-hook")
        config = {"settings": settings.model_dump(mode="json"),
                  "secrets": {"partner-hook": HOOK_KEY}}
        script = tmp_path / "dispatch_worker.py"
        script.write_text(WORKER)
        env = {**os.environ, "HOTLINE_SMTP_PASSWORD": SMTP_PASSWORD,
               "PYTHONPATH": str(ROOT)}
        workers = [subprocess.Popen([sys.executable, str(script), json.dumps(config)],
                                    cwd=ROOT, env=env, stdout=subprocess.PIPE)
                   for _ in range(4)]
        for worker in workers:
            assert worker.stdout.readline().strip() == b"ready"

        def delivered():
            return smtp_server.count() + receiver.count()

        kills = 0
        for threshold, victims in ((10, workers[:2]), (24, workers[2:3])):
            _wait_until(lambda t=threshold: delivered() >= t, f"{threshold} deliveries")
            for victim in victims:
                if victim.poll() is None:
                    victim.send_signal(signal.SIGKILL)
                    kills += 1
        for worker in workers:
            worker.wait(timeout=300)
        assert kills >= 1

        with runtime.session_factory() as session:
            stranded = session.execute(
                select(Notice.id).where(Notice.state.in_(("sending", "handing_over")))
            ).scalars().all()
        assert stranded, "no worker was killed in the middle of a batch"

        # Reconciliation after the lease: the scheduler finds the stranded claims and
        # hand-overs; a dispatcher sends the first and flags the second.
        later = FrozenClock(SystemClock().now() + dt.timedelta(seconds=301))
        enqueuer = RecordingEnqueuer()
        with runtime.session_factory() as session:
            reconcile(session, enqueuer, now=later.now(), deadline_seconds=120, limit=1000)
        assert set(stranded) <= set(enqueuer.ids(DISPATCH))
        deliver(runtime, settings, enqueuer.ids(DISPATCH), clock=later)
        # A later round changes nothing: an unconfirmed notice is never resent.
        even_later = FrozenClock(later.now() + dt.timedelta(hours=1))
        assert reconcile_and_deliver(runtime, settings, clock=even_later).sent == []

        with runtime.session_factory() as session:
            rows = session.execute(select(Notice.id, Notice.state, Notice.token)).all()
        state = {i: s for i, s, _ in rows}
        tokens = {i: t for i, _, t in rows}
        # Messages the server took after a killed worker had sent the final "." may be
        # recorded a moment later: wait until every sent notice has arrived.
        sent_smtp = {tokens[i] for i in smtp_ids if state[i] == "sent"}

        def smtp_tokens():
            return Counter(m.removeprefix("<").split("@")[0] for m in smtp_server.ids)

        _wait_until(lambda: sent_smtp <= set(smtp_tokens()), "every sent e-mail to arrive")
        smtp_seen = smtp_tokens()
        # SMTP: every notice is sent (arrived exactly once) or unconfirmed (arrived at
        # most once, flagged for an operator). None arrived twice.
        assert {state[i] for i in smtp_ids} <= {"sent", "unconfirmed"}
        assert all(count == 1 for count in smtp_seen.values()), smtp_seen
        for i in smtp_ids:
            assert smtp_seen[tokens[i]] in ({1} if state[i] == "sent" else {0, 1}), i
        assert set(smtp_seen) <= {tokens[i] for i in smtp_ids}
        unconfirmed = [i for i in smtp_ids if state[i] == "unconfirmed"]
        assert len(unconfirmed) <= kills
        with runtime.session_factory() as session:
            flagged = session.execute(select(Event.data).where(
                Event.action == "notice_unconfirmed")).scalars().all()
        assert sorted(d["notice"] for d in flagged) == sorted(unconfirmed)
        # Webhook: every notice sent, and the receiver, honouring the Idempotency-Key,
        # recorded each exactly once. Raw repeats of a POST (same key) happen only for
        # a notice whose worker died between the 2xx and the commit of "sent".
        assert {state[i] for i in hook_ids} == {"sent"}
        hook_seen = Counter(receiver.keys)
        assert hook_seen == Counter({tokens[i]: 1 for i in hook_ids})
        assert len(receiver.posts) - len(set(receiver.posts)) <= kills
        assert receiver.bad_signatures == 0
    finally:
        receiver.stop()


def test_the_route_and_dispatch_actors_take_an_assessed_case_to_the_outbox(sqlite_runtime):
    from workers import actors, context

    rt = sqlite_runtime
    rt.settings.routing.rules_dir = str(ROOT / "rules")
    with rt.session_factory.begin() as session:
        case = make_case(session, at=rt.clock.now(), state="assessed",
                         legality="illegal_international", hosting_country="DE")
    context.set_runtime(rt)
    try:
        actors.route([case.id])
        (notice_id,) = rt.enqueuer.ids(DISPATCH)
        actors.dispatch([notice_id])
    finally:
        context.set_runtime(None)
    n = notice(rt, notice_id)
    assert (n.destination, n.state) == ("hotline-de", "sent")
    assert [p.name for p in (rt.settings.data_path / "outbox").iterdir()] == [
        f"notice-{notice_id}-{n.token}.txt"]


