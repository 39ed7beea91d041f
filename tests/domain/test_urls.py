"""The canonical form of reported URLs, the facts derived from them, rejected input, and
`hotline url`."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.config import UrlsSection
from pipeline.core.errors import RejectedURL
from pipeline.domain.urls import UrlRules, canonicalise, is_confusable_host, normalise_encoding


def rules(**changes) -> UrlRules:
    return UrlRules.from_settings(UrlsSection(**changes))


# (what the reporter sent, the canonical URL)
CANONICAL = [
    ("  http://example.com/a \n", "http://example.com/a"),
    ("HTTP://EXAMPLE.COM/A", "http://example.com/A"),
    ("http://example.com:80/", "http://example.com/"),
    ("https://example.com:443/x", "https://example.com/x"),
    ("http://example.com:8080/x", "http://example.com:8080/x"),
    ("http://example.com", "http://example.com/"),
    ("http://example.com/a/./b/../c", "http://example.com/a/c"),
    ("http://example.com/a/%2e%2E/c", "http://example.com/c"),
    ("http://example.com/a#top", "http://example.com/a"),
    ("http://user:secret@example.com/a", "http://example.com/a"),
    ("http://example.com/%7euser/%41%2f%2F%3a", "http://example.com/~user/A%2F%2F%3A"),
    ("http://example.com/a|b^c", "http://example.com/a%7Cb%5Ec"),
    ("http://example.com/%zz", "http://example.com/%25zz"),
    ("http://example.com/caf%c3%a9 x", "http://example.com/caf%C3%A9%20x"),
    ("http://example.com/café", "http://example.com/caf%C3%A9"),
    ("http://example.com/?", "http://example.com/"),
    ("http://example.com/?a=1&&b=2&", "http://example.com/?a=1&b=2"),
    ("http://example.com/p?utm_source=x&id=7&UTM_Medium=y&fbclid=z&gclid=q",
     "http://example.com/p?id=7"),
    ("http://example.com/p?utm_source=x", "http://example.com/p"),
    ("http://example.com/p?q=a%2Bb+c&r=%7e", "http://example.com/p?q=a%2Bb+c&r=~"),
    ("http://%65xample.com/", "http://example.com/"),
    ("http://2130706433/", "http://127.0.0.1/"),
    ("http://0177.0.0.1/", "http://127.0.0.1/"),
    ("http://0x7f000001/", "http://127.0.0.1/"),
    ("http://0x7f.1/", "http://127.0.0.1/"),
    ("http://[0:0:0:0:0:0:0:1]:8080/", "http://[::1]:8080/"),
    ("http://[2001:DB8::A]/", "http://[2001:db8::a]/"),
    ("https://MÜNCHEN.de/straße", "https://xn--mnchen-3ya.de/stra%C3%9Fe"),
    ("https://faß.de/", "https://xn--fa-hia.de/"),
    ("http://example.com./a", "http://example.com./a"),
    ("http:\\\\example.com\\a\\b", "http://example.com/a/b"),
    ("www.example.com/a b", "http://www.example.com/a%20b"),
    ("example.com:8080/x", "http://example.com:8080/x"),
    ("//example.com/x", "http://example.com/x"),
]


@pytest.mark.parametrize(("raw", "expected"), CANONICAL)
def test_a_reported_url_gets_its_canonical_form(raw, expected):
    assert canonicalise(raw).canonical == expected


@pytest.mark.parametrize("variant", [
    "http://Example.COM/a",
    "http://example.com:80/a",
    "http://example.com./a",
    "http://example.com/a#section",
    "http://someone:pw@example.com/a",
    "http://example.com/b/../a",
    "http://example.com/%61",
    "http://example.com/a?utm_campaign=spring",
    "http://example.com/a?",
    "  http://example.com/a\t",
    "http://%45xample.com/a",
    "example.com/a",
])
def test_variants_of_one_url_share_the_dedup_key(variant):
    assert canonicalise(variant).dedup_key == canonicalise("http://example.com/a").dedup_key


@pytest.mark.parametrize(("one", "other"), [
    ("http://example.com/a", "http://example.com/A"),
    ("http://example.com/a", "https://example.com/a"),
    ("http://example.com/a", "http://www.example.com/a"),
    ("http://example.com/a/b", "http://example.com/a%2Fb"),
    ("http://example.com/a?x=1", "http://example.com/a?x=2"),
    ("http://example.com/a", "http://example.com:8080/a"),
])
def test_different_urls_keep_different_dedup_keys(one, other):
    assert canonicalise(one).dedup_key != canonicalise(other).dedup_key


def test_scheme_and_www_can_be_configured_to_count_as_one_url():
    lenient = rules(dedup_ignore_scheme=True, dedup_ignore_www=True)
    keys = {canonicalise(u, lenient).dedup_key for u in (
        "http://example.com/a", "https://example.com/a", "https://www.example.com/a")}
    assert len(keys) == 1
    # The canonical URL itself keeps what was reported.
    assert canonicalise("https://www.example.com/a", lenient).canonical == (
        "https://www.example.com/a")


def test_tracking_parameters_are_configurable():
    mine = rules(strip_params=["ref", "session*"])
    url = canonicalise("http://example.com/?ref=x&SessionID=1&utm_source=y&id=2", mine)
    assert url.canonical == "http://example.com/?utm_source=y&id=2"
    assert "tracking parameters removed: ref, sessionid" in url.notes


def test_user_info_is_removed_from_the_url_but_kept_as_evidence():
    url = canonicalise("http://admin:hunter2@example.com/a")
    assert "admin" not in url.canonical
    assert url.userinfo == "admin:hunter2"
    assert canonicalise("http://example.com/").userinfo is None


def test_the_host_is_kept_as_an_a_label_with_its_unicode_form_for_display():
    url = canonicalise("https://Bücher.example.рф./x")
    assert url.host == "xn--bcher-kva.example.xn--p1ai"
    assert url.host_unicode == "bücher.example.рф"
    assert url.registered_domain == "example.xn--p1ai"
    assert url.kind == "domain"


@pytest.mark.parametrize(("raw", "registered"), [
    ("https://evil.blogspot.com/x", "evil.blogspot.com"),
    ("https://a.b.example.co.uk/", "example.co.uk"),
    ("https://someone.github.io/", "someone.github.io"),
    ("https://www.example.com./", "example.com"),
    ("http://co.uk/", None),
    ("http://192.0.2.1/", None),
    ("http://intranet/", None),
])
def test_the_registered_domain_counts_private_suffixes_as_sites(raw, registered):
    assert canonicalise(raw).registered_domain == registered


@pytest.mark.parametrize(("raw", "kind", "host"), [
    ("http://example.com/", "domain", "example.com"),
    ("http://192.0.2.1:8080/", "ip", "192.0.2.1"),
    ("http://3221225985/", "ip", "192.0.2.1"),
    ("http://[2001:db8::1]/", "ip", "2001:db8::1"),
    ("http://expyuzz4wqqyqhjn.onion/", "onion", "expyuzz4wqqyqhjn.onion"),
    ("http://abc.def.onion./x", "onion", "abc.def.onion"),
    ("https://bit.ly/3xYz", "redirector", "bit.ly"),
    ("https://T.CO/abc", "redirector", "t.co"),
    ("https://www.tinyurl.com/abc", "redirector", "www.tinyurl.com"),
    ("https://notbit.ly/abc", "domain", "notbit.ly"),
])
def test_each_url_gets_a_kind(raw, kind, host):
    url = canonicalise(raw)
    assert (url.kind, url.host) == (kind, host)


def test_redirector_hosts_are_configurable():
    mine = rules(redirector_hosts=["go.example.org"])
    assert canonicalise("https://go.example.org/x", mine).kind == "redirector"
    assert canonicalise("https://bit.ly/x", mine).kind == "domain"


@pytest.mark.parametrize(("host", "confusable"), [
    ("example.com", False),
    ("münchen.de", False),
    ("παράδειγμα.gr", False),  # Greek, written as Greek
    ("пример.рф", False),  # Cyrillic, written as Cyrillic
    ("東京tokyo.jp", False),  # Han with Latin: allowed together
    ("한국어.kr", False),
    ("pаypal.com", True),  # Cyrillic а among Latin letters
    ("аррӏе.com", True),  # wholly Cyrillic letters that look Latin
    ("gооgle.com", True),
    ("bankαccount.com", True),  # Greek alpha among Latin letters
])
def test_mixed_script_and_look_alike_hosts_are_flagged(host, confusable):
    assert is_confusable_host(host) is confusable
    assert canonicalise(f"http://{host}/").confusable is confusable


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "empty"),
    ("   \t ", "empty"),
    ("javascript:alert(1)", "javascript: URLs are scripts"),
    ("JavaScript:alert(1)", "javascript: URLs are scripts"),
    ("java\tscript:alert(1)", "javascript: URLs are scripts"),
    ("data:text/html,<b>hi</b>", "data: URLs carry their content inline"),
    ("file:///etc/passwd", "file: URLs name a file"),
    ("mailto:someone@example.com", "mailto: URLs are e-mail addresses"),
    ("ftp://example.com/x", "the scheme ftp: is not accepted"),
    ("gopher://example.com/", "the scheme gopher: is not accepted"),
    ("hello", "no scheme"),
    ("just some words", "no scheme"),
    ("http://", "no host"),
    ("http:///", "no host"),
    ("http://exa mple.com/", "characters a host name cannot have"),
    ("http://a.com:99999/", "port 99999"),
    ("http://1.2.3.4.5/", "looks like an IPv4 address"),
    ("http://[::1/", "not a valid IPv6 address"),
    ("http://xn--pokxncvks.com/", "not a valid international (IDNA) name"),
    ("http://\ud800.com/", "not valid text"),
    ("http://example.com/" + "a" * 9000, "the limit is 8,192 bytes"),
])
def test_input_that_cannot_be_a_url_is_rejected_with_a_readable_reason(raw, reason):
    with pytest.raises(RejectedURL) as caught:
        canonicalise(raw)
    assert reason in str(caught.value)


def test_input_without_a_scheme_is_rejected_when_not_assumed():
    with pytest.raises(RejectedURL, match="no scheme"):
        canonicalise("www.example.com/a", rules(assume_http=False))


def test_accepted_schemes_and_the_size_limit_are_configurable():
    assert canonicalise("ftp://example.com/x", rules(schemes=["ftp"])).canonical == (
        "ftp://example.com/x")
    with pytest.raises(RejectedURL, match="limit is 256 bytes"):
        canonicalise("http://example.com/" + "a" * 300, rules(max_url_bytes=256))


def test_percent_encoding_is_normalised_one_way():
    assert normalise_encoding("/%7e%7E~%2f%2Fa%20b%zz|") == "/~~~%2F%2Fa%20b%25zz%7C"
    assert normalise_encoding(normalise_encoding("/%e2%82%ac€")) == "/%E2%82%AC%E2%82%AC"


# --- properties -------------------------------------------------------------------

_label = st.text(alphabet=string.ascii_letters + string.digits + "-_éüßаσ東%.", min_size=1,
                 max_size=12)
_host = st.one_of(
    st.lists(_label, min_size=1, max_size=4).map(".".join),
    st.integers(min_value=0, max_value=2**32 - 1).map(str),
    st.integers(min_value=0, max_value=2**32 - 1).map(hex),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
)
_piece = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)
_urls = st.builds(
    lambda scheme, userinfo, host, port, path, query, fragment: (
        f"{scheme}://{userinfo}{host}{port}/{path}{query}{fragment}"),
    st.sampled_from(["http", "https", "HTTP", "hTTps"]),
    st.sampled_from(["", "user@", "user:pw@", ":@"]),
    _host,
    st.sampled_from(["", ":80", ":443", ":8080", ":0"]),
    _piece,
    st.one_of(st.just(""), _piece.map(lambda q: "?" + q),
              st.just("?utm_source=a&x=%7e&&fbclid=1")),
    st.one_of(st.just(""), _piece.map(lambda f: "#" + f)),
)


@settings(max_examples=500, deadline=None)
@given(_urls)
def test_canonicalising_a_canonical_url_changes_nothing(raw):
    try:
        first = canonicalise(raw)
    except RejectedURL:
        return
    again = canonicalise(first.canonical)
    assert again.canonical == first.canonical
    assert again.dedup_key == first.dedup_key
    assert again.host == first.host


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), _urls, st.text().map(lambda t: "http://" + t),
                 st.text().map(lambda t: "https://example.com/" + t)))
def test_arbitrary_text_is_either_canonicalised_or_rejected(raw):
    try:
        url = canonicalise(raw)
    except RejectedURL as exc:
        assert str(exc)
        return
    assert url.canonical.startswith(("http://", "https://"))
    assert "#" not in url.canonical
    assert len(url.dedup_key) == 64
    assert canonicalise(url.canonical).canonical == url.canonical
