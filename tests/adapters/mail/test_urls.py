"""Every URL in a piece of text: plain, defanged, wrapped over lines, or bare hosts."""

from __future__ import annotations

from pipeline.adapters.mail.urls import find_urls, refang


def test_refanging_and_unwrapping():
    assert refang("hxxps://a[.]b(.)c{.}d[dot]e(dot)f/x") == "https://a.b.c.d.e.f/x"
    assert find_urls("see www.example.rs.") == ["http://www.example.rs"]
    # A sentence after a URL at the end of a long line is not joined to it.
    line = "A long enough line that ends with a URL http://example.com/page."
    assert find_urls(line + "\nThanks") == ["http://example.com/page"]
    assert find_urls("x" * 5 + "http://a.example/ " * 3000, limit=5) == ["http://a.example/"]


def test_urls_come_in_order_each_once():
    text = "First https://b.example/1, then http://a.example/2; again https://b.example/1."
    assert find_urls(text) == ["https://b.example/1", "http://a.example/2"]


def test_defanged_schemes_and_dots_are_written_back():
    assert find_urls("hxxp://evil[.]example/path and hXXps[://]bad(dot)example/x") == [
        "http://evil.example/path", "https://bad.example/x"]
    assert refang("user[@]mail[.]example") == "user@mail.example"


def test_a_bracket_the_url_opened_is_kept_and_sentence_punctuation_dropped():
    assert find_urls("(see https://en.example/wiki/Foo_(bar)).") == [
        "https://en.example/wiki/Foo_(bar)"]
    assert find_urls("Is it “http://q.example/a?”") == ["http://q.example/a"]


def test_bare_hosts_with_a_path_and_defanged_bare_hosts_are_found():
    assert find_urls("it is on example.org/gallery/12 now") == ["example.org/gallery/12"]
    assert find_urls("the site evil[.]example hosts it") == ["evil.example"]
    assert find_urls("version 1.2 and file.txt and name@mail.example") == []


def test_a_url_folded_inside_angle_brackets_is_joined():
    assert find_urls("See <http://folded.example/a/very/\n  long/path> please") == [
        "http://folded.example/a/very/long/path"]


def test_a_url_wrapped_at_the_end_of_a_long_line_is_joined():
    line = "Please remove this content which is at http://wrapped.example/gallery/"
    assert len(line) >= 60
    assert find_urls(line + "\nabc/image.jpg\nThanks") == [
        "http://wrapped.example/gallery/abc/image.jpg"]
