"""The IMAP poller against a real IMAP server: Debian's Dovecot, started by the test on
a loopback port with its own configuration, a self-signed certificate (IMAPS) and a
static test user. `make test` installs dovecot-imapd; without it the tests skip, but
fail when CI=true."""

from __future__ import annotations

import imaplib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from pipeline.adapters.mail.imap import password_from_environment, poll_once
from pipeline.app.mailbox import deliverer
from pipeline.core.errors import ConfigError, RetryLater
from pipeline.store.mail_models import MailMessage
from pipeline.store.models import Report
from tests.conftest import CI
from tests.loopback import free_port, self_signed

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
CORPUS = Path(__file__).resolve().parents[2] / "data" / "mail"
USER, PASSWORD = "hotline", "imap-test-password-7"


@pytest.fixture(scope="module")
def dovecot():
    if not os.path.exists(DOVECOT):
        if CI:
            pytest.fail(f"Dovecot is required when CI=true but {DOVECOT} is missing "
                        "(make test installs Debian's dovecot-imapd)")
        pytest.skip("dovecot is not installed")
    if os.geteuid() != 0:
        if CI:
            pytest.fail("the Dovecot test runs as root (as make test does in CI)")
        pytest.skip("the Dovecot test needs root to start dovecot")
    folder = Path(tempfile.mkdtemp(prefix="hotline-dovecot-"))
    folder.chmod(0o755)
    for sub in ("run", "state", "home"):
        (folder / sub).mkdir()
        (folder / sub).chmod(0o755)
    os.chown(folder / "home", 65534, 65534)
    self_signed(folder / "cert.pem", folder / "key.pem")
    port = free_port()
    conf = folder / "dovecot.conf"
    conf.write_text(f"""
protocols = imap
listen = 127.0.0.1
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
ssl = required
ssl_cert = <{folder}/cert.pem
ssl_key = <{folder}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain
mail_location = maildir:~/Maildir
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = 1
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={folder}/home/%u
}}
""")
    process = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                log = (folder / "dovecot.log").read_text() if (
                    folder / "dovecot.log").exists() else ""
                out = process.stdout.read().decode() if process.stdout else ""
                process.kill()
                pytest.fail(f"dovecot did not start: {out} {log}")
            time.sleep(0.1)
    yield {"port": port, "ca": str(folder / "cert.pem")}
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(folder, ignore_errors=True)


def _client(server) -> imaplib.IMAP4_SSL:
    context = ssl.create_default_context(cafile=server["ca"])
    client = imaplib.IMAP4_SSL("127.0.0.1", server["port"], ssl_context=context)
    client.login(USER, PASSWORD)
    return client


def _folder_count(server, folder: str) -> int:
    client = _client(server)
    try:
        client.create(f'"{folder}"')
        status, data = client.select(f'"{folder}"')
        return int(data[0]) if status == "OK" else -1
    finally:
        client.logout()


@pytest.fixture
def imap_runtime(sqlite_runtime, dovecot, monkeypatch):
    monkeypatch.setenv("HOTLINE_TEST_IMAP_PASSWORD", PASSWORD)
    sqlite_runtime.settings = sqlite_runtime.settings.model_copy(update={
        "mail": sqlite_runtime.settings.mail.model_copy(update={
            "imap_host": "127.0.0.1", "imap_port": dovecot["port"], "imap_user": USER,
            "imap_ca_file": dovecot["ca"], "imap_password_env": "HOTLINE_TEST_IMAP_PASSWORD",
            "imap_folder": "INBOX", "imap_done_folder": "hotline-done"})})
    client = _client(dovecot)
    for folder in ("INBOX", "hotline-done"):  # a clean mailbox for each test
        client.create(f'"{folder}"')
        _, data = client.select(f'"{folder}"')
        if int(data[0]):
            client.store("1:*", "+FLAGS.SILENT", r"(\Deleted)")
            client.expunge()
    client.logout()
    return sqlite_runtime


def _append(server, *names: str) -> None:
    client = _client(server)
    try:
        for name in names:
            raw = (CORPUS / name).read_bytes()
            status, _ = client.append("INBOX", None, None, raw)
            assert status == "OK"
    finally:
        client.logout()


def test_the_poller_takes_every_message_and_moves_it_to_the_done_folder(imap_runtime,
                                                                        dovecot):
    runtime = imap_runtime
    _append(dovecot, "01-outlook-qp-alternative.eml", "08-cyrillic-subject-and-body-base64.eml",
            "21-no-url-question.eml")
    password = password_from_environment(runtime.settings)
    result = poll_once(runtime.settings, password, deliverer(runtime, "imap"))
    assert (result.taken, result.left) == (3, 0)
    assert _folder_count(dovecot, "INBOX") == 0
    assert _folder_count(dovecot, "hotline-done") == 3
    with runtime.session_factory() as session:
        urls = sorted(r.url for r in session.execute(select(Report)).scalars())
        assert len(urls) == 3 and "https://пример.срб/страна/1" in urls
        messages = session.execute(select(MailMessage)).scalars().all()
        assert {m.via for m in messages} == {"imap"}
        assert sorted(m.state for m in messages) == ["look_at", "reported", "reported"]
    # Nothing new: a second poll takes nothing.
    assert poll_once(runtime.settings, password, deliverer(runtime, "imap")).taken == 0


def test_a_passing_fault_leaves_the_message_for_the_next_poll(imap_runtime, dovecot):
    runtime = imap_runtime
    _append(dovecot, "03-gmail-alternative.eml", "11-defanged-brackets.eml")
    real = deliverer(runtime, "imap")
    calls = []

    def flaky(raw, size=None):
        calls.append(raw)
        if len(calls) == 2:
            raise RetryLater("the database did not answer")
        return real(raw, size)

    password = password_from_environment(runtime.settings)
    first = poll_once(runtime.settings, password, flaky)
    assert (first.taken, first.left) == (1, 1)
    assert _folder_count(dovecot, "INBOX") == 1
    second = poll_once(runtime.settings, password, real)
    assert second.taken == 1 and _folder_count(dovecot, "INBOX") == 0
    with runtime.session_factory() as session:
        assert len(session.execute(select(Report)).all()) == 3


def test_the_password_comes_from_the_environment_only_and_a_wrong_one_is_named(
        imap_runtime, monkeypatch):
    settings = imap_runtime.settings
    monkeypatch.delenv("HOTLINE_TEST_IMAP_PASSWORD")
    with pytest.raises(ConfigError, match="HOTLINE_TEST_IMAP_PASSWORD"):
        password_from_environment(settings)
    with pytest.raises(ConfigError, match="refused the login"):
        poll_once(settings, "wrong", deliverer(imap_runtime, "imap"))


def test_an_untrusted_certificate_is_refused(imap_runtime):
    settings = imap_runtime.settings.model_copy(update={
        "mail": imap_runtime.settings.mail.model_copy(update={"imap_ca_file": None})})
    with pytest.raises(RetryLater, match="cannot connect"):
        poll_once(settings, PASSWORD, deliverer(imap_runtime, "imap"))
