"""Every URL in a piece of text: plain, defanged, wrapped over lines, or bare hosts.

`find_urls(text)` returns the URLs in order of appearance, each once, refanged:
- schemes `http`, `https`, `ftp` and their defanged forms (`hxxp`, `hXXps`, `fxp`,
  `http[:]//`, `https[://]`), and `www.` addresses without a scheme;
- dots written `[.]`, `(.)`, `{.}`, `[dot]`, `(dot)`, ` dot ` inside brackets;
- bare host names with a path (`example.com/x`), and bare hosts written defanged
  (`evil[.]example`), which nobody writes by accident;
- URLs in angle brackets that a mail client folded over lines (`<http://a/b\n c>`,
  RFC 3986 appendix C), and URLs hard-wrapped at the end of a long line whose next
  line continues the address (Outlook's and webmail's wrapping).
Trailing punctuation is not part of a URL, unless it closes a bracket the URL opened.
"""

from __future__ import annotations

import re

MAX_TEXT_CHARS = 2_000_000  # a longer text is read up to here
_WRAP_MIN_LINE = 60  # a line this long that ends in a URL may have been wrapped

_SCHEME_FIXES = [
    (re.compile(r"\bh(?:xx|XX|\*\*|tt)p(s?)\s*(?:\[:\]|\(:\)|\[:/?/?\]|:)\s*"
                r"(?:\[/\]|/|\[//\]){0,2}/{0,2}", re.I), r"http\1://"),
    (re.compile(r"\bf(?:x|X)p(s?)\s*(?:\[:\]|:)\s*/{0,2}", re.I), r"ftp\1://"),
    (re.compile(r"\[://\]|\(://\)|\{://\}"), "://"),
]
_DOT = re.compile(r"\s?(?:\[\s?\.\s?\]|\(\s?\.\s?\)|\{\s?\.\s?\}|\[\s?dot\s?\]|\(\s?dot\s?\)"
                  r"|\{\s?dot\s?\})\s?", re.I)
_SLASH = re.compile(r"\[/\]")
_AT = re.compile(r"\[@\]|\(@\)")
_DEFANG_MARK = re.compile(r"\[\s?\.\s?\]|\(\s?\.\s?\)|\{\s?\.\s?\}|\[\s?dot\s?\]|\(\s?dot\s?\)"
                          r"|\[://\]|\bhxxps?\b|\[:\]", re.I)

_URL_CHARS = r"[^\s<>\"'`\u00a0\u2028\u2029\u201c\u201d\u2018\u2019\u00ab\u00bb]"
_URL = re.compile(rf"(?:(?:https?|ftps?)://|www\.){_URL_CHARS}+", re.I)
_HOST_LABEL = r"[\w](?:[\w-]{0,61}[\w])?"
# A bare host (no scheme) with a path: example.com/x, пример.срб/а.
_BARE = re.compile(rf"(?<![\w@/.:-])((?:{_HOST_LABEL}\.)+[^\W\d_]{{2,63}})(/{_URL_CHARS}*)",
                   re.U)
_BARE_HOST = re.compile(rf"^(?:{_HOST_LABEL}\.)+[^\W\d_]{{2,63}}(?::\d+)?$", re.U)
_ANGLE = re.compile(r"<(?:URL:)?\s*((?:https?|ftps?|hxxps?)[:\[][^<>]{0,4000}?)>", re.I | re.S)
_TRAILING = ".,;:!?*'\"\u2019\u201d>"
_CLOSERS = {")": "(", "]": "[", "}": "{"}


def refang(text: str) -> str:
    """Defanged forms written back: `hxxps://a[.]b` -> `https://a.b`."""
    for pattern, replacement in _SCHEME_FIXES:
        text = pattern.sub(replacement, text)
    text = _DOT.sub(".", text)
    text = _SLASH.sub("/", text)
    return _AT.sub("@", text)


def _trim(url: str) -> str:
    """Drop trailing punctuation that belongs to the sentence, not to the URL."""
    while url:
        last = url[-1]
        if last in _TRAILING or (last in _CLOSERS
                                 and url.count(last) > url.count(_CLOSERS[last])):
            url = url[:-1]
        else:
            break
    return url


def _unfold_angles(text: str) -> str:
    """`<http://a/b\n   c>`: the whitespace inside angle brackets is not the URL's."""
    return _ANGLE.sub(lambda m: "<" + re.sub(r"\s+", "", m.group(1)) + ">", text)


_CONTINUATION = re.compile(rf"^{_URL_CHARS}+")


def _joins(line: str, following: str) -> str | None:
    """The start of `following` that continues the URL ending `line`, or None."""
    if len(line) < _WRAP_MIN_LINE or following.startswith((" ", "\t", ">")):
        return None
    matches = list(_URL.finditer(line))
    match = matches[-1] if matches else None
    if match is None or match.end() != len(line) or _trim(match.group(0)) != match.group(0):
        return None  # no URL at the end, or it ends a sentence (a final dot, a bracket)
    cont = _CONTINUATION.match(following)
    if not cont:
        return None
    piece = cont.group(0)
    if re.search(r"[/?&=%#_~+-]|\d", piece) or line[-1] in "/?&=%#-_~+":
        return piece
    return None


def _unwrap(text: str) -> str:
    """Join a URL that ends a long line with the start of the next line when that
    start can only be the rest of an address (it holds URL punctuation or digits, or
    the URL ends in a character no address ends in)."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        while index < len(lines):
            piece = _joins(line, lines[index])
            if piece is None:
                break
            line += piece
            rest = lines[index][len(piece):]
            if rest.strip():
                lines[index] = rest  # the rest of that line is read as a line
                break
            index += 1
        out.append(line)
    return "\n".join(out)


def find_urls(text: str, *, limit: int = 1000) -> list[str]:
    """The URLs in `text`, in order, each once (at most `limit`)."""
    text = text[:MAX_TEXT_CHARS].replace("\r\n", "\n")
    text = _unfold_angles(text)
    defanged_hosts = _defanged_bare_hosts(text)
    text = _unwrap(refang(text))
    found: dict[str, int] = {}

    def add(url: str, position: int) -> None:
        url = _trim(url)
        if len(url) < 4 or url.lower() in ("www.", "http://", "https://"):
            return
        if url.lower().startswith("www."):
            url = "http://" + url
        if "://" in url and not url.split("://", 1)[1].strip("/"):
            return
        found.setdefault(url, position)

    taken: list[tuple[int, int]] = []
    for match in _URL.finditer(text):
        add(match.group(0), match.start())
        taken.append((match.start(), match.end()))
    for match in _BARE.finditer(text):
        if any(start <= match.start() < end for start, end in taken):
            continue
        add(match.group(0), match.start())
    for position, host in defanged_hosts:
        if not any(host in url for url in found):
            found.setdefault(host, position)
    ordered = sorted(found.items(), key=lambda item: item[1])
    return [url for url, _ in ordered][:limit]


def _defanged_bare_hosts(text: str) -> list[tuple[int, str]]:
    """Hosts written defanged without scheme or path: `evil[.]example` (kept as the
    refanged host name: the reporter plainly meant an address)."""
    hosts = []
    for match in re.finditer(rf"(?<![\w/.:@-])[\w-]+(?:{_DOT.pattern}[\w-]+)+", text, re.U):
        token = match.group(0)
        if not _DEFANG_MARK.search(token):
            continue
        host = _DOT.sub(".", token).strip(".")
        if _BARE_HOST.match(host):
            hosts.append((match.start(), host))
    return hosts
