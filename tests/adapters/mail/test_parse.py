"""Reading mail: the corpus of real-shaped messages (tests/data/mail) yields exactly
the URLs each must; hostile or broken mail is named, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.adapters.mail.parse import read_message

CORPUS = Path(__file__).resolve().parents[2] / "data" / "mail"
EXPECTED = yaml.safe_load((CORPUS / "expected.yaml").read_text())


def test_the_corpus_holds_at_least_thirty_messages_each_with_its_expectations():
    files = sorted(p.name for p in CORPUS.glob("*.eml"))
    assert len(files) >= 30
    assert sorted(EXPECTED) == files


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_message_yields_exactly_its_urls(name):
    expected = EXPECTED[name]
    parsed = read_message((CORPUS / name).read_bytes())
    assert sorted(parsed.urls) == sorted(expected["urls"]), parsed.problems
    assert parsed.language == expected.get("language", "en")
    assert bool(parsed.automatic) == expected.get("automatic", False), parsed.automatic
    assert len(parsed.attachments) == expected.get("attachments", 0)
    assert parsed.sender and "@" in parsed.sender


def test_attachments_are_recorded_by_name_type_size_and_hash_only():
    parsed = read_message((CORPUS / "19-image-attachment.eml").read_bytes())
    (attachment,) = parsed.attachments
    assert attachment.name == "screenshot.jpg"
    assert attachment.content_type == "image/jpeg"
    assert attachment.size == 1037  # JFIF header, 1,024 bytes, end marker
    assert len(attachment.sha256) == 64
    assert set(attachment.as_dict()) == {"name", "type", "size", "sha256"}


def test_headers_and_text_are_read_in_any_charset():
    cyrillic = read_message((CORPUS / "08-cyrillic-subject-and-body-base64.eml").read_bytes())
    assert cyrillic.subject == "Пријава садржаја"
    assert cyrillic.message_id == "cyr-0008@posta.example"
    assert "пријављујем" in cyrillic.text
    cp1251 = read_message((CORPUS / "09-windows-1251-qp.eml").read_bytes())
    assert cp1251.subject == "Пријава" and "Здраво" in cp1251.text
    unknown = read_message((CORPUS / "25-unknown-charset.eml").read_bytes())
    assert any("charset" in p for p in unknown.problems)


def test_a_message_over_the_size_limit_is_not_parsed_but_its_headers_are():
    raw = (b"From: big@mail.example\r\nMessage-ID: <big@mail.example>\r\nSubject: big\r\n"
           b"Content-Type: text/plain\r\n\r\n" + b"http://x.example/ " * 10_000)
    parsed = read_message(raw, max_bytes=50_000)
    assert not parsed.parsed and parsed.urls == []
    assert parsed.message_id == "big@mail.example" and parsed.sender == "big@mail.example"
    assert "larger than 50000 bytes" in parsed.problems[0]


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00\xff\xfe garbage without headers",
    b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n",
    b"Subject: =?utf-8?B?!!!?=\r\nFrom: <<<>>>\r\nMessage-ID: <<>>\r\n\r\nhttp://x.example/",
    b"From: a@b.example\r\nContent-Type: text/plain; charset=\"\xff\xfe\"\r\n\r\n\xff\xfe",
    b"Content-Transfer-Encoding: base64\r\nContent-Type: text/html\r\n\r\n@@@@",
])
def test_broken_mail_is_read_as_far_as_possible_and_never_raises(raw):
    parsed = read_message(raw)
    assert isinstance(parsed.urls, list)
