"""Routing rules and the directory of destinations: loaded from `rules/*.yaml`,
validated, and evaluated by one small evaluator.

In the manner of GNU Mailman's chains: a rule is data (name, description, conditions,
actions); the evaluator walks the rules in order, and for every rule it looks at it
records whether the rule hit or missed and why. A hit takes the rule's actions and
ends the walk unless the rule says `continue: true`. The record is stored on the
case so that a person can later ask why a case went where it went
(`hotline rules explain CASE`).

Validation names the file, the rule and the field of every problem
(`rules/routing.yaml: rule 'domestic-illegal' (#4): when.legality: ...`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.core.config_files import load_yaml
from pipeline.core.errors import ConfigError
from schemas.intake import Category

ROUTING_FILE = "routing.yaml"
DESTINATIONS_FILE = "destinations.yaml"

LEGALITY = (
    "illegal_international", "illegal_national", "not_illegal", "content_not_available",
    "out_of_remit",
)

# The facts about a case a condition may name, with what each means.
FACTS: dict[str, str] = {
    "legality": "the analysts' final decision (" + ", ".join(LEGALITY) + ")",
    "category": "the content category the analysts decided (csam, hate_speech, ...)",
    "claimed_category": "the category the reporter claimed",
    "hosting_country": "ISO 3166 alpha-2 country where the content is hosted (null: unknown)",
    "hosting_known": "true when tracing found the hosting country",
    "domestic": "true when the content is hosted in the hotline's own country (app.country)",
    "member_hotline": "true when the directory has an INHOPE member hotline for the "
    "hosting country (other than this hotline)",
    "behind_cdn": "true when a CDN stands in front of the origin",
    "cdn_name": "name of that CDN (lowercase)",
    "url_kind": "what the URL's host is (domain, ip, onion, ...)",
    "source_channel": "how the first report came in (web, email, partner, ...)",
    "urgent": "a reporter said a child is in immediate danger",
    "has_provider_contact": "tracing found an abuse address of the hosting provider",
    "origin_unknown": "tracing could not find the origin behind a CDN or proxy",
}

# Destinations an action can name by role instead of by key.
SELECTORS: dict[str, str] = {
    "@police": "the home police unit named by `home_police` in destinations.yaml",
    "@hosting_provider": "the hosting provider, at the abuse address tracing found",
    "@registrar": "the domain's registrar, at the abuse address tracing found",
    "@cdn": "the CDN in front of the site (a destination whose cdn_names has its name)",
    "@hotline_of_hosting_country": "the INHOPE member hotline of the hosting country",
}

DestinationKind = Literal["police", "institution", "provider", "registrar", "cdn", "hotline",
                          "upstream"]
Channel = Literal["smtp", "webhook", "file"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")


class RulesInvalid(ConfigError):
    """The rule files have problems; `problems` names file, rule and field of each."""


# --------------------------------------------------------------------------- directory


class Destination(BaseModel):
    """One place a notice can go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field("", description="The destination's key (filled from the mapping).")
    kind: DestinationKind = Field(..., description="What sort of recipient this is.")
    name: str = Field(..., min_length=1, description="Its public name.")
    country: str | None = Field(None, description="ISO 3166 alpha-2 country.")
    language: str | None = Field(None, description="Language notices to it are written "
                                 "in (sr or en); none: `routing.notice_language`.")
    channel: Channel = Field("smtp", description="smtp, webhook or file.")
    address: str | None = Field(
        None, description="E-mail address or https webhook URL; null: a placeholder the "
        "operator fills in (notices to it are kept in the outbox or dead-lettered).",
    )
    address_from: Literal["hosting_abuse_email", "registrar_abuse_email"] | None = Field(
        None, description="Take the address from this case field (providers, registrars)."
    )
    secret_env: str | None = Field(
        None, description="Environment variable holding the webhook's HMAC key."
    )
    cdn_names: list[str] = Field(
        default_factory=list, description="CDN names (as tracing reports them) this serves."
    )
    inhope_member: bool = Field(False, description="An INHOPE member hotline.")
    receives_reporter_identity: bool = Field(
        False, description="Police only: may receive the reporter's contact details when "
        "routing.police_notices_include_reporter is true.",
    )
    receives_personal_data: bool = Field(
        False, description="Police and institutions: a helpline referral to it may carry "
        "the caller's and the child's personal data (off by default: the referral then "
        "carries the case without them).",
    )
    helpline_referral: bool = Field(
        False, description="Listed in the directory counsellors refer helpline cases to.",
    )
    website: str | None = Field(None, description="Public website, for people.")
    note: str | None = Field(None, description="For operators.")

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 2 or not value.isalpha()):
            raise ValueError("must be a two-letter ISO 3166 country code")
        return value.upper() if value else value

    @field_validator("cdn_names")
    @classmethod
    def _cdn_names(cls, value: list[str]) -> list[str]:
        return [v.lower() for v in value]

    @property
    def is_placeholder(self) -> bool:
        return self.address is None and self.address_from is None and self.channel != "file"


class Directory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    home_police: str = Field(..., description="Key of the police unit `@police` means.")
    destinations: dict[str, Destination] = Field(..., description="Destinations by key.")

    def get(self, key: str) -> Destination | None:
        return self.destinations.get(key)

    def hotline_for(self, country: str | None, home: str) -> Destination | None:
        if not country or country.upper() == home.upper():
            return None
        for dest in self.destinations.values():
            if dest.kind == "hotline" and dest.inhope_member and dest.country == country.upper():
                return dest
        return None

    def by_address_from(self, kind: str) -> Destination | None:
        return next((d for d in self.destinations.values()
                     if d.kind == kind and d.address_from is not None), None)

    def cdn(self, name: str | None) -> Destination | None:
        if not name:
            return None
        return next((d for d in self.destinations.values()
                     if d.kind == "cdn" and name.lower() in d.cdn_names), None)


# ---------------------------------------------------------------------------- rules


class Notify(BaseModel):
    """Send a notice to a destination (a key in destinations.yaml, or a selector)."""

    model_config = ConfigDict(extra="forbid")

    notify: str = Field(..., description="Destination key or selector (" +
                        ", ".join(SELECTORS) + ").")
    after_police_hold: bool = Field(
        False, description="Held until the police hold ends (needs hold_for_police)."
    )
    fallback: str | None = Field(
        None, description="Destination (key or selector) used when `notify` cannot be "
        "resolved (no hotline in that country, no abuse address...).",
    )


class HoldForPolice(BaseModel):
    """Hold the notices marked `after_police_hold` until the police say so or the hold
    runs out."""

    model_config = ConfigDict(extra="forbid")

    hold_for_police: Literal[True] = Field(..., description="Always true.")


class Close(BaseModel):
    """Close the case without notices, with a reason."""

    model_config = ConfigDict(extra="forbid")

    close: str = Field(..., min_length=1, description="Why nothing is sent.")


Action = Notify | HoldForPolice | Close


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(..., description="Short unique name (lowercase, digits, dashes).")
    description: str = Field(..., min_length=1, description="Why the rule exists.")
    when: dict[str, Any] = Field(
        default_factory=dict, description="Conditions, all of which must hold. A value "
        "is matched exactly, a list means one of, {not: value-or-list} negates.",
    )
    then: list[Action] = Field(..., min_length=1, description="What to do on a hit.")
    continue_: bool = Field(
        False, alias="continue", description="After a hit, go on to the next rules."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be lowercase letters, digits and dashes")
        return value


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[dict[str, Any]] = Field(..., min_length=1)


@dataclass(frozen=True)
class RuleSet:
    rules: list[Rule]
    directory: Directory
    digest: str  # sha256 of both files: which version of the rules decided
    source: str  # the folder they came from


# ------------------------------------------------------------------------- loading


def _read_yaml(path: Path, problems: list[str]) -> Any:
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"{path}: no such file")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problems.append(f"{path}:{where} not valid YAML: {getattr(exc, 'problem', exc)}")
    return None


def _loc(error: Mapping[str, Any]) -> str:
    return ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-"))


def _error_lines(prefix: str, exc: ValidationError) -> list[str]:
    lines = []
    seen = set()
    for error in exc.errors():
        loc = _loc(error)
        # A union of actions reports one error per member; name the field once.
        loc = re.sub(r"\.(Notify|HoldForPolice|Close)(\.|$)", r"\2", loc).rstrip(".")
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        line = f"{prefix}{loc or '(top level)'}: {message}"
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return lines


def _check_address(dest: Destination, where: str, problems: list[str]) -> None:
    if dest.address is None:
        return
    if dest.channel == "smtp":
        try:
            parsed = Address(addr_spec=dest.address)
        except (ValueError, IndexError) as exc:
            problems.append(f"{where}.address: not an e-mail address ({exc})")
            return
        if not parsed.domain:
            problems.append(f"{where}.address: not an e-mail address (no domain)")
    elif dest.channel == "webhook" and not dest.address.startswith(("https://", "http://")):
        problems.append(f"{where}.address: a webhook address must be an https:// URL")


def load_directory(path: Path, problems: list[str]) -> Directory | None:
    raw = _read_yaml(path, problems)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a mapping with home_police and destinations")
        return None
    raw_dests = raw.get("destinations")
    if isinstance(raw_dests, dict):
        for key, value in raw_dests.items():
            if isinstance(value, dict):
                value.setdefault("key", key)
    try:
        directory = Directory.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            loc = [str(p) for p in error["loc"]]
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            if loc[:1] == ["destinations"] and len(loc) >= 2:
                field_name = ".".join(loc[2:]) or "(entry)"
                problems.append(f"{path}: destination '{loc[1]}': {field_name}: {message}")
            else:
                problems.append(f"{path}: {'.'.join(loc) or '(top level)'}: {message}")
        return None
    for key, dest in directory.destinations.items():
        where = f"{path}: destination '{key}'"
        if not _NAME.match(key):
            problems.append(f"{where}: key must be lowercase letters, digits and dashes")
        if dest.key != key:
            problems.append(f"{where}.key: must equal the entry's key or be left out")
        _check_address(dest, where, problems)
        if dest.kind == "hotline" and not dest.country:
            problems.append(f"{where}.country: a hotline needs its country")
        if dest.channel == "webhook" and dest.address and not dest.secret_env:
            problems.append(f"{where}.secret_env: a webhook needs the name of the "
                            "environment variable holding its HMAC key")
        if (dest.receives_personal_data or dest.helpline_referral) and dest.kind not in (
                "police", "institution"):
            problems.append(f"{where}: only police and institutions take helpline referrals")
        if dest.address and dest.address_from:
            problems.append(f"{where}: give either address or address_from, not both")
    home = directory.destinations.get(directory.home_police)
    if home is None:
        problems.append(f"{path}: home_police: no destination '{directory.home_police}'")
    elif home.kind != "police":
        problems.append(f"{path}: home_police: '{directory.home_police}' is not of kind police")
    return directory


def _check_condition(fact: str, value: Any, where: str, problems: list[str]) -> None:
    if fact not in FACTS:
        problems.append(f"{where}.when.{fact}: unknown fact (known: {', '.join(FACTS)})")
        return
    if isinstance(value, dict):
        if set(value) != {"not"}:
            problems.append(f"{where}.when.{fact}: a mapping must be {{not: value}}")
            return
        value = value["not"]
    values = value if isinstance(value, list) else [value]
    if fact == "legality":
        for v in values:
            if v is not None and v not in LEGALITY:
                problems.append(f"{where}.when.legality: unknown value {v!r} "
                                f"(known: {', '.join(LEGALITY)})")
    elif fact in ("category", "claimed_category"):

        known = {c.value for c in Category}
        for v in values:
            if v is not None and v not in known:
                problems.append(f"{where}.when.{fact}: unknown category {v!r}")
    elif fact == "hosting_country":
        for v in values:
            if v is not None and (not isinstance(v, str) or len(v) != 2 or not v.isalpha()):
                problems.append(f"{where}.when.hosting_country: {v!r} is not a two-letter "
                                "country code")
    elif fact in ("hosting_known", "domestic", "member_hotline", "behind_cdn", "urgent",
                  "has_provider_contact", "origin_unknown"):
        for v in values:
            if not isinstance(v, bool):
                problems.append(f"{where}.when.{fact}: must be true or false, got {v!r}")


def _check_target(target: str, directory: Directory | None, where: str,
                  problems: list[str]) -> None:
    if target.startswith("@"):
        if target not in SELECTORS:
            problems.append(f"{where}: unknown selector {target!r} (known: "
                            f"{', '.join(SELECTORS)})")
        return
    if directory is not None and directory.get(target) is None:
        problems.append(f"{where}: no destination {target!r} in {DESTINATIONS_FILE}")


def load_rules(path: Path, directory: Directory | None, problems: list[str]) -> list[Rule]:
    raw = _read_yaml(path, problems)
    if raw is None:
        return []
    try:
        RuleFile.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_error_lines(f"{path}: ", exc))
        return []
    rules: list[Rule] = []
    names: set[str] = set()
    for index, item in enumerate(raw["rules"], start=1):
        label = item.get("name") if isinstance(item, dict) else None
        where = f"{path}: rule '{label}' (#{index})" if label else f"{path}: rule #{index}"
        try:
            rule = Rule.model_validate(item)
        except ValidationError as exc:
            problems.extend(_error_lines(f"{where}: ", exc))
            continue
        if rule.name in names:
            problems.append(f"{where}.name: another rule is already named {rule.name!r}")
        names.add(rule.name)
        for fact, value in rule.when.items():
            _check_condition(fact, value, where, problems)
        holds = any(isinstance(a, HoldForPolice) for a in rule.then)
        closes = any(isinstance(a, Close) for a in rule.then)
        for number, action in enumerate(rule.then):
            if isinstance(action, Notify):
                _check_target(action.notify, directory, f"{where}.then.{number}.notify",
                              problems)
                if action.fallback:
                    _check_target(action.fallback, directory,
                                  f"{where}.then.{number}.fallback", problems)
                if action.after_police_hold and not holds:
                    problems.append(f"{where}.then.{number}.after_police_hold: the rule has "
                                    "no hold_for_police action")
        if closes and len(rule.then) > 1:
            problems.append(f"{where}.then: close cannot be combined with other actions")
        rules.append(rule)
    if rules and not problems and rules[-1].when:
        problems.append(f"{path}: rule '{rules[-1].name}' (#{len(rules)}): the last rule "
                        "must have no conditions, so that every case gets a decision")
    return rules


def load_ruleset(rules_dir: str | Path) -> RuleSet:
    """Load and validate both files; raise `RulesInvalid` listing every problem."""
    folder = Path(rules_dir)
    problems: list[str] = []
    directory = load_directory(folder / DESTINATIONS_FILE, problems)
    rules = load_rules(folder / ROUTING_FILE, directory, problems)
    if problems or directory is None:
        raise RulesInvalid(problems or [f"{folder}: could not be loaded"])
    digest = hashlib.sha256()
    for name in (ROUTING_FILE, DESTINATIONS_FILE):
        digest.update((folder / name).read_bytes())
    return RuleSet(rules=rules, directory=directory, digest=digest.hexdigest()[:16],
                   source=str(folder))


def placeholders(ruleset: RuleSet) -> list[str]:
    """Keys of destinations whose address the operator has yet to fill in."""
    return [k for k, d in ruleset.directory.destinations.items() if d.is_placeholder]


_cache: dict[str, tuple[tuple[float, ...], RuleSet]] = {}


def cached_ruleset(rules_dir: str | Path) -> RuleSet:
    """`load_ruleset`, loaded again only when a file changed (workers call this)."""
    folder = Path(rules_dir)
    stamp = tuple((folder / n).stat().st_mtime for n in (ROUTING_FILE, DESTINATIONS_FILE))
    hit = _cache.get(str(folder))
    if hit and hit[0] == stamp:
        return hit[1]
    ruleset = load_ruleset(folder)
    _cache[str(folder)] = (stamp, ruleset)
    return ruleset


# ----------------------------------------------------------------------- evaluating


@dataclass
class Step:
    """One rule looked at: hit or missed, and why."""

    rule: str
    hit: bool
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "hit": self.hit, "why": self.why}


@dataclass
class Decision:
    steps: list[Step] = field(default_factory=list)
    actions: list[tuple[str, Action]] = field(default_factory=list)  # (rule name, action)

    @property
    def hits(self) -> list[str]:
        return [s.rule for s in self.steps if s.hit]

    @property
    def misses(self) -> list[str]:
        return [s.rule for s in self.steps if not s.hit]


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "one of " + ", ".join(_show(v) for v in value)
    if isinstance(value, dict):
        return "not " + _show(value.get("not"))
    return str(value)


def _matches(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return not _matches(actual, expected["not"])
    if isinstance(expected, list):
        return any(_matches(actual, e) for e in expected)
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.lower() == expected.lower()
    return bool(actual == expected)


def evaluate(rules: list[Rule], facts: Mapping[str, Any]) -> Decision:
    """Walk the rules in order; record each hit and miss; collect the hits' actions.

    A rule hits when all its conditions hold. A hit ends the walk unless the rule has
    `continue: true`. Pure: the facts are not changed.
    """
    decision = Decision()
    for rule in rules:
        failed = next(((fact, expected) for fact, expected in rule.when.items()
                       if not _matches(facts.get(fact), expected)), None)
        if failed is not None:
            fact, expected = failed
            decision.steps.append(Step(rule.name, False,
                                       f"{fact} is {_show(facts.get(fact))}, "
                                       f"wanted {_show(expected)}"))
            continue
        why = "; ".join(f"{fact} is {_show(facts.get(fact))}" for fact in rule.when)
        decision.steps.append(Step(rule.name, True, why or "no conditions"))
        decision.actions.extend((rule.name, action) for action in rule.then)
        if not rule.continue_:
            break
    return decision
