"""People-facing text in Serbian (Latin) and English, from gettext catalogs (Babel).

- Catalogs: `pipeline/locale/<dir>/LC_MESSAGES/messages.po` (`sr_Latn`, `en`), with the
  template `pipeline/locale/messages.pot` extracted by `make i18n` (babel.cfg). The
  `.po` files are compiled in memory at first use (Babel's `read_po` + `write_mo`), so
  neither a build step nor compiled `.mo` files are needed.
- Language tags are BCP 47 as browsers send them: `sr-Latn`, `en`, and optionally
  `sr-Cyrl`, whose catalog is the Serbian Latin one transliterated letter by letter
  (the standard one-to-one Serbian mapping; placeholders, tags, URLs and addresses
  are left alone).
- `negotiate(accept_language, supported)` picks a language from an Accept-Language
  header; `install(env)` gives a Jinja2 environment `{% trans %}`, `_()`, `gettext()`
  and `ngettext()` reading the language of the current request, which
  `set_language(lang)` sets for a block (a context variable: safe across threads and
  asyncio tasks).
- `format_date`, `format_datetime` and `format_number` write dates and numbers the
  way each language does (Serbian: `07.12.2026.` and `1.234,5`).
"""

from __future__ import annotations

import gettext as _gettext
import io
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "messages"

SERBIAN_LATIN = "sr-Latn"
SERBIAN_CYRILLIC = "sr-Cyrl"
ENGLISH = "en"
# Every language this module can serve; a deployment chooses among them
# (`public.languages` in config.yaml). The first one supported is the default.
KNOWN = (SERBIAN_LATIN, ENGLISH, SERBIAN_CYRILLIC)
DEFAULT_LANGUAGES = (SERBIAN_LATIN, ENGLISH)

# Where each language's catalog lives; sr-Cyrl is derived from sr_Latn.
_CATALOG_DIR = {SERBIAN_LATIN: "sr_Latn", ENGLISH: "en", SERBIAN_CYRILLIC: "sr_Latn"}
_BABEL_LOCALE = {SERBIAN_LATIN: "sr_Latn", ENGLISH: "en", SERBIAN_CYRILLIC: "sr_Cyrl"}
# Neighbouring languages whose readers understand Serbian (Latin) better than English.
_NEIGHBOURS = {"sh": SERBIAN_LATIN, "hr": SERBIAN_LATIN, "bs": SERBIAN_LATIN,
               "cnr": SERBIAN_LATIN, "me": SERBIAN_LATIN}
# The name of each language in itself, for the language switch.
NATIVE_NAMES = {SERBIAN_LATIN: "Srpski", ENGLISH: "English", SERBIAN_CYRILLIC: "Српски"}
# Dates written out per language: Serbian uses day.month.year. with a final dot.
_DATE_PATTERNS = {SERBIAN_LATIN: "dd.MM.yyyy.", SERBIAN_CYRILLIC: "dd.MM.yyyy."}

_current: ContextVar[str] = ContextVar("hotline_language", default=SERBIAN_LATIN)


def canonical(tag: str | None) -> str | None:
    """`sr_latn`, `SR-Latn-RS` -> `sr-Latn`; None for a language this module lacks."""
    if not tag:
        return None
    parts = tag.replace("_", "-").split("-")
    lang = parts[0].lower()
    script = next((p.title() for p in parts[1:] if len(p) == 4 and p.isalpha()), None)
    if lang == "en":
        return ENGLISH
    if lang == "sr":
        return SERBIAN_CYRILLIC if script == "Cyrl" else SERBIAN_LATIN
    return None


def _parse_accept_language(header: str) -> list[str]:
    """The tags of an Accept-Language header, most wanted first (q=0 dropped)."""
    weighted: list[tuple[float, int, str]] = []
    for index, item in enumerate(header.split(",")[:32]):
        piece = item.strip()
        if not piece:
            continue
        tag, _, params = piece.partition(";")
        quality = 1.0
        match = re.search(r"q\s*=\s*([0-9.]+)", params)
        if match:
            try:
                quality = float(match.group(1))
            except ValueError:
                quality = 0.0
        tag = tag.strip()
        if quality > 0 and re.fullmatch(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*|\*", tag):
            weighted.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate(accept_language: str | None, supported: Iterable[str] = DEFAULT_LANGUAGES) -> str:
    """The supported language a browser's Accept-Language header asks for most.

    Babel's `Locale.negotiate` finds exact matches (`sr-Latn`, `en-GB` -> `en`); a
    request for plain `sr` gets the first Serbian script supported, a request for a
    neighbouring language (Croatian, Bosnian, Montenegrin) gets Serbian Latin, and
    anything else the first supported language (the deployment's default).
    """
    available = [tag for tag in (canonical(s) for s in supported) if tag] or [SERBIAN_LATIN]
    wanted = _parse_accept_language(accept_language or "")
    for tag in wanted:
        if tag == "*":
            return available[0]
        found = None
        try:
            found = Locale.negotiate([tag.replace("-", "_")],
                                     [_BABEL_LOCALE[a] for a in available], sep="_")
        except (UnknownLocaleError, ValueError):
            found = None
        if found is not None:
            language = canonical(str(found).replace("_", "-"))
            if language in available:
                return language
        language = canonical(tag)
        if language in available:
            return language
        primary = tag.split("-")[0].lower()
        if primary == "sr":
            for candidate in available:
                if candidate.startswith("sr-"):
                    return candidate
        neighbour = _NEIGHBOURS.get(primary)
        if neighbour in available:
            return neighbour
        if primary == "en" and ENGLISH in available:
            return ENGLISH
    return available[0]


# --- Serbian Latin -> Cyrillic -------------------------------------------------------

_DIGRAPHS = {"lj": "љ", "nj": "њ", "dž": "џ", "Lj": "Љ", "LJ": "Љ", "Nj": "Њ", "NJ": "Њ",
             "Dž": "Џ", "DŽ": "Џ"}
_LETTERS = dict(zip("abvgdđežzijklmnoprstćufhcčš", "абвгдђежзијклмнопрстћуфхцчш",
                    strict=True))
_LETTERS.update({k.upper(): v.upper() for k, v in list(_LETTERS.items())})
# Left as written: placeholders, markup, entities, URLs and e-mail addresses.
_UNTOUCHED = re.compile(r"%\([^)]*\)[sdif]|%[sdif]|\{[^}]*\}|<[^>]*>|&[#\w]+;"
                        r"|\S+://\S+|[\w.+-]+@[\w.-]+")
_WORD = re.compile(r"dž|Dž|DŽ|lj|Lj|LJ|nj|Nj|NJ|.", re.S)


def _cyrillic(text: str) -> str:
    return "".join(_DIGRAPHS.get(m, _LETTERS.get(m, m)) for m in _WORD.findall(text))


def to_cyrillic(text: str) -> str:
    """Serbian Latin text in Cyrillic (`Prijava` -> `Пријава`), placeholders kept."""
    out, last = [], 0
    for match in _UNTOUCHED.finditer(text):
        out.append(_cyrillic(text[last:match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_cyrillic(text[last:]))
    return "".join(out)


# --- catalogs --------------------------------------------------------------------------

def catalog_path(directory: str) -> Path:
    return LOCALE_DIR / directory / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(directory: str) -> Catalog:
    with catalog_path(directory).open("rb") as handle:
        return read_po(handle, locale=directory)


def _transliterated(catalog: Catalog) -> Catalog:
    out = Catalog(locale="sr_Cyrl", domain=DOMAIN)
    for message in catalog:
        if not message.id:
            continue
        string: Any = message.string
        if isinstance(string, tuple | list):
            string = tuple(to_cyrillic(s) for s in string)
        elif string:
            string = to_cyrillic(string)
        out.add(message.id, string, context=message.context, flags=message.flags)
    return out


@lru_cache(maxsize=8)
def translations(lang: str) -> _gettext.NullTranslations:
    """Compiled translations of `lang` (cached); English falls back to the msgids."""
    language = canonical(lang) or SERBIAN_LATIN
    path = catalog_path(_CATALOG_DIR[language])
    if not path.is_file():
        return _gettext.NullTranslations()
    catalog = read_catalog(_CATALOG_DIR[language])
    if language == SERBIAN_CYRILLIC:
        catalog = _transliterated(catalog)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return _gettext.GNUTranslations(buffer)


def gettext(lang: str, msgid: str) -> str:
    return translations(lang).gettext(msgid)


def ngettext(lang: str, singular: str, plural: str, n: int) -> str:
    return translations(lang).ngettext(singular, plural, n)


def N_(msgid: str) -> str:  # noqa: N802 - the conventional name extractors look for
    """Mark a string for extraction, translated later where the language is known."""
    return msgid


# --- the current language --------------------------------------------------------------

def current_language() -> str:
    return _current.get()


@contextmanager
def set_language(lang: str) -> Iterator[str]:
    """Within the block, templates and `_()` speak `lang`."""
    token = _current.set(canonical(lang) or SERBIAN_LATIN)
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def _(msgid: str) -> str:
    """`msgid` in the current language."""
    return translations(_current.get()).gettext(msgid)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


# --- dates and numbers ----------------------------------------------------------------

def babel_locale(lang: str) -> Locale:
    return Locale.parse(_BABEL_LOCALE[canonical(lang) or SERBIAN_LATIN])


def format_date(value: date | datetime | None, lang: str | None = None,
                tz: tzinfo | str | None = None) -> str:
    """`07.12.2026.` in Serbian, `Dec 7, 2026` in English."""
    if value is None:
        return ""
    language = canonical(lang or _current.get()) or SERBIAN_LATIN
    if isinstance(value, datetime) and tz is not None:
        value = value.astimezone(babel_dates.get_timezone(tz) if isinstance(tz, str) else tz)
    day = value.date() if isinstance(value, datetime) else value
    pattern = _DATE_PATTERNS.get(language, "medium")
    return babel_dates.format_date(day, pattern, locale=babel_locale(language))


def format_datetime(value: datetime | None, lang: str | None = None,
                    tz: tzinfo | str | None = "UTC") -> str:
    """`07.12.2026. 14:05` in Serbian, `Dec 7, 2026, 2:05 PM` in English (in `tz`)."""
    if value is None:
        return ""
    language = canonical(lang or _current.get()) or SERBIAN_LATIN
    zone = babel_dates.get_timezone(tz) if isinstance(tz, str) or tz is None else tz
    local = value.astimezone(zone) if value.tzinfo else value
    if language in _DATE_PATTERNS:
        return f"{format_date(local, language)} {local:%H:%M}"
    clock = babel_dates.format_time(local, "short", locale=babel_locale(language))
    return f"{format_date(local, language)}, {clock}"


def format_number(value: float | int, lang: str | None = None) -> str:
    """`1.234,5` in Serbian, `1,234.5` in English."""
    return babel_numbers.format_decimal(value, locale=babel_locale(lang or _current.get()))


# --- Jinja2 ---------------------------------------------------------------------------

def install(env: Any) -> Any:
    """Give a Jinja2 environment gettext reading the current language, and the
    `date`, `datetime` and `number` filters. Returns the environment."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(_, _ngettext, newstyle=True)
    env.filters["date"] = lambda value, tz=None: format_date(value, tz=tz)
    env.filters["datetime"] = lambda value, tz="UTC": format_datetime(value, tz=tz)
    env.filters["number"] = lambda value: format_number(value)
    env.globals["current_language"] = current_language
    return env
