"""Configuration: `config.yaml`, overridden by `HOTLINE_<SECTION>__<KEY>` variables.

`HOTLINE_CONFIG` names another YAML file laid over the shipped `config.yaml` key by
key (a deep merge: a file giving `trace: {rdap_timeout_seconds: 3}` keeps every other
`trace` key); relative paths in a file resolve against that file's folder. Every key
is described in the shipped `config.yaml`; this module is the validating model. A bad
value stops start-up with one line per problem naming the key (see `ConfigError`).
`provenance()` says where each value came from (default, a file, the environment).
"""

from __future__ import annotations

import ipaddress
import os
from datetime import date
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from pipeline.core.config_files import leaves, read_config_files
from pipeline.core.errors import ConfigError
from pipeline.core.worktime import parse_window
from schemas.assessment import Legality
from schemas.intake import Category


class Section(BaseModel):
    model_config = {"extra": "forbid"}


class AppSection(Section):
    mode: Literal["embedded", "production"] = Field(
        "embedded",
        description="embedded: one process, SQLite, in-process broker. production: scaled out.",
    )
    name: str = Field("Hotline", description="Name of the hotline shown in pages and notices.")
    country: str = Field(
        "RS", description="ISO 3166 alpha-2 country of the hotline (its home jurisdiction)."
    )
    data_dir: str = Field("var", description="Folder for the SQLite file, outbox and artefacts.")

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        if len(value) != 2 or not value.isalpha():
            raise ValueError("must be a two-letter ISO 3166 country code")
        return value.upper()


class DatabaseSection(Section):
    url: str = Field("sqlite:///var/hotline.db", description="SQLAlchemy database URL.")
    pool_size: int = Field(5, ge=1, le=200, description="Connections kept per process.")
    echo: bool = Field(False, description="Log every SQL statement (debugging only).")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value


class BrokerSection(Section):
    url: str = Field(
        "memory://", description="memory:// (in-process) or redis://host:port/db."
    )
    namespace: str = Field("hotline", description="Prefix of the broker's Redis keys.")
    heartbeat_timeout_ms: int = Field(
        10_000, ge=1_000, description="After this, a dead worker's messages are requeued."
    )
    maintenance_per_million: int = Field(
        20_000, ge=1, le=1_000_000, description="Of a million broker commands, how many "
        "also requeue dead workers' messages (dramatiq's maintenance_chance)."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://", "unix://")):
            raise ValueError("must be memory:// or a redis:// URL")
        return value

    @property
    def is_redis(self) -> bool:
        return not self.url.startswith("memory://")


class RedisSection(Section):
    url: str | None = Field(
        None,
        description="Redis for caches, dedup claims and rate limits; none = use broker.url "
        "when that is Redis, otherwise work without Redis.",
    )
    namespace: str = Field("hotline", description="Prefix of the project's own Redis keys.")


class WorkerSection(Section):
    threads: int = Field(2, ge=1, le=64, description="Worker threads per worker process "
                         "(CPU-bound stages: add processes rather than threads).")
    batch_size: int = Field(
        250, ge=1, le=5_000, description="Most ids one stage message carries."
    )
    max_retries: int = Field(
        8, ge=0, le=100, description="Retries of a failing message before it is dead-lettered."
    )
    min_backoff_ms: int = Field(1_000, ge=10, description="First retry delay.")
    max_backoff_ms: int = Field(600_000, ge=100, description="Longest retry delay.")
    time_limit_ms: int = Field(300_000, ge=1_000, description="Longest a message may run.")


class WebSection(Section):
    host: str = Field("127.0.0.1", description="Address the web app listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port the web app listens on.")
    public_url: str = Field(
        "", description="Base URL used in links sent to people; empty = "
        "http://<host>:<port> from the two keys above.",
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest request body accepted."
    )


    @field_validator("public_url", mode="before")
    @classmethod
    def _empty_public_url(cls, value: Any) -> Any:
        return "" if value is None else value

    @model_validator(mode="after")
    def _public_url_follows_host_and_port(self) -> WebSection:
        if not self.public_url:
            host = self.host
            if host in ("0.0.0.0", "::", ""):  # noqa: S104 - listening everywhere
                host = "127.0.0.1"
            if ":" in host:
                host = f"[{host}]"
            self.public_url = f"http://{host}:{self.port}"
        return self


class IntakeSection(Section):
    max_batch: int = Field(1_000, ge=1, le=10_000, description="Most reports in one request.")
    max_url_bytes: int = Field(
        65_536,
        ge=1_024,
        description="Longest URL accepted at intake (longer ones are refused with 422; "
        "URLs over the normaliser's own limit are kept and rejected with a reason).",
    )
    max_description_chars: int = Field(10_000, ge=0, description="Longest description.")
    max_contact_chars: int = Field(500, ge=0, description="Longest reporter contact.")
    max_future_skew_seconds: int = Field(
        300, ge=0, description="How far in the future a received time may lie."
    )
    import_commit_every: int = Field(
        1_000, ge=1, description="Most reports committed per transaction by `hotline import` "
        "(it starts with one, then doubles the batch: the first reports flow at once)."
    )
    settle_up_to: int | None = Field(
        None, ge=0, description="Submissions of at most this many reports are normalised "
        "and deduplicated in their intake transaction: each report is written once, "
        "already on its case; of a larger one only the first report, and the workers "
        "settle the rest side by side. An import settles each of its commits whole. "
        "0: the workers settle everything. Unset: every report with the in-process "
        "broker, 100 with a Redis broker (docs/pipeline/intake.md)."
    )


class UrlsSection(Section):
    max_url_bytes: int = Field(
        8 * 1024, ge=256, le=65_536,
        description="Longest URL the normaliser accepts (longer ones are rejected with a reason).",
    )
    schemes: list[str] = Field(
        ["http", "https"], min_length=1, description="URL schemes a report may have."
    )
    assume_http: bool = Field(
        True, description="Read input without a scheme (www.example.com/a) as http://.",
    )
    strip_params: list[str] = Field(
        [
            "utm_*", "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid",
            "yclid", "twclid", "ttclid", "igshid", "mc_cid", "mc_eid", "_ga", "_gl",
            "_hsenc", "_hsmi", "mkt_tok", "li_fat_id", "oly_anon_id", "oly_enc_id",
            "rb_clickid", "s_cid", "vero_id", "wickedid", "spm",
        ],
        description="Tracking query parameters removed from the canonical URL (shell-style "
        "patterns, matched without regard to case).",
    )
    redirector_hosts: list[str] = Field(
        [
            "bit.ly", "bitly.com", "t.co", "tinyurl.com", "goo.gl", "ow.ly", "is.gd", "v.gd",
            "buff.ly", "rebrand.ly", "cutt.ly", "shorturl.at", "rb.gy", "t.ly", "tiny.cc",
            "lnkd.in", "s.id", "bit.do", "qrco.de", "shorte.st", "adf.ly", "l.facebook.com",
            "lm.facebook.com", "href.li", "urlshortener.at", "tinyurl.at", "clck.ru",
        ],
        description="URL shorteners and redirectors: their URLs get kind `redirector` "
        "(a host and all its subdomains).",
    )
    dedup_ignore_scheme: bool = Field(
        False, description="http:// and https:// of the same URL are one case."
    )
    dedup_ignore_www: bool = Field(
        False, description="www.example.com and example.com are one case."
    )
    closed_case_window_hours: float = Field(
        24, ge=0, description="A URL reported again within this many hours after its case "
        "was closed (not removed) joins that case instead of opening a new one; 0: never.",
    )
    claim_ttl_seconds: int = Field(
        86_400, ge=1, description="How long a Redis dedup claim (key -> open case) is kept.",
    )

    @field_validator("schemes")
    @classmethod
    def _schemes(cls, value: list[str]) -> list[str]:
        allowed = {"http", "https", "ftp"}
        bad = [s for s in value if s.lower() not in allowed]
        if bad:
            raise ValueError(f"unsupported schemes {bad}; choose from {sorted(allowed)}")
        return [s.lower() for s in value]

    @field_validator("redirector_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return [h.strip().lower().rstrip(".") for h in value if h.strip()]


class ReconcilerSection(Section):
    interval_seconds: float = Field(
        30, gt=0, description="How often the scheduler looks for stuck reports and cases."
    )
    stage_deadline_seconds: float = Field(
        120, gt=0, description="A report or case waiting longer than this in a stage is "
        "enqueued again.",
    )
    max_ids_per_run: int = Field(50_000, ge=1, description="Most items re-enqueued per run.")


class SchedulerSection(Section):
    lease_seconds: float = Field(
        5, ge=1, le=300, description="The scheduler lease in Redis: a standby takes over "
        "this long after the active scheduler stopped renewing it."
    )


class RecoverySection(Section):
    heartbeat_seconds: float = Field(
        1, gt=0, description="How often each worker process records that it is alive."
    )
    dead_after_seconds: float = Field(
        6, gt=0, description="A worker process silent this long is dead: its claimed "
        "notices are released at once, not after dispatch.lease_seconds."
    )
    check_interval_seconds: float = Field(
        1, gt=0, description="How often the scheduler looks for dead worker processes."
    )

    @model_validator(mode="after")
    def _dead_after_beats(self) -> RecoverySection:
        if self.dead_after_seconds < 3 * self.heartbeat_seconds:
            raise ValueError("dead_after_seconds must be at least three heartbeats "
                             "(3 x heartbeat_seconds)")
        return self
class AssessmentPreset(BaseModel):
    """One key on the case page that fills in a whole decision (the console's presets)."""

    model_config = {"extra": "forbid"}

    shortcut: str = Field(..., pattern=r"^[0-9]$", description="The digit that applies it.")
    legality: str = Field(..., description="Legality (schemas.assessment.Legality).")
    category: str | None = Field(None, description="Category (schemas.intake.Category).")
    age_group: str | None = Field(None, description="ICCAM age group.")
    gender: str | None = Field(None, description="ICCAM gender.")
    site_type: str | None = Field(None, description="ICCAM site type.")
    content_type: str | None = Field(None, description="ICCAM content type.")
    commercial: bool | None = Field(None, description="The site sells access or content.")


def _default_presets() -> list[AssessmentPreset]:
    csam = {"legality": "illegal_international", "gender": "female",
            "site_type": "image_host", "content_type": "image", "commercial": False}
    return [
        AssessmentPreset(shortcut="1", category="csam", age_group="pre_pubescent", **csam),
        AssessmentPreset(shortcut="2", category="self_generated_csam", age_group="pubescent",
                         **csam),
        AssessmentPreset(shortcut="3", legality="illegal_national", category="hate_speech"),
        AssessmentPreset(shortcut="4", legality="not_illegal"),
        AssessmentPreset(shortcut="5", legality="content_not_available"),
        AssessmentPreset(shortcut="6", legality="out_of_remit"),
        AssessmentPreset(shortcut="7", category="csam", age_group="pubescent", **csam),
    ]


class ConsoleSection(Section):
    languages: list[Literal["sr-Latn", "en", "sr-Cyrl"]] = Field(
        default_factory=lambda: ["sr-Latn", "en"],  # type: ignore[arg-type]
        min_length=1,
        description="Languages of the console, the first the default when the browser "
        "asks for none of them (sr-Cyrl: Serbian in Cyrillic, transliterated).",
    )
    presets: list[AssessmentPreset] = Field(
        default_factory=_default_presets,
        description="One-key decisions on the case page (digit keys), most frequent first.",
    )
    session_idle_minutes: int = Field(
        60, ge=1, le=24 * 60, description="A console session unused this long ends."
    )
    session_max_hours: int = Field(
        12, ge=1, le=24 * 7, description="A console session ends this long after login."
    )
    cookie_secure: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Secure flag of the console cookies: auto = when the request came "
        "over TLS (https, or X-Forwarded-Proto from a trusted proxy), always, or never.",
    )
    login_max_failures: int = Field(
        5, ge=1, le=1_000, description="Failed logins per user name or client address "
        "allowed within login_window_seconds before further attempts are refused.",
    )
    login_window_seconds: int = Field(
        900, ge=1, description="Window over which failed logins are counted."
    )


class RetentionSection(Section):
    """How long personal data and URLs are kept after a case closes."""

    enabled: bool = Field(True, description="Run the scheduled purge.")
    interval_seconds: float = Field(3600, gt=0, description="How often the purge runs.")
    reporter_contact_days: int | None = Field(
        30, ge=0, description="Days after a case closes that reporter contacts are kept "
        "(none = kept for ever)."
    )
    description_days: int | None = Field(
        180, ge=0, description="Days after a case closes that reporters' descriptions are kept."
    )
    trace_answers_days: int | None = Field(
        365, ge=0, description="Days after a case closes that raw DNS and RDAP answers are kept."
    )
    closed_case_urls_days: int | None = Field(
        730, ge=0, description="Days after a case closes that its URLs are kept."
    )
    batch_size: int = Field(1_000, ge=1, description="Cases purged per transaction.")


class PrivacySection(Section):
    """Reporter privacy and the secrets the pipeline holds."""

    encryption_key: SecretStr | None = Field(
        None, description="Fernet key(s) encrypting reporter contacts at rest, comma-"
        "separated, newest first. From HOTLINE_PRIVACY__ENCRYPTION_KEY, never config.yaml."
    )
    encryption_key_file: str | None = Field(
        None, description="File outside the repository holding the key(s) instead."
    )


class MetricsSection(Section):
    enabled: bool = Field(True, description="Serve GET /metrics from the web app.")
    port: int = Field(
        0, ge=0, le=65535, description="Port on which worker and scheduler processes serve "
        "their metrics (0: not served)."
    )
    refresh_seconds: float = Field(
        15, ge=0, description="Metrics read from the database are cached this long."
    )
    scheduler_max_silence_seconds: float = Field(
        180, gt=0, description="/readyz says the scheduler is down after this long "
        "without its heartbeat."
    )


class RoutingSection(Section):
    rules_dir: str = Field(
        "rules", description="Folder holding routing.yaml and destinations.yaml."
    )
    police_hold_hours: float = Field(
        72, gt=0, description="How long the police may hold a case before the provider is told."
    )
    police_hold_auto_release: bool = Field(
        True, description="At the deadline the hold ends by itself (false: it waits for "
        "the police's reply however long it takes)."
    )
    police_notices_include_reporter: bool = Field(
        False, description="Notices to the police carry the reporter's contact details "
        "(no other notice ever does)."
    )
    police_hold_check_seconds: float = Field(
        60, gt=0, description="How often the scheduler looks for police holds past deadline."
    )
    notice_language: Literal["sr", "en"] = Field(
        "en", description="Language of the notices to a destination whose entry in "
        "destinations.yaml names none (sr: Serbian, Latin script; en: English)."
    )


class DispatchSection(Section):
    deliver: Literal["auto", "outbox", "live"] = Field(
        "auto", description="outbox: every notice is written to the outbox folder and "
        "nothing leaves the machine; live: the destination's channel (SMTP, webhook); "
        "auto: outbox in embedded mode, live in production mode.",
    )
    outbox_dir: str | None = Field(
        None, description="File-drop outbox folder; none = <app.data_dir>/outbox."
    )
    sender_address: str = Field(
        "hotline@localhost", description="From: address of notices sent by e-mail."
    )
    smtp_host: str = Field("127.0.0.1", description="SMTP server (submission).")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    smtp_starttls: bool = Field(True, description="Upgrade the connection with STARTTLS.")
    smtp_user: str | None = Field(
        None, description="SMTP login; the password comes from HOTLINE_SMTP_PASSWORD only."
    )
    smtp_ca_file: str | None = Field(
        None, description="CA certificates to verify the SMTP server with; none = the system's."
    )
    smtp_timeout_seconds: float = Field(30, gt=0, description="SMTP connect/command timeout.")
    webhook_timeout_seconds: float = Field(30, gt=0, description="Webhook request timeout.")
    webhook_allow_http: bool = Field(
        False, description="Allow http:// webhook URLs (tests on loopback only)."
    )
    lease_seconds: float = Field(
        300, gt=0, description="A notice claimed for delivery by a worker that then died "
        "may be claimed again after this.",
    )
    max_attempts: int = Field(
        10, ge=1, description="Delivery attempts before a notice is dead-lettered."
    )
    min_backoff_seconds: float = Field(60, gt=0, description="First retry delay.")
    max_backoff_seconds: float = Field(6 * 3600, gt=0, description="Longest retry delay.")


class ResolverAddress(Section):
    address: str = Field(..., description="IP address of a recursive DNS resolver.")
    port: int = Field(53, ge=1, le=65535, description="UDP/TCP port of the resolver.")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        """Also "192.0.2.53", "192.0.2.53:5353", "2001:db8::53", "[2001:db8::53]:53"."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        address, port = text, "53"
        if text.startswith("["):
            address, _, rest = text[1:].partition("]")
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"{value!r}: expected [IPv6]:port")
                port = rest[1:]
        elif text.count(":") == 1:
            address, port = text.split(":")
        if not port.isdigit():
            raise ValueError(f"{value!r}: the port must be a number")
        return {"address": address, "port": int(port)}

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None


class TraceSection(Section):
    resolvers: list[ResolverAddress] = Field(
        default_factory=lambda: [ResolverAddress(address="1.1.1.1"),
                                 ResolverAddress(address="9.9.9.9")],
        description="Recursive resolvers asked, in order (address and port).",
    )
    dns_timeout_seconds: float = Field(2.0, gt=0, description="Wait for one DNS answer.")
    dns_lifetime_seconds: float = Field(
        5.0, gt=0, description="Longest one DNS question may take over every resolver."
    )
    max_cname_chain: int = Field(8, ge=1, le=16, description="Longest CNAME chain followed.")
    asn_dns_zone_v4: str = Field(
        "origin.asn.cymru.com",
        description="Team Cymru style zone answering TXT 'ASN | prefix | CC | rir | date' "
        "for reversed IPv4 addresses; empty = ASN from RDAP only.",
    )
    asn_dns_zone_v6: str = Field(
        "origin6.asn.cymru.com", description="The same for IPv6 (nibble-reversed)."
    )
    rdap_base_url: str | None = Field(
        None,
        description="Send every RDAP query (/ip, /autnum, /domain, /entity) to this one "
        "server (a mirror or redirector) instead of the IANA bootstrap servers.",
    )
    bootstrap_dir: str | None = Field(
        None, description="Folder with IANA's ipv4.json, ipv6.json, asn.json, dns.json; "
        "none = the copies shipped with hotline.",
    )
    rdap_timeout_seconds: float = Field(5.0, gt=0, description="Wait for one RDAP answer.")
    rdap_rate_per_second: float = Field(
        5.0, gt=0, description="Most RDAP queries per second to one registry, shared by "
        "every worker through Redis (per process without Redis).",
    )
    rdap_burst: int = Field(10, ge=1, description="Queries a registry may get at once.")
    rate_limit_wait_ms: int = Field(
        250, ge=0, le=5_000,
        description="Longest a worker thread waits for the rate limit before the message "
        "is retried later instead.",
    )
    retry_delay_ms: int = Field(
        30_000, ge=100, description="Delay of the retry after an RDAP 429 without "
        "Retry-After, a timeout or the rate limit.",
    )
    give_up_after_seconds: float = Field(
        900, gt=0, description="A case still failing to trace this long after it was "
        "normalised goes on to assessment marked 'origin unknown'.",
    )
    network_cache_seconds: int = Field(
        86_400, ge=0, description="How long an RDAP network answer is reused for every "
        "address in its prefix.",
    )
    domain_cache_seconds: int = Field(
        86_400, ge=0, description="How long a domain's registrar answer is reused."
    )
    negative_cache_seconds: int = Field(
        300, ge=0, description="How long a 'not found' (RDAP 404, NXDOMAIN) is remembered."
    )
    dns_cache_max_seconds: int = Field(
        3_600, ge=0, description="Longest a DNS answer is reused (its own TTL is shorter "
        "when it says so).",
    )
    concurrency: int = Field(16, ge=1, le=256, description="Parallel DNS/RDAP questions "
                             "per worker thread's batch.")
    registrar_lookup: Literal["always", "fallback", "never"] = Field(
        "always", description="Ask RDAP for the registrar of every registered domain "
        "(always), only when the hosting provider cannot be told (fallback: origin unknown, "
        "behind a CDN, no abuse contact), or never.",
    )
    providers_file: str = Field(
        "rules/providers.yaml", description="CDNs and big providers: ranges, ASNs, contacts."
    )
    geoip_database: str | None = Field(
        None, description="Optional MaxMind-format (.mmdb) country database; used when "
        "RDAP gives no country.",
    )
    breaker_failures: int = Field(
        3, ge=0, le=1_000, description="Failures in a row (timeout, refused, 5xx) after "
        "which a DNS resolver's or RDAP server's circuit opens: it is not asked and cases "
        "go on as 'origin unknown: registries unreachable'; 0 = no circuit breakers.",
    )
    breaker_reset_seconds: float = Field(
        60, gt=0, description="How long an open circuit stays open before one trial "
        "question is let through.",
    )
    breaker_retry_ms: int = Field(
        2_000, ge=100, description="Delay of the retry after a server failed while its "
        "circuit is still closed (so that the next failures open it within seconds).",
    )
    unreachable_retry_seconds: float = Field(
        120, gt=0, description="How often the scheduler sends cases traced while the "
        "registries were unreachable to be traced again (not while a circuit is open).",
    )
    unreachable_retrace_batch: int = Field(
        500, ge=1, le=50_000, description="Most such cases sent again per run.",
    )


class LoggingSection(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    format: Literal["text", "json"] = Field("text", description="text or json lines.")


class FourEyesRule(BaseModel):
    """When a decision needs a second analyst: every listed field must match."""

    model_config = {"extra": "forbid"}

    name: str = Field(..., min_length=1, max_length=80, description="Shown on the case.")
    legality: list[str] | None = Field(None, description="Decided legality is one of these.")
    category: list[str] | None = Field(None, description="Decided category is one of these.")
    claimed_category: list[str] | None = Field(
        None, description="The reporter's claimed category is one of these."
    )

    @field_validator("legality")
    @classmethod
    def _legality(cls, value: list[str] | None) -> list[str] | None:

        return [Legality(v).value for v in value] if value is not None else None

    @field_validator("category", "claimed_category")
    @classmethod
    def _category(cls, value: list[str] | None) -> list[str] | None:

        return [Category(v).value for v in value] if value is not None else None


def _default_four_eyes() -> list[FourEyesRule]:
    return [
        FourEyesRule(name="not_illegal_on_claimed_csam", legality=["not_illegal"],
                     claimed_category=["csam", "self_generated_csam"]),
        FourEyesRule(name="national_law", legality=["illegal_national"]),
    ]


class AssessmentSection(Section):
    lease_seconds: int = Field(
        1800, ge=30, description="A claimed case returns to the queue after this long."
    )
    lease_check_interval_seconds: float = Field(
        30, gt=0, description="How often the scheduler returns expired claims to the queue."
    )
    claim_waits_for_disk: bool = Field(
        False, description="PostgreSQL: a claim's commit waits for the disk (true) or not "
        "(false: a database crash may forget the last claims; they are back in the queue).",
    )
    priority_rules: str = Field(
        "rules/priority.yaml", description="YAML file of the queue's priority rules."
    )
    four_eyes: list[FourEyesRule] = Field(
        default_factory=_default_four_eyes,
        description="Decisions that need a second analyst (first matching rule wins).",
    )
    reporter_contact_roles: list[Literal["analyst", "supervisor", "admin", "auditor"]] = Field(
        default_factory=lambda: ["admin", "supervisor"],  # type: ignore[arg-type]
        description="Roles that may see a reporter's contact in the case view.",
    )
    same_site_max_cases: int = Field(
        100, ge=1, le=500, description="Most cases one same-site claim takes."
    )
    related_cases_limit: int = Field(
        20, ge=0, le=500, description="Most earlier cases of the same URL or site shown."
    )
    queue_page_size: int = Field(50, ge=1, le=1000, description="Cases per queue page.")
    welfare_categories: list[str] = Field(
        default_factory=lambda: ["csam", "self_generated_csam", "child_erotica"],
        description="Categories counted against the daily welfare limit.",
    )
    welfare_csam_soft_limit: int = Field(
        150, ge=1, description="Daily count of such assessments after which a break is prompted."
    )
    welfare_minutes_soft_limit: int = Field(
        300, ge=1, description="Daily minutes in the queue after which a break is prompted."
    )
    welfare_timezone: str = Field("UTC", description="Time zone in which a day is counted.")

    @field_validator("welfare_categories")
    @classmethod
    def _welfare_categories(cls, value: list[str]) -> list[str]:

        return [Category(v).value for v in value]

    @field_validator("welfare_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:

        try:
            ZoneInfo(value)
        except Exception:
            raise ValueError("not a known IANA time zone (e.g. Europe/Belgrade)") from None
        return value


class WorktimeSection(Section):
    timezone: str = Field(
        "Europe/Belgrade", description="IANA time zone of the hotline's working hours."
    )
    mon: str = Field("09:00-17:00", description="Working hours on Mondays ('off': none).")
    tue: str = Field("09:00-17:00", description="Working hours on Tuesdays.")
    wed: str = Field("09:00-17:00", description="Working hours on Wednesdays.")
    thu: str = Field("09:00-17:00", description="Working hours on Thursdays.")
    fri: str = Field("09:00-17:00", description="Working hours on Fridays.")
    sat: str = Field("off", description="Working hours on Saturdays.")
    sun: str = Field("off", description="Working hours on Sundays.")
    holidays: list[date] = Field(
        default_factory=list, description="Public holidays (local dates) with no working time."
    )

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:

        try:
            ZoneInfo(value)
        except Exception:
            raise ValueError("must be an IANA time zone such as Europe/Belgrade") from None
        return value

    @field_validator("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    @classmethod
    def _window(cls, value: str) -> str:

        parse_window(value)
        return value


class MonitoringSection(Section):
    enabled: bool = Field(True, description="Check notified cases on a schedule.")
    interval_seconds: float = Field(
        60, gt=0, description="How often the scheduler looks for checks that are due."
    )
    recheck_minutes: float = Field(
        60, gt=0, description="While the content is still there, check again after this."
    )
    misses_to_remove: int = Field(
        3, ge=1, le=100, description="Consecutive misses before a case counts as removed."
    )
    inconclusive_to_analyst: int = Field(
        3, ge=1, le=100, description="Consecutive inconclusive checks (the host answers "
        "with non-global addresses only) before the case goes to an analyst."
    )
    miss_spacing_minutes: float = Field(
        3, gt=0, description="Time between the checks that confirm a miss."
    )
    timeout_seconds: float = Field(10, gt=0, le=120, description="DNS and HTTP timeout.")
    max_redirects: int = Field(5, ge=0, le=20, description="Redirects followed per check.")
    miss_statuses: list[int] = Field(
        default_factory=lambda: [404, 410, 451],
        description="HTTP statuses that mean the content is gone.",
    )
    max_header_bytes: int = Field(
        65_536, ge=1_024, description="Most bytes of status line and headers read."
    )
    user_agent: str = Field("hotline-takedown-check/1", description="User-Agent sent.")
    resolver: str | None = Field(
        None, description="address:port of the DNS resolver; none = the system's."
    )
    allow_loopback: bool = Field(
        False, description="Allow checks to loopback addresses. Tests only; keep false."
    )
    batch_size: int = Field(200, ge=1, description="Most cases checked per scheduler run.")


class EscalationSection(Section):
    enabled: bool = Field(True, description="Send reminders and escalations on a schedule.")
    rules_file: str = Field(
        "rules/escalation.yaml", description="The reminder and escalation ladder rules."
    )
    interval_seconds: float = Field(
        300, gt=0, description="How often the scheduler looks for reminders that are due."
    )


class StatsSection(Section):
    suppress_below: int = Field(
        0, ge=0, description="Counts from 1 to this minus one are withheld (0: never)."
    )
    illegal_legalities: list[str] = Field(
        default_factory=lambda: ["illegal_international", "illegal_national"],
        description="Legality values that count as illegal content.",
    )
    work_mem: str = Field(
        "32MB", description="PostgreSQL work_mem for the export (its hash aggregates)."
    )
    parallel: bool = Field(
        True, description="PostgreSQL: three more connections (same snapshot) read the "
        "notice times, the counts and the removal groups while the first reads the cases."
    )


class PublicTexts(Section):
    """What one deployment tells the public, in one language (no HTML: plain text,
    paragraphs separated by blank lines)."""

    hotline_name: str = Field("", max_length=200, description="The hotline's name.")
    helpline_number: str = Field(
        "", max_length=80, description="Telephone number of the helpline, shown on every page."
    )
    privacy_notice: str = Field(
        "", max_length=5000, description="What is kept, by whom, for how long (beside the "
        "retention times the form states itself)."
    )
    remit: str = Field("", max_length=5000, description="What the hotline handles.")
    not_handled: str = Field(
        "", max_length=5000, description="What it does not handle, and where that goes."
    )
    elsewhere: str = Field(
        "", max_length=5000, description="Where else to turn: police, helpline, emergencies."
    )
    helpline_intro: str = Field(
        "", max_length=5000, description="Above the form asking for advice or help: who "
        "answers, and when."
    )
    helpline_answer: str = Field(
        "", max_length=5000, description="On the page acknowledging a request for advice or "
        "help: what happens next."
    )


class PublicSection(Section):
    """The public reporting form at /report."""

    enabled: bool = Field(True, description="Serve the form at /report.")
    languages: list[str] = Field(
        default_factory=lambda: ["sr-Latn", "en"], min_length=1,
        description="Languages offered, the default first: sr-Latn, en, sr-Cyrl.",
    )
    categories: list[str] = Field(
        default_factory=lambda: ["csam", "self_generated_csam", "grooming", "sextortion",
                                 "hate_speech", "racism_xenophobia", "terrorist_content",
                                 "other"],
        min_length=1, description="Content categories the form offers, in order.",
    )
    max_urls: int = Field(10, ge=1, le=100, description="Most addresses in one form.")
    max_body_bytes: int = Field(
        65_536, ge=4_096, le=1_048_576, description="Largest form body (413 above)."
    )
    address_limit: int = Field(
        10, ge=1, description="Submissions one client address may make per address window."
    )
    address_window_seconds: int = Field(3600, ge=1, description="The per-address window.")
    global_limit: int = Field(
        120, ge=1, description="Submissions from everyone together per global window."
    )
    global_window_seconds: int = Field(60, ge=1, description="The global window.")
    helpline_requests: bool = Field(
        True, description="Offer a second form for asking the helpline for advice or help: "
        "it records a helpline contact (channel contact form), not a URL report."
    )
    texts: dict[str, PublicTexts] = Field(
        default_factory=dict, description="Deployment texts per language tag."
    )

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: list[str]) -> list[str]:
        known = ("sr-Latn", "en", "sr-Cyrl")
        unknown = [v for v in value if v not in known]
        if unknown:
            raise ValueError(f"unknown languages {unknown}; offer some of {list(known)}")
        return list(dict.fromkeys(value))

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in {c.value for c in Category}]
        if unknown:
            raise ValueError(f"unknown categories {unknown}")
        return value


class MailSection(Section):
    """The hotline's mailbox: LMTP delivery and/or an IMAP poller."""

    lmtp_enabled: bool = Field(
        False, description="Listen for LMTP deliveries (also started by `hotline run`)."
    )
    lmtp_host: str = Field("127.0.0.1", description="Address the LMTP listener binds.")
    lmtp_port: int = Field(8024, ge=1, le=65535, description="Port the LMTP listener binds.")
    max_message_bytes: int = Field(
        26_214_400, ge=65_536, description="Largest message taken (larger: kept as a header-"
        "only entry in the look-at queue, never parsed)."
    )
    max_urls_per_message: int = Field(
        100, ge=1, le=1000, description="Most URLs one message makes reports of."
    )
    imap_host: str | None = Field(None, description="IMAPS server to poll (none: no poller).")
    imap_port: int = Field(993, ge=1, le=65535, description="IMAPS port.")
    imap_user: str | None = Field(None, description="IMAP login name.")
    imap_password_env: str = Field(
        "HOTLINE_MAIL_IMAP_PASSWORD",
        description="Name of the environment variable holding the IMAP password.",
    )
    imap_folder: str = Field("INBOX", description="Folder read.")
    imap_done_folder: str = Field("hotline-done", description="Folder read mail moves to.")
    imap_ca_file: str | None = Field(
        None, description="CA certificate(s) to trust for the IMAP server (none: system)."
    )
    imap_interval_seconds: float = Field(60, gt=0, description="Poll interval of the poller.")
    imap_timeout_seconds: float = Field(30, gt=0, description="IMAP connect/command timeout.")
    acknowledge: bool = Field(True, description="Answer senders with their references.")
    ack_language: str = Field(
        "auto", description="Language of answers: auto (from the message), sr-Latn, en."
    )


class HelplineSection(Section):
    """The helpline side: contacts, helpline cases, referrals to institutions."""

    rules_file: str = Field(
        "rules/helpline.yaml", description="Helpline rules (e.g. paging the police at once "
        "when a child is in danger now)."
    )
    personal_data_days: int | None = Field(
        365, ge=0, description="Days after a helpline case ended (advisory or closed), or "
        "after a contact without a case, that callers' and children's data are kept "
        "(none = for ever). A legal hold stops the purge."
    )
    reply_reminder_working_hours: float = Field(
        40, gt=0, description="Working hours without a reply from an institution before "
        "a reminder is sent (and again after each reminder)."
    )
    max_reminders: int = Field(3, ge=0, le=20, description="Most reminders per referral.")
    max_summary_chars: int = Field(
        2000, ge=100, description="Longest summary or note a counsellor may record."
    )
    max_urls_per_case: int = Field(50, ge=1, description="Most URLs added to a case at once.")
    welfare_topics: list[str] = Field(
        default_factory=lambda: ["sextortion", "grooming", "csam", "self_harm"],
        description="Contact topics counted as calls about abuse for counsellors' welfare.",
    )
    welfare_abuse_soft_limit: int = Field(
        15, ge=1, description="Daily calls about abuse after which a break is prompted."
    )


class Settings(BaseSettings):
    """The whole configuration. Sections are added by the parts of the pipeline."""

    model_config = SettingsConfigDict(
        env_prefix="HOTLINE_", env_nested_delimiter="__", extra="forbid"
    )

    app: AppSection = AppSection()
    database: DatabaseSection = DatabaseSection()
    broker: BrokerSection = BrokerSection()
    redis: RedisSection = RedisSection()
    worker: WorkerSection = WorkerSection()
    web: WebSection = WebSection()
    intake: IntakeSection = IntakeSection()
    urls: UrlsSection = UrlsSection()
    reconciler: ReconcilerSection = ReconcilerSection()
    scheduler: SchedulerSection = SchedulerSection()
    recovery: RecoverySection = RecoverySection()
    logging: LoggingSection = LoggingSection()
    assessment: AssessmentSection = AssessmentSection()
    trace: TraceSection = TraceSection()
    routing: RoutingSection = RoutingSection()
    dispatch: DispatchSection = DispatchSection()
    retention: RetentionSection = RetentionSection()
    privacy: PrivacySection = PrivacySection()
    metrics: MetricsSection = MetricsSection()
    console: ConsoleSection = ConsoleSection()
    worktime: WorktimeSection = WorktimeSection()
    monitoring: MonitoringSection = MonitoringSection()
    escalation: EscalationSection = EscalationSection()
    stats: StatsSection = StatsSection()
    public: PublicSection = PublicSection()
    mail: MailSection = MailSection()
    helpline: HelplineSection = HelplineSection()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        merged, _ = read_config_files()
        return (init_settings, env_settings, InitSettingsSource(settings_cls, merged))

    @property
    def redis_url(self) -> str | None:
        """The Redis the project's own keys live in, if any."""
        if self.redis.url:
            return self.redis.url
        return self.broker.url if self.broker.is_redis else None

    @model_validator(mode="after")
    def _production_needs_an_encryption_key(self) -> Settings:
        # Reporter contacts are encrypted at rest; refuse to start without a key.
        privacy = self.privacy
        if self.app.mode == "production" and privacy.encryption_key is None and not (
                privacy.encryption_key_file):
            raise ValueError(
                "privacy.encryption_key: production mode needs a key to encrypt reporter "
                "contacts (HOTLINE_PRIVACY__ENCRYPTION_KEY or privacy.encryption_key_file)")
        return self

    @property
    def data_path(self) -> Path:
        return Path(self.app.data_dir)


def provenance(settings: Settings) -> dict[str, str]:
    """Where each leaf value of `settings` came from: "default", a file's path, or
    "environment (HOTLINE_...)"."""
    merged, files = read_config_files()
    env = {k.upper(): k for k in os.environ if k.upper().startswith("HOTLINE_")}
    out: dict[str, str] = {}
    for leaf in leaves(settings.model_dump(mode="json"), ""):
        section = leaf.split(".", 1)[0]
        names = [f"HOTLINE_{leaf.upper().replace('.', '__')}", f"HOTLINE_{section.upper()}"]
        found = next((env[n] for n in names if n in env), None)
        if found is not None:
            out[leaf] = f"environment ({found})"
        else:
            parts = leaf.split(".")
            out[leaf] = next((files[".".join(parts[:i])] for i in range(len(parts), 0, -1)
                              if ".".join(parts[:i]) in files), "default")
            if out[leaf] != "default" and _lookup(merged, parts) is None:
                out[leaf] = "default"  # left empty in the file
        if leaf == "web.public_url" and out[leaf] == "default":
            out[leaf] = "default (from web.host and web.port)"
    return out


def _lookup(data: Any, parts: list[str]) -> Any:
    for part in parts:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _describe(error: Any) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    value = error.get("input")
    shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r})"
    return f"{key}: {message}{shown}"


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the configuration, raising `ConfigError` naming each bad key."""
    path = os.environ.get("HOTLINE_CONFIG")
    if path and not Path(path).is_file():
        raise ConfigError([f"HOTLINE_CONFIG: no such file {path!r}"])
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError([_describe(e) for e in exc.errors()]) from None
    except Exception as exc:  # malformed YAML, unparsable environment JSON
        raise ConfigError([f"configuration: {exc}".replace("\n", " ")]) from None
