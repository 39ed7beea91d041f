"""Links and text of an HTML mail part: the addresses links go to, the visible words,
and bounded work on hostile markup."""

from __future__ import annotations

from pipeline.adapters.mail.html import MAX_TAGS, read_html


def test_hostile_html_costs_bounded_work():
    laughs = ('<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
              + "<p>&b;&b;&b;</p>" + "<a href='http://deep.example/'>" + "<div>" * 300_000)
    html = read_html(laughs)
    assert html.truncated
    assert html.links == ["http://deep.example/"]
    assert "aaaaaaaaaa" not in html.text  # no entity expansion
    assert MAX_TAGS < 300_000


def test_links_are_the_addresses_not_the_words_shown():
    html = read_html('<p>Look <a href=" http://real.example/x ">http://shown.example/</a>'
                     '<map><area href="https://area.example/"></map>'
                     '<a href="">empty</a><a>none</a></p>')
    assert html.links == ["http://real.example/x", "https://area.example/"]
    assert "http://shown.example/" in html.text and not html.truncated


def test_hidden_parts_are_not_text_and_blocks_break_lines():
    html = read_html("<html><head><title>Secret title</title><style>p{}</style></head>"
                     "<body><script>var x = 'evil.example';</script>"
                     "<p>first&nbsp;line</p><div>second &amp; last</div></body></html>")
    assert "Secret title" not in html.text and "evil.example" not in html.text
    assert "p{}" not in html.text
    lines = [line for line in html.text.splitlines() if line.strip()]
    assert lines == ["first\xa0line", "second & last"]


def test_markup_over_the_size_limit_is_cut_and_marked_truncated(monkeypatch):
    from pipeline.adapters.mail import html as html_module

    monkeypatch.setattr(html_module, "MAX_HTML_CHARS", 40)
    html = read_html("<p>" + "x" * 30 + "</p><a href='http://late.example/'>late</a>")
    assert html.truncated and html.links == []
