"""Links and text of an HTML mail part, read with the standard library's html.parser.

`read_html(markup)` returns the `href`s of `<a>` and `<area>` (the address a link
goes to, not the words it shows) and the visible text (for addresses written as
text, often defanged). html.parser expands no entities recursively and ignores
DTDs, so there is no "billion laughs"; the input is cut at `MAX_HTML_CHARS`, and
parsing stops after `MAX_TAGS` tags or `MAX_TEXT_CHARS` of text, so a hostile part
costs bounded time and memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

MAX_HTML_CHARS = 5_000_000
MAX_TAGS = 50_000
MAX_TEXT_CHARS = 1_000_000
MAX_LINKS = 5_000
_BLOCKS = {"p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6",
           "blockquote", "pre", "table", "ul", "ol", "hr", "section", "article"}
_HIDDEN = {"script", "style", "head", "title", "template"}


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.text: list[str] = []
        self.text_chars = 0
        self.tags = 0
        self.hidden = 0
        self.truncated = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags += 1
        if self.tags > MAX_TAGS:
            self.truncated = True
            raise _Stop
        if tag in _HIDDEN:
            self.hidden += 1
        if tag in ("a", "area") and len(self.links) < MAX_LINKS:
            for name, value in attrs:
                if name == "href" and value and value.strip():
                    self.links.append(value.strip())
        if tag in _BLOCKS:
            self.text.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN and self.hidden:
            self.hidden -= 1
        if tag in _BLOCKS:
            self.text.append("\n")

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        self.text_chars += len(data)
        if self.text_chars > MAX_TEXT_CHARS:
            self.truncated = True
            raise _Stop
        self.text.append(data)


class _Stop(Exception):
    pass


@dataclass
class HtmlContent:
    links: list[str] = field(default_factory=list)
    text: str = ""
    truncated: bool = False


def read_html(markup: str) -> HtmlContent:
    reader = _Reader()
    truncated = len(markup) > MAX_HTML_CHARS
    try:
        reader.feed(markup[:MAX_HTML_CHARS])
        reader.close()
    except _Stop:
        pass
    except (AssertionError, ValueError):  # html.parser's own complaints on broken markup
        truncated = True
    return HtmlContent(links=reader.links, text="".join(reader.text),
                       truncated=truncated or reader.truncated)
