"""The public reporting form at /report and its status page at /report/status.

Server-rendered HTML in the reader's language (Serbian Latin or English, from
Accept-Language, a cookie or the visible switch), no JavaScript, no third-party
assets, the console's Content-Security-Policy. A submission goes through
`pipeline.stages.intake.accept_reports`, the function the JSON API uses: stored, committed,
then enqueued.

Steps of a POST:
1. refuse a body over `public.max_body_bytes` (413) or not a form (415);
2. count the submission against the per-address and the global limits (429);
3. check the CSRF token (double-submitted cookie) and the honeypot field;
4. validate the fields, each problem a sentence beside its field and in a summary;
5. store the reports through intake and show their references (the URLs shown as
   text, defanged, never as links); the CSRF token is renewed, so sending the page
   again does not report twice.

A request for advice or help (`public.helpline_requests`: a second form on the
page, `purpose=help`, the same limits, CSRF token and honeypot) is not a report: it
is recorded as a helpline contact (`pipeline.stages.helpline.record_incoming`,
channel `contact_form`, source `form`) for counsellors, and acknowledged in the
person's language. Addresses written in it stay in the contact's (encrypted)
summary: they become reports only when a counsellor forms a case with them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from pipeline.adapters.ratelimit import WindowLimiter
from pipeline.app.runtime import Runtime
from pipeline.app.tracers import settler_for
from pipeline.core import i18n
from pipeline.core.config import PublicSection, PublicTexts, Settings
from pipeline.core.errors import NotFound
from pipeline.core.i18n import N_
from pipeline.stages.helpline import record_incoming
from pipeline.stages.intake import accept_reports, public_status
from pipeline.web.console.render import defang
from pipeline.web.security import SecurityHeaders
from schemas.intake import Category, Channel, FoundOn, ReportIn, ReportStatus

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static" / "public"
CSRF_COOKIE = "hotline_form_csrf"
LANG_COOKIE = "hotline_lang"
HONEYPOT = "leave_empty"
HELP = "help"  # the value of `purpose` on the form asking for advice or help
_REFERENCE = re.compile(r"^R-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$")
# Something a person would call a web address: a scheme, or a dotted host name.
_LOOKS_LIKE_URL = re.compile(r"^([a-z][a-z0-9+.-]*://\S+|[^\s/]+\.[^\s/]+(/\S*)?)$", re.I)

templates = Jinja2Templates(directory=str(TEMPLATES))
i18n.install(templates.env)
templates.env.filters["defang"] = defang

# What the content shows, in plain words (the API's category names as keys).
CATEGORY_LABELS = {
    Category.CSAM: N_("Sexual abuse of a child (pictures or videos)"),
    Category.SELF_GENERATED_CSAM: N_(
        "Intimate pictures or videos a child or teenager made of themselves"),
    Category.CHILD_EROTICA: N_("Sexualised pictures of children"),
    Category.GROOMING: N_("An adult trying to draw a child into sexual contact"),
    Category.SEXTORTION: N_("Someone threatening to share intimate pictures (sextortion)"),
    Category.HATE_SPEECH: N_("Hate speech"),
    Category.RACISM_XENOPHOBIA: N_("Racism or xenophobia"),
    Category.TERRORIST_CONTENT: N_("Terrorist or violent extremist content"),
    Category.PHISHING: N_("Fraud or phishing"),
    Category.OTHER: N_("Something else"),
}
NOT_SURE = "not_sure"
NOT_SURE_LABEL = N_("I am not sure")
FOUND_ON_LABELS = {
    FoundOn.WEBSITE: N_("A website"),
    FoundOn.SOCIAL_NETWORK: N_("A social network"),
    FoundOn.MESSAGING: N_("A chat or messaging app"),
    FoundOn.GAME: N_("An online game"),
    FoundOn.EMAIL: N_("An e-mail"),
    FoundOn.FILE_SHARING: N_("File sharing or cloud storage"),
    FoundOn.FORUM: N_("A forum"),
    FoundOn.OTHER: N_("Somewhere else"),
}
STATUS_TEXTS = {
    "received": (N_("Received"),
                 N_("Your report was received and is waiting to be processed.")),
    "in_progress": (N_("Being processed"),
                    N_("Your report is being processed by an analyst.")),
    "rejected": (N_("Could not be processed"),
                 N_("The address you reported could not be processed.")),
    "action_taken": (N_("Passed on for action"),
                     N_("Your report was assessed and passed on for action.")),
    "content_removed": (N_("Content removed"),
                        N_("The content you reported has been removed.")),
    "closed": (N_("Closed"), N_("Your report was assessed and the case is closed.")),
}


@dataclass
class Problem:
    """One error: the field it belongs to, a msgid and its values."""

    field: str
    message: str
    values: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass
class FormInput:
    urls: str = ""
    category: str = ""
    found_on: str = ""
    description: str = ""
    contact: str = ""
    urgent: bool = False


@dataclass
class HelpInput:
    """The form asking for advice or help."""

    message: str = ""
    contact: str = ""


def validate_help(values: dict[str, str], settings: Settings
                  ) -> tuple[HelpInput, str | None, list[Problem]]:
    """A request for advice or help: its summary, or the problems that stop it."""
    form = HelpInput(message=values.get("message", ""), contact=values.get("help_contact", ""))
    problems: list[Problem] = []
    message = form.message.strip()
    limit = min(settings.intake.max_description_chars, settings.helpline.max_summary_chars)
    if not message:
        problems.append(Problem("message", N_(
            "Tell us in a few words what happened or what you need.")))
    elif len(message) > limit:
        problems.append(Problem("message", N_(
            "The message is too long: at most %(max)s characters, please."), {"max": limit}))
    contact = form.contact.strip()
    if len(contact) > min(settings.intake.max_contact_chars, 320):
        problems.append(Problem("help_contact", N_(
            "The contact is too long: at most %(max)s characters, please."),
            {"max": min(settings.intake.max_contact_chars, 320)}))
    if problems:
        return form, None, problems
    return form, message, []


def parse_body(body: bytes) -> dict[str, str]:
    """An url-encoded form body as a dict (first value wins), at most 50 fields."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                          max_num_fields=50, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return {}
    values: dict[str, str] = {}
    for name, value in pairs:
        values.setdefault(name, value)
    return values


def validate(values: dict[str, str], public: PublicSection, settings: Settings,
             language: str) -> tuple[FormInput, list[ReportIn], list[Problem]]:
    """The reports a form makes, or the problems that stop it (in field order)."""
    form = FormInput(
        urls=values.get("urls", ""), category=values.get("category", ""),
        found_on=values.get("found_on", ""), description=values.get("description", ""),
        contact=values.get("contact", ""), urgent=values.get("urgent") == "yes")
    problems: list[Problem] = []
    limits = settings.intake
    lines = [line.strip() for line in form.urls.replace("\r", "\n").split("\n")]
    urls = list(dict.fromkeys(line for line in lines if line))
    if not urls:
        problems.append(Problem("urls", N_("Enter the address (URL) of what you saw.")))
    elif len(urls) > public.max_urls:
        problems.append(Problem("urls", N_(
            "Enter at most %(max)s addresses in one report; send the others in another."),
            {"max": public.max_urls}))
    else:
        for number, url in enumerate(urls, start=1):
            if len(url.encode()) > limits.max_url_bytes:
                problems.append(Problem("urls", N_(
                    "Address %(number)s is too long to be a web address."),
                    {"number": number}))
            elif not _LOOKS_LIKE_URL.match(url):
                problems.append(Problem("urls", N_(
                    "Address %(number)s does not look like a web address. Copy it from "
                    "the browser's address bar, for example https://example.com/page."),
                    {"number": number}))
    category: Category | None = None
    if form.category == NOT_SURE:
        category = None
    elif form.category in public.categories:
        category = Category(form.category)
    else:
        problems.append(Problem("category", N_(
            "Choose what the content shows, or \u201cI am not sure\u201d.")))
    found_on: FoundOn | None = None
    if form.found_on:
        try:
            found_on = FoundOn(form.found_on)
        except ValueError:
            problems.append(Problem("found_on", N_("Choose where you found it from the list.")))
    description = form.description.strip()
    if len(description) > limits.max_description_chars:
        problems.append(Problem("description", N_(
            "The description is too long: at most %(max)s characters, please."),
            {"max": limits.max_description_chars}))
    contact = form.contact.strip()
    if len(contact) > limits.max_contact_chars:
        problems.append(Problem("contact", N_(
            "The contact is too long: at most %(max)s characters, please."),
            {"max": limits.max_contact_chars}))
    if problems:
        return form, [], problems
    items = [ReportIn(url=url, channel=Channel.WEB, claimed_category=category,
                      description=description or None, reporter_contact=contact or None,
                      language=language, urgent=form.urgent, found_on=found_on)
             for url in urls]
    return form, items, []


def _texts(public: PublicSection, settings: Settings, language: str) -> PublicTexts:
    """The deployment's texts in `language`, falling back to the default language."""
    texts = public.texts.get(language) or public.texts.get(public.languages[0])
    if texts is None:
        return PublicTexts(hotline_name=settings.app.name)
    if not texts.hotline_name:
        return texts.model_copy(update={"hotline_name": settings.app.name})
    return texts


def choose_language(request: Request, public: PublicSection,
                    form_value: str | None = None) -> tuple[str, bool]:
    """The page's language and whether the reader chose it just now (to remember)."""
    asked = form_value or request.query_params.get("lang")
    if asked and i18n.canonical(asked) in public.languages:
        return i18n.canonical(asked) or public.languages[0], True
    cookie = request.cookies.get(LANG_COOKIE)
    if cookie and i18n.canonical(cookie) in public.languages:
        return i18n.canonical(cookie) or public.languages[0], False
    return i18n.negotiate(request.headers.get("accept-language"), public.languages), False


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text or "") if p.strip()]


def _client_key(request: Request) -> str:
    """The client address, hashed: limits never keep an address in clear."""
    address = request.client.host if request.client else "unknown"
    return hashlib.sha256(f"form-client:{address}".encode()).hexdigest()[:32]


def _retention_days(settings: Settings) -> dict[str, int | None]:
    return {"contact": settings.retention.reporter_contact_days,
            "description": settings.retention.description_days,
            "helpline": settings.helpline.personal_data_days}


class PublicForm:
    """The form's routes, bound to one runtime."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.settings = runtime.settings
        self.public = runtime.settings.public
        self.limiter = WindowLimiter(runtime.redis, runtime.key("form-limit"))
        # At most this many form submissions write at once in this process: a flood
        # within the limits waits here, on the event loop, not in the thread pool the
        # API's requests share.
        self.writers = asyncio.Semaphore(4)

    # --- rendering -------------------------------------------------------------------

    def render(self, request: Request, name: str, language: str, context: dict[str, Any],
               *, status_code: int = 200, remember: bool = False,
               csrf: str | None = None) -> Response:
        public = self.public
        here = request.url.path
        base = {
            "lang": language,
            "languages": [(code, i18n.NATIVE_NAMES[code]) for code in public.languages],
            "texts": _texts(public, self.settings, language),
            "paragraphs": _paragraphs,
            "here": here,
            "retention": _retention_days(self.settings),
        }
        with i18n.set_language(language):
            response = templates.TemplateResponse(request, name, {**base, **context},
                                                  status_code=status_code)
        response.headers["content-language"] = language
        if remember:
            response.set_cookie(LANG_COOKIE, language, max_age=365 * 86400, path="/report",
                                httponly=True, samesite="lax",
                                secure=request.url.scheme == "https")
        if csrf is not None:
            response.set_cookie(CSRF_COOKIE, csrf, max_age=6 * 3600, path="/report",
                                httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
        return response

    def form_page(self, request: Request, language: str, *, form: FormInput | None = None,
                  problems: list[Problem] | None = None, notice: str | None = None,
                  status_code: int = 200, remember: bool = False,
                  csrf: str | None = None, help_form: HelpInput | None = None,
                  purpose: str = "report") -> Response:
        token = csrf or self._csrf_of(request)
        problems = problems or []
        by_field: dict[str, list[Problem]] = {}
        for problem in problems:
            by_field.setdefault(problem.field, []).append(problem)
        with i18n.set_language(language):
            errors = {name: [i18n._(p.message) % p.values for p in found]
                      for name, found in by_field.items()}
            notice_text = i18n._(notice) if notice else None
        categories = [(c, CATEGORY_LABELS[Category(c)]) for c in self.public.categories]
        return self.render(request, "public/form.html", language, {
            "form": form or FormInput(), "errors": errors, "notice": notice_text,
            "field_order": ["urls", "category", "found_on", "description", "contact",
                            "message", "help_contact"],
            "help_form": help_form or HelpInput(), "purpose": purpose,
            "helpline_requests": self.public.helpline_requests,
            "categories": [*categories, (NOT_SURE, NOT_SURE_LABEL)],
            "found_on": list(FOUND_ON_LABELS.items()), "csrf": token,
            "honeypot": HONEYPOT, "max_urls": self.public.max_urls,
        }, status_code=status_code, remember=remember, csrf=token)

    @staticmethod
    def _csrf_of(request: Request) -> str:
        existing = request.cookies.get(CSRF_COOKIE)
        return existing if existing and len(existing) >= 32 else secrets.token_urlsafe(32)

    # --- routes ------------------------------------------------------------------------

    async def show(self, request: Request) -> Response:
        language, chosen = choose_language(request, self.public)
        return self.form_page(request, language, remember=chosen)

    async def submit(self, request: Request) -> Response:
        public = self.public
        language, _ = choose_language(request, public)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > public.max_body_bytes):
            return self._message(request, language, 413, N_("The form is too large"),
                                 N_("What you sent is larger than this form takes. Shorten "
                                    "the description, or send fewer addresses at once."))
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return self._message(request, language, 415, N_("The form could not be read"),
                                 N_("Please send the form from this page."))
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > public.max_body_bytes:
                return self._message(request, language, 413, N_("The form is too large"),
                                     N_("What you sent is larger than this form takes. "
                                        "Shorten the description, or send fewer addresses "
                                        "at once."))
        values = parse_body(bytes(body))
        language, chosen = choose_language(request, public, values.get("lang"))
        # Limits first: a flood costs a counter, never a database write.
        client_ok = await run_in_threadpool(
            self.limiter.hit, f"addr:{_client_key(request)}", public.address_limit,
            public.address_window_seconds)
        global_ok = client_ok and await run_in_threadpool(
            self.limiter.hit, "all", public.global_limit, public.global_window_seconds)
        asks_help = values.get("purpose") == HELP and public.helpline_requests
        help_form, summary, help_problems = validate_help(values, self.settings)
        form, items, problems = validate(values, public, self.settings, language)
        if asks_help:
            form, problems = FormInput(), help_problems
        purpose = HELP if asks_help else "report"
        if not (client_ok and global_ok):
            log.warning("The public form refused a submission: %s rate limit reached.",
                        "the per-address" if not client_ok else "the global")
            return self.form_page(request, language, form=form, help_form=help_form,
                                  purpose=purpose, status_code=429, notice=N_(
                "Too many reports were sent in a short time. Your report was not sent yet: "
                "please wait a few minutes and send it again. If it is urgent, call the "
                "police."))
        sent_token = values.get("csrf", "")
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not (sent_token and cookie and hmac.compare_digest(sent_token, cookie)):
            log.info("The public form refused a submission without a valid CSRF token.")
            return self.form_page(request, language, form=form, help_form=help_form,
                                  purpose=purpose, status_code=400, notice=N_(
                "The form expired before it was sent. Nothing was sent: please check what "
                "you entered and send it again."), csrf=secrets.token_urlsafe(32))
        if values.get(HONEYPOT):
            log.info("The public form refused a submission that filled the honeypot field.")
            return self.form_page(request, language, form=form, help_form=help_form,
                                  purpose=purpose, status_code=422, notice=N_(
                "The form could not be sent. Please leave the last field empty and send it "
                "again."))
        if problems:
            return self.form_page(request, language, form=form, problems=problems,
                                  status_code=422, remember=chosen,
                                  help_form=help_form, purpose=purpose)
        runtime = self.runtime
        if asks_help:
            assert summary is not None
            async with self.writers:
                contact_ref = await run_in_threadpool(
                    self._record_help, summary, help_form.contact.strip() or None, language)
            log.info("The public form took a request for help as helpline contact %s.",
                     contact_ref)
            return self.render(request, "public/help_received.html", language, {
                "with_contact": bool(help_form.contact.strip()),
            }, status_code=201, remember=chosen, csrf=secrets.token_urlsafe(32))
        async with self.writers:
            submission, accepted = await run_in_threadpool(
                accept_reports, runtime.session_factory, items, clock=runtime.clock,
                limits=self.settings.intake, enqueuer=runtime.enqueuer,
                source="public form", actor="form", settle=settler_for(runtime))
        log.info("The public form took submission %s with %d report(s).", submission,
                 len(accepted))
        return self.render(request, "public/confirmation.html", language, {
            "submission": submission, "reports": accepted, "urgent": form.urgent,
            "with_contact": bool(form.contact.strip()),
        }, status_code=201, remember=chosen, csrf=secrets.token_urlsafe(32))

    async def status(self, request: Request) -> Response:
        language, chosen = choose_language(request, self.public)
        raw = (request.query_params.get("ref") or "").strip().upper()[:64]
        context: dict[str, Any] = {"ref": raw, "status": None, "problem": None}
        status_code = 200
        if raw:
            if not _REFERENCE.match(raw):
                context["problem"] = N_("A report reference looks like "
                                        "R-ABCD-EFGH-JKLM-NPQR. Check it and try again.")
                status_code = 422
            else:
                found = await run_in_threadpool(self._status_of, raw)
                if found is None:
                    context["problem"] = N_("We found no report with this reference. "
                                            "Check it and try again.")
                    status_code = 404
                else:
                    label, text = STATUS_TEXTS[found.status.value]
                    context["status"] = {"reference": found.reference,
                                         "received_at": found.received_at,
                                         "label": label, "text": text}
        context["timezone"] = self.settings.worktime.timezone
        return self.render(request, "public/status.html", language, context,
                           status_code=status_code, remember=chosen)

    def _record_help(self, summary: str, contact: str | None, language: str) -> str:
        """The request for help as a helpline contact, committed; its reference."""
        runtime = self.runtime
        with runtime.session_factory.begin() as session:
            now = runtime.clock.now()
            contact_row = record_incoming(
                session, channel="contact_form", received_at=now, summary=summary,
                sender=contact, language=language, now=now, settings=self.settings,
                source="form")
            return contact_row.ref

    def _status_of(self, ref: str) -> ReportStatus | None:
        with self.runtime.session_factory() as session:
            try:
                return public_status(session, ref)
            except NotFound:
                return None

    def _message(self, request: Request, language: str, status_code: int, title: str,
                 text: str) -> Response:
        return self.render(request, "public/message.html", language,
                           {"title": title, "text": text}, status_code=status_code)


def install(app: FastAPI) -> None:
    """Serve the form when `public.enabled`, with the console's security headers."""
    runtime: Runtime = app.state.runtime
    if not runtime.settings.public.enabled:
        return
    form = PublicForm(runtime)
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/report", form.show, methods=["GET"])
    router.add_api_route("/report", form.submit, methods=["POST"])
    router.add_api_route("/report/status", form.status, methods=["GET"])
    app.include_router(router)
    app.mount("/report/static", StaticFiles(directory=str(STATIC)), name="public-static")
    app.add_middleware(SecurityHeaders, prefixes=("/report",))
