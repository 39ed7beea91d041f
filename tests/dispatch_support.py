"""Shared by the dispatch stage's and the channels' tests: loopback servers (an SMTP
server with STARTTLS and login, an HTTP webhook receiver that checks signatures), their
fixtures, and builders for notices and the settings that send them for real."""

from __future__ import annotations

import email
import json
import random
import threading
import time
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.adapters.channels import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Channels,
    WebhookChannel,
    verify_signature,
)
from pipeline.stages.dispatch import deliver_notices
from pipeline.store.models import Notice
from tests.factories import make_case
from tests.loopback import free_port, self_signed

HOOK_KEY = "test-hmac-key-0123456789"
SMTP_USER, SMTP_PASSWORD = "hotline", "s3cret-pass"


# --------------------------------------------------------------------------- servers


class SmtpServer:
    """aiosmtpd on loopback, STARTTLS required, login required; counts every message
    by Message-ID."""

    def __init__(self, folder: Path):
        import ssl

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.cert, key = self_signed(folder / "smtp.crt", folder / "smtp.key")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, key)
        self.messages: list[email.message.EmailMessage] = []
        self.ids: list[str] = []
        self.lock = threading.Lock()
        self.refuse: int | None = None  # answer this SMTP code to every DATA
        self.port = free_port()
        server = self

        class Handler:
            async def handle_DATA(self, _server, _session, envelope):  # noqa: N802
                if server.refuse:
                    return f"{server.refuse} refused for the test"
                message = email.message_from_bytes(envelope.content, policy=policy.default)
                with server.lock:
                    server.messages.append(message)
                    server.ids.append(message["Message-ID"])
                return "250 OK"

        def authenticator(_server, _session, _envelope, mechanism, auth_data):
            ok = (auth_data.login, auth_data.password) == (SMTP_USER.encode(),
                                                          SMTP_PASSWORD.encode())
            return AuthResult(success=ok, handled=False)

        self.controller = Controller(
            Handler(), hostname="127.0.0.1", port=self.port, tls_context=context,
            require_starttls=True, authenticator=authenticator, auth_required=True,
            auth_require_tls=True)
        self.controller.start()

    def settings(self) -> dict:
        return {"smtp_host": "127.0.0.1", "smtp_port": self.port, "smtp_starttls": True,
                "smtp_user": SMTP_USER, "smtp_ca_file": str(self.cert)}

    def count(self) -> int:
        with self.lock:
            return len(self.ids)

    def stop(self) -> None:
        self.controller.stop()


class WebhookReceiver:
    """An HTTP server that checks the HMAC signature and honours the Idempotency-Key, as
    the webhook contract asks: `posts` lists every signed POST's key, `keys` each key
    once (what the receiver records). `answers` lists status codes to give before
    answering 200."""

    def __init__(self, delay: float = 0.0):
        self.keys: list[str] = []
        self.posts: list[str] = []
        self.bodies: list[dict] = []
        self.bad_signatures = 0
        self.answers: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if delay:
                    time.sleep(delay)  # widens the window in which a worker can be killed
                with receiver.lock:
                    if receiver.answers:
                        status = receiver.answers.pop(0)
                    else:
                        status = 200
                        key = self.headers[IDEMPOTENCY_HEADER]
                        if not verify_signature(HOOK_KEY.encode(),
                                                self.headers[TIMESTAMP_HEADER], body,
                                                self.headers[SIGNATURE_HEADER]):
                            receiver.bad_signatures += 1
                            status = 401
                        else:
                            receiver.posts.append(key)
                            if key not in receiver.keys:
                                receiver.keys.append(key)
                                receiver.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notices"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self) -> int:
        with self.lock:
            return len(self.keys)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def smtp_server(tmp_path):
    server = SmtpServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


# --------------------------------------------------------------------------- helpers


def live_settings(settings_factory, runtime, smtp_server=None, **dispatch):
    values = {"deliver": "live", "webhook_allow_http": True,
              "sender_address": "notices@hotline.example.rs"}
    if smtp_server is not None:
        values.update(smtp_server.settings())
    values.update(dispatch)
    return settings_factory(database={"url": runtime.settings.database.url},
                            dispatch=values)


def add_notices(runtime, count, *, channel="smtp", address="abuse@host.example",
                destination="hosting-provider"):
    ids = []
    with runtime.session_factory.begin() as session:
        for i in range(count):
            case = make_case(session, at=runtime.clock.now(),
                             url=f"http://example.com/{channel}/{i}/{random.random()}",
                             state="notified")
            notice = Notice(
                case_id=case.id, destination=destination, destination_kind="provider",
                kind="notice", round=1, channel=channel, address=address, language="en",
                state="planned", token=f"tok-{channel}-{i}-{random.getrandbits(64):x}",
                subject=f"Notice {i}", body=f"Please remove case {case.ref}.\n",
                payload={"case_ref": case.ref, "url": case.canonical_url},
                attempts=0, created_at=runtime.clock.now(), due_at=runtime.clock.now())
            session.add(notice)
            session.flush()
            ids.append(notice.id)
    return ids


def notice(runtime, notice_id):
    with runtime.session_factory() as session:
        return session.get(Notice, notice_id)


def deliver(runtime, settings, ids, clock=None):
    channels = Channels(settings, webhook=WebhookChannel(settings,
                                                         secrets={"partner-hook": HOOK_KEY}))
    return deliver_notices(runtime.session_factory, ids, clock=clock or runtime.clock,
                           settings=settings, channels=channels)
