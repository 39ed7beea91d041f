"""The delivery channels (pipeline/adapters/channels.py) against real loopback servers:
SMTP with STARTTLS and login, a webhook receiver that checks the signature, and the
outbox folder. The crash and exactly-once tests of the stage that drives them are in
tests/stages/test_dispatch.py."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

import pipeline.adapters.channels as channels_module
from pipeline.adapters.channels import (
    Channels,
    OutboxChannel,
    SmtpChannel,
    WebhookChannel,
    sign,
    smtp_data,
    verify_signature,
)
from pipeline.core.errors import PermanentError, RetryLater
from pipeline.stages.dispatch import deliver_notices
from pipeline.store.models import Event
from tests.dispatch_support import (
    HOOK_KEY,
    SMTP_PASSWORD,
    add_notices,
    deliver,
    live_settings,
    notice,
)


def test_smtp_delivery_uses_starttls_and_login_and_marks_the_notice_sent_once(
    runtime, settings_factory, smtp_server, monkeypatch
):
    monkeypatch.setenv("HOTLINE_SMTP_PASSWORD", SMTP_PASSWORD)
    settings = live_settings(settings_factory, runtime, smtp_server)
    (notice_id,) = add_notices(runtime, 1)
    result = deliver(runtime, settings, [notice_id])
    assert result.sent == [notice_id]
    n = notice(runtime, notice_id)
    # attempts count failed deliveries only: none here.
    assert (n.state, n.sent_at, n.attempts, n.crashes, n.lease_owner) == (
        "sent", runtime.clock.now(), 0, 0, None)
    assert smtp_server.ids == [f"<{n.token}@hotline.example.rs>"]
    (message,) = smtp_server.messages
    assert message["To"] == "abuse@host.example" and message["Subject"] == "Notice 0"
    again = deliver(runtime, settings, [notice_id])
    assert again.sent == [] and smtp_server.count() == 1
    with runtime.session_factory() as session:
        event = session.execute(select(Event).where(Event.action == "notice_sent")
                                ).scalar_one()
        assert event.case_id == n.case_id and event.data["notice"] == notice_id


def test_a_wrong_smtp_password_is_a_permanent_failure_that_is_dead_lettered(
    runtime, settings_factory, smtp_server, monkeypatch
):
    monkeypatch.setenv("HOTLINE_SMTP_PASSWORD", "wrong")
    settings = live_settings(settings_factory, runtime, smtp_server)
    (notice_id,) = add_notices(runtime, 1)
    result = deliver(runtime, settings, [notice_id])
    assert result.dead == [notice_id] and smtp_server.count() == 0
    assert "535" in notice(runtime, notice_id).last_error


def test_the_webhook_gets_signed_json_with_the_notice_token_as_idempotency_key(
    runtime, settings_factory, webhook
):
    settings = live_settings(settings_factory, runtime)
    (notice_id,) = add_notices(runtime, 1, channel="webhook", address=webhook.url,
                               destination="partner-hook")
    assert deliver(runtime, settings, [notice_id]).sent == [notice_id]
    n = notice(runtime, notice_id)
    assert webhook.keys == [n.token] and webhook.bad_signatures == 0
    assert webhook.bodies[0]["notice"] == n.token
    assert webhook.bodies[0]["text"].startswith("Please remove case")


def test_the_webhook_key_comes_from_the_environment_variable_the_directory_names(
    runtime, settings_factory, webhook, tmp_path, monkeypatch
):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "routing.yaml").write_text(
        "rules:\n  - name: all\n    description: all\n    then: [{notify: '@police'}]\n")
    (rules / "destinations.yaml").write_text(
        "home_police: police\ndestinations:\n"
        "  police: {kind: police, name: P, channel: file}\n"
        f"  partner-hook: {{kind: hotline, name: H, country: AT, channel: webhook,\n"
        f"    address: '{webhook.url}', secret_env: HOTLINE_TEST_HOOK_KEY}}\n")
    monkeypatch.setenv("HOTLINE_TEST_HOOK_KEY", HOOK_KEY)
    settings = settings_factory(database={"url": runtime.settings.database.url},
                                dispatch={"deliver": "live", "webhook_allow_http": True},
                                routing={"rules_dir": str(rules)})
    (notice_id,) = add_notices(runtime, 1, channel="webhook", address=webhook.url,
                               destination="partner-hook")
    result = deliver_notices(runtime.session_factory, [notice_id], clock=runtime.clock,
                             settings=settings)
    assert result.sent == [notice_id] and webhook.bad_signatures == 0


def test_a_placeholder_destination_is_dead_lettered_in_live_mode(runtime, settings_factory):
    settings = live_settings(settings_factory, runtime)
    (notice_id,) = add_notices(runtime, 1, address=None, destination="rs-mup-vtk")
    assert deliver(runtime, settings, [notice_id]).dead == [notice_id]
    assert "no address yet" in notice(runtime, notice_id).last_error


def test_embedded_mode_writes_notices_to_the_outbox_folder_and_sends_nothing(
    runtime, settings_factory, smtp_server
):
    settings = settings_factory(database={"url": runtime.settings.database.url},
                                dispatch=smtp_server.settings())
    assert settings.app.mode == "embedded" and settings.dispatch.deliver == "auto"
    ids = add_notices(runtime, 2)
    ids += add_notices(runtime, 1, address=None, destination="rs-mup-vtk")
    assert deliver(runtime, settings, ids).sent == ids
    assert deliver(runtime, settings, ids).sent == []
    outbox = settings.data_path / "outbox"
    files = sorted(p.name for p in outbox.iterdir())
    tokens = [notice(runtime, i).token for i in ids]
    assert files == sorted([f"notice-{ids[0]}-{tokens[0]}.eml",
                            f"notice-{ids[1]}-{tokens[1]}.eml",
                            f"notice-{ids[2]}-{tokens[2]}.txt"])
    message = email.message_from_bytes((outbox / files[0]).read_bytes(), policy=policy.default)
    assert message["To"] == "abuse@host.example"
    assert smtp_server.count() == 0


def test_a_refusal_after_the_final_dot_is_an_ordinary_failure(
    runtime, settings_factory, smtp_server, monkeypatch
):
    """A 4xx/5xx reply to the end of data is a clear answer (not delivered)."""
    monkeypatch.setenv("HOTLINE_SMTP_PASSWORD", SMTP_PASSWORD)
    settings = live_settings(settings_factory, runtime, smtp_server)
    (notice_id,) = add_notices(runtime, 1)
    smtp_server.refuse = 451
    assert deliver(runtime, settings, [notice_id]).retrying == [notice_id]
    assert notice(runtime, notice_id).state == "failed"
    smtp_server.refuse = None
    runtime.clock.advance(days=1)
    assert deliver(runtime, settings, [notice_id]).sent == [notice_id]
    assert smtp_server.count() == 1


def test_the_outbox_never_replaces_a_file_written_meanwhile(
    runtime, settings_factory, monkeypatch
):
    """Two writers racing on one notice: the second finds the name taken at the link
    and leaves the first file as it is."""
    settings = settings_factory(database={"url": runtime.settings.database.url},
                                dispatch={"deliver": "outbox"})
    (notice_id,) = add_notices(runtime, 1)
    n = notice(runtime, notice_id)
    channel = OutboxChannel(settings.data_path / "outbox", settings)
    target = channel.target(n)
    real_link = channels_module.os.link

    def link_after_a_rival(src, dst):
        Path(dst).write_bytes(b"the rival's copy")
        return real_link(src, dst)

    monkeypatch.setattr(channels_module.os, "link", link_after_a_rival)
    channel.deliver(n, at=runtime.clock.now())
    assert target.read_bytes() == b"the rival's copy"
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left



# ------------------------------------------------------------------- without a server


def test_smtp_data_ends_lines_in_crlf_and_stuffs_leading_dots():
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@x.example", "b@y.example", "s"
    message.set_content("first\n.hidden\nlast")
    data, international = smtp_data(message)
    assert not international
    assert b"\r\n..hidden\r\n" in data and data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_an_address_beyond_ascii_needs_smtputf8():
    message = EmailMessage()
    message["From"], message["To"] = "a@x.example", "žalba@primer.rs"
    message.set_content("text")
    assert smtp_data(message)[1] is True


def test_the_signature_covers_the_timestamp_and_the_body():
    signature = sign(b"key", "1700000000", b"{}")
    assert signature.startswith("sha256=")
    assert verify_signature(b"key", "1700000000", b"{}", signature)
    assert not verify_signature(b"key", "1700000001", b"{}", signature)
    assert not verify_signature(b"other", "1700000000", b"{}", signature)


def test_a_webhook_address_without_https_is_refused_unless_allowed(
    runtime, settings_factory
):
    (notice_id,) = add_notices(runtime, 1, channel="webhook",
                               address="http://127.0.0.1:9/hook", destination="partner-hook")
    settings = settings_factory(dispatch={"deliver": "live"})
    channel = WebhookChannel(settings, secrets={"partner-hook": HOOK_KEY})
    with pytest.raises(PermanentError, match="not https"):
        channel.deliver(notice(runtime, notice_id), at=runtime.clock.now())
    allowed = WebhookChannel(settings_factory(dispatch={"deliver": "live",
                                                        "webhook_allow_http": True}),
                             secrets={"partner-hook": HOOK_KEY})
    with pytest.raises(RetryLater):  # nothing listens there: a passing failure
        allowed.deliver(notice(runtime, notice_id), at=runtime.clock.now())


def test_an_unreachable_smtp_server_is_a_passing_failure_and_nothing_is_handed_over(
    runtime, settings_factory
):
    (notice_id,) = add_notices(runtime, 1)
    settings = settings_factory(dispatch={"deliver": "live", "smtp_host": "127.0.0.1",
                                          "smtp_port": 9, "smtp_timeout_seconds": 2})
    handed: list[bool] = []
    with pytest.raises(RetryLater, match="SMTP"):
        SmtpChannel(settings).deliver(notice(runtime, notice_id), at=runtime.clock.now(),
                                      handover=lambda: handed.append(True))
    assert handed == []


def test_channels_send_everything_to_the_outbox_in_embedded_mode_and_files_always(
    runtime, settings_factory
):
    smtp, hook, placeholder = (notice(runtime, i) for i in (
        *add_notices(runtime, 1), *add_notices(runtime, 1, channel="webhook",
                                               address="https://h.example/n"),
        *add_notices(runtime, 1, address=None)))
    embedded = Channels(settings_factory())
    assert {type(embedded.for_notice(n)) for n in (smtp, hook, placeholder)} == {
        OutboxChannel}
    live = Channels(settings_factory(dispatch={"deliver": "live"}))
    assert isinstance(live.for_notice(smtp), SmtpChannel)
    assert isinstance(live.for_notice(hook), WebhookChannel)
    with pytest.raises(PermanentError, match="no address yet"):
        live.for_notice(placeholder)
