"""What crosses the assessment boundary: the queue, claims, the case view, decisions.

The analyst's decision (`AssessmentIn`) follows the ICCAM classification: legality,
category, and for child sexual abuse material the age group, gender, site type,
content type and whether the site is commercial. `missing_details` names every field
a decision still lacks, so an analyst is told everything at once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.guards import InputModel
from schemas.intake import Category


class Legality(StrEnum):
    """The analyst's legal judgement of the content."""

    ILLEGAL_INTERNATIONAL = "illegal_international"  # the INHOPE/ICCAM international baseline
    ILLEGAL_NATIONAL = "illegal_national"  # illegal under the hotline's national law only
    NOT_ILLEGAL = "not_illegal"
    CONTENT_NOT_AVAILABLE = "content_not_available"  # gone or unreachable: could not assess
    OUT_OF_REMIT = "out_of_remit"  # not the kind of content this hotline handles


class AgeGroup(StrEnum):
    INFANT = "infant"
    PRE_PUBESCENT = "pre_pubescent"
    PUBESCENT = "pubescent"
    NOT_DETERMINED = "not_determined"


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    BOTH = "both"
    NOT_DETERMINED = "not_determined"


class SiteType(StrEnum):
    """ICCAM-style site types."""

    WEBSITE = "website"
    IMAGE_HOST = "image_host"
    FILE_HOST = "file_host"
    VIDEO_CHANNEL = "video_channel"
    FORUM = "forum"
    IMAGE_BOARD = "image_board"
    BLOG = "blog"
    SOCIAL_NETWORK = "social_network"
    CHAT = "chat"
    WEB_ARCHIVE = "web_archive"
    SEARCH_ENGINE = "search_engine"
    REDIRECTOR = "redirector"
    OTHER = "other"


class ContentType(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    IMAGE_AND_VIDEO = "image_and_video"
    TEXT = "text"
    AUDIO = "audio"
    OTHER = "other"


# Categories for which the ICCAM details are required.
CSAM_CATEGORIES = frozenset({Category.CSAM, Category.SELF_GENERATED_CSAM})
# Legalities that need a category (what is illegal must say what it is).
NEEDS_CATEGORY = frozenset({Legality.ILLEGAL_INTERNATIONAL, Legality.ILLEGAL_NATIONAL})
# Legalities after which the case closes without routing.
CLOSING_LEGALITIES = frozenset(
    {Legality.NOT_ILLEGAL, Legality.OUT_OF_REMIT, Legality.CONTENT_NOT_AVAILABLE}
)
ICCAM_DETAILS = ("age_group", "gender", "site_type", "content_type", "commercial")


class AssessmentIn(InputModel):
    """An analyst's decision on one case (or, in same-site work, on several)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    legality: Legality = Field(..., description="The legal judgement of the content.")
    category: Category | None = Field(
        None, description="What the content is. Required when it is illegal."
    )
    age_group: AgeGroup | None = Field(
        None, description="Apparent age of the youngest child shown. Required for CSAM."
    )
    gender: Gender | None = Field(
        None, description="Gender of the children shown. Required for CSAM."
    )
    site_type: SiteType | None = Field(
        None, description="What kind of site hosts the content. Required for CSAM."
    )
    content_type: ContentType | None = Field(
        None, description="Images, videos, text... Required for CSAM."
    )
    commercial: bool | None = Field(
        None, description="The site sells access or content. Required for CSAM."
    )
    notes: str | None = Field(
        None, max_length=10_000,
        description="The analyst's notes (internal; never sent to a destination).",
    )

    @model_validator(mode="after")
    def _complete(self) -> AssessmentIn:
        problems = missing_details(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def missing_details(item: AssessmentIn) -> list[str]:
    """Every field the decision still lacks, each with the reason it is needed."""
    problems: list[str] = []
    if item.legality in NEEDS_CATEGORY and item.category is None:
        problems.append(f"category: required when legality is {item.legality.value}")
    if item.legality == Legality.ILLEGAL_INTERNATIONAL and item.category is not None and (
        item.category not in CSAM_CATEGORIES
    ):
        problems.append(
            "legality: the international baseline applies only to CSAM categories "
            f"({', '.join(sorted(c.value for c in CSAM_CATEGORIES))}); "
            f"use illegal_national for {item.category.value}"
        )
    if item.category in CSAM_CATEGORIES and item.legality in NEEDS_CATEGORY:
        for name in ICCAM_DETAILS:
            if getattr(item, name) is None:
                problems.append(f"{name}: required when category is {item.category}")
    return problems


class Welfare(BaseModel):
    """How much distressing material an analyst has seen today."""

    user: str = Field(..., description="The analyst's user name.")
    day: str = Field(..., description="The day counted (ISO date in the configured zone).")
    csam_assessments: int = Field(..., description="Assessments of CSAM categories today.")
    assessments: int = Field(..., description="All assessments today.")
    minutes_in_queue: float = Field(
        ..., description="Minutes between claiming and deciding, summed over today."
    )
    csam_soft_limit: int = Field(..., description="The configured daily soft limit of CSAM "
                                 "assessments.")
    minutes_soft_limit: int = Field(..., description="The configured daily soft limit of "
                                    "minutes in the queue.")
    take_a_break: bool = Field(
        ..., description="True once either soft limit is reached: the console prompts a break."
    )


class QueueItem(BaseModel):
    """One case waiting in the queue (no reporter data)."""

    id: int = Field(..., description="The case id.")
    ref: str = Field(..., description="The case reference.")
    state: str = Field(..., description="awaiting_assessment, awaiting_second_assessment or "
                       "awaiting_supervisor.")
    canonical_url: str = Field(..., description="The canonical form of the reported URL.")
    host: str | None = Field(None, description="Host name of the URL.")
    registered_domain: str | None = Field(None, description="Registered domain of the host.")
    claimed_category: str | None = Field(None, description="What the reporter claimed.")
    urgent: bool = Field(..., description="A reporter flagged a child in immediate danger.")
    priority: int = Field(..., description="Higher first; set by rules/priority.yaml.")
    received_at: datetime = Field(..., description="When the first report arrived.")
    report_count: int = Field(..., description="Reports joined to the case.")
    hosting_country: str | None = Field(None, description="Country of the hosting, if traced.")
    held_by: str | None = Field(None, description="Who holds a lease on it, if anyone.")


class QueueOut(BaseModel):
    waiting: int = Field(..., description="Cases awaiting a first assessment.")
    awaiting_second: int = Field(..., description="Cases awaiting a second assessment.")
    awaiting_supervisor: int = Field(..., description="Cases the two analysts disagreed on.")
    items: list[QueueItem] = Field(..., description="The cases, priority first, then oldest.")


class ClaimIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(
        "any", pattern="^(any|first|second)$",
        description="first: a new case; second: a four-eyes second assessment; any: a "
        "second assessment if one is waiting for the caller, else a new case.",
    )


class LeaseOut(BaseModel):
    case_id: int = Field(..., description="The case id.")
    case_ref: str = Field(..., description="The case reference.")
    kind: str = Field(..., description="first or second assessment.")
    holder: str = Field(..., description="The user holding the lease.")
    claimed_at: datetime = Field(..., description="When it was claimed.")
    expires_at: datetime = Field(..., description="When the case returns to the queue.")


class ClaimOut(BaseModel):
    lease: LeaseOut | None = Field(None, description="The claimed case; null: queue empty.")
    message: str = Field(..., description="What happened, in plain words.")
    welfare: Welfare | None = Field(None, description="The caller's counts today.")


class SiteClaimIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    host: str | None = Field(None, description="Claim the open cases of this host.")
    registered_domain: str | None = Field(
        None, description="Claim the open cases of this registered domain."
    )
    case: str | None = Field(
        None, description="Claim the open cases of the site of this case (id or reference); "
        "with `by` choosing host or registered_domain.",
    )
    by: str = Field("registered_domain", pattern="^(host|registered_domain)$",
                    description="With `case`: group by host or by registered domain.")

    @model_validator(mode="after")
    def _one(self) -> SiteClaimIn:
        given = [n for n in ("host", "registered_domain", "case") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("give exactly one of host, registered_domain or case")
        return self


class SiteClaimOut(BaseModel):
    site: str = Field(..., description="The host or registered domain claimed.")
    leases: list[LeaseOut] = Field(..., description="One lease per case claimed.")
    skipped: int = Field(..., description="Open cases of the site held by someone else.")


class BatchAssessmentIn(InputModel):
    """One decision applied to several cases the caller holds (same-site work)."""

    model_config = ConfigDict(extra="forbid")

    cases: list[str] = Field(..., min_length=1, max_length=500,
                             description="Case ids or references, each held by the caller.")
    assessment: AssessmentIn = Field(..., description="The decision applied to each.")


class AssessmentOut(BaseModel):
    id: int = Field(..., description="The assessment id.")
    case_id: int = Field(..., description="The case assessed.")
    analyst: str = Field(..., description="Who decided.")
    kind: str = Field(..., description="first, second or supervisor.")
    legality: str = Field(..., description="The legal judgement.")
    category: str | None = Field(None, description="The content category.")
    age_group: str | None = Field(None, description="ICCAM age group.")
    gender: str | None = Field(None, description="ICCAM gender.")
    site_type: str | None = Field(None, description="ICCAM site type.")
    content_type: str | None = Field(None, description="ICCAM content type.")
    commercial: bool | None = Field(None, description="Commercial site.")
    notes: str | None = Field(None, description="The analyst's notes.")
    final: bool = Field(..., description="This assessment decided the case.")
    four_eyes_rule: str | None = Field(
        None, description="The four-eyes rule that asked for a second analyst, if any."
    )
    created_at: datetime = Field(..., description="When it was made.")


class DecisionOut(BaseModel):
    case_id: int = Field(..., description="The case.")
    case_ref: str = Field(..., description="The case reference.")
    state: str = Field(..., description="The case's state after the decision.")
    outcome: str = Field(..., description="finalised, closed, needs_second_assessment or "
                         "disputed.")
    assessment: AssessmentOut = Field(..., description="The assessment recorded.")


class DecisionsOut(BaseModel):
    decisions: list[DecisionOut] = Field(..., description="One per case, in order.")
    welfare: Welfare | None = Field(None, description="The caller's counts today.")


class ReportView(BaseModel):
    ref: str = Field(..., description="The report's reference.")
    url: str = Field(..., description="The URL as submitted.")
    channel: str = Field(..., description="How it came in.")
    source: str | None = Field(None, description="Partner hotline or API client, if any.")
    claimed_category: str | None = Field(None, description="What the reporter claimed.")
    description: str | None = Field(None, description="The reporter's words.")
    language: str | None = Field(None, description="Language of the report.")
    urgent: bool = Field(..., description="Flagged as a child in immediate danger.")
    received_at: datetime = Field(..., description="When it arrived.")
    reporter_contact: str | None = Field(
        None, description="Only for roles allowed to see it (assessment.reporter_contact_roles)."
    )
    reporter_contact_given: bool = Field(
        ..., description="Whether the reporter left a contact (shown to every role)."
    )


class TraceView(BaseModel):
    """The latest trace: its evidence when a trace was recorded, else the case's summary."""

    trace_id: int | None = Field(None, description="The trace row, if one was recorded.")
    outcome: str | None = Field(None, description="How tracing ended.")
    hosting_country: str | None = Field(None, description="Country of the hosting network.")
    hosting_asn: int | None = Field(None, description="Autonomous system of the hosting.")
    hosting_org: str | None = Field(None, description="Organisation owning the network.")
    hosting_abuse_email: str | None = Field(None, description="Abuse contact of the network.")
    behind_cdn: bool = Field(False, description="A CDN stands in front of the origin.")
    cdn_name: str | None = Field(None, description="Which CDN.")
    origin_unknown: bool = Field(False, description="The origin could not be found.")
    registrar: str | None = Field(None, description="Registrar of the domain.")
    registrar_abuse_email: str | None = Field(None, description="Registrar abuse contact.")
    traced_at: datetime | None = Field(None, description="When this trace was recorded.")
    reason: str | None = Field(None, description="Why the origin is unknown, if it is.")
    resolver: str | None = Field(None, description="The DNS resolver that answered.")
    country_source: str | None = Field(None, description="Where the country came from "
                                       "(rdap, provider, geoip).")
    addresses: list[dict[str, object]] = Field(
        default_factory=list, description="Per IP address: the network facts found."
    )
    cname_chain: list[object] = Field(default_factory=list, description="CNAMEs followed.")
    nameservers: list[object] = Field(default_factory=list, description="The domain's "
                                      "name servers.")


class RelatedCase(BaseModel):
    id: int = Field(..., description="The case id.")
    ref: str = Field(..., description="The case reference.")
    relation: str = Field(..., description="same_url or same_site.")
    canonical_url: str = Field(..., description="Its canonical URL.")
    state: str = Field(..., description="Its state.")
    legality: str | None = Field(None, description="Its final legality, if decided.")
    category: str | None = Field(None, description="Its final category, if decided.")
    received_at: datetime = Field(..., description="When its first report arrived.")


class HistoryEntry(BaseModel):
    at: datetime = Field(..., description="When.")
    actor: str = Field(..., description="Who.")
    action: str = Field(..., description="What.")
    from_state: str | None = Field(None, description="State before.")
    to_state: str | None = Field(None, description="State after.")
    data: dict[str, object] = Field(default_factory=dict, description="Details (no personal "
                                    "data).")


class NoticeView(BaseModel):
    """One notice of a case: where it went and when. Never its token or text."""

    id: int = Field(..., description="The notice id (`hotline notices resolve ID`).")
    destination: str = Field(..., description="Key of the destination in destinations.yaml.")
    destination_kind: str = Field(
        ..., description="police, provider, registrar, cdn or hotline (a partner hotline).")
    kind: str = Field(..., description="notice, reminder or escalation.")
    round: int = Field(..., description="1 for the first notice of a kind; more after a move.")
    channel: str = Field(..., description="smtp, webhook or file.")
    state: str = Field(..., description="planned, held, sending, handing_over, failed, sent, "
                       "dead, unconfirmed or cancelled (docs/operators/outcomes.md).")
    planned_at: datetime = Field(..., description="When routing decided to send it.")
    due_at: datetime | None = Field(None, description="Not sent before (a police hold, a "
                                    "retry's delay).")
    sent_at: datetime | None = Field(None, description="When the receiver took it.")
    confirmed_at: datetime | None = Field(
        None, description="When the receiver confirmed it (confirmation link or reply).")
    attempts: int = Field(..., description="Delivery attempts so far.")
    last_error: str | None = Field(None, description="Why the last attempt failed.")


class TakedownStage(BaseModel):
    """One INHOPE notice-and-takedown stage of a case (pipeline/store/takedown_models.py)."""

    stage: str = Field(..., description="received, assessed, police_notified, police_cleared, "
                       "provider_notified, hotline_notified, removed or closed.")
    at: datetime | None = Field(None, description="When it happened; null: not (yet).")
    after_received_seconds: float | None = Field(
        None, description="Seconds from the first report to this stage.")


class CaseView(BaseModel):
    """Everything an analyst needs to assess one case."""

    id: int = Field(..., description="The case id.")
    ref: str = Field(..., description="The case reference.")
    canonical_url: str = Field(..., description="The canonical URL.")
    host: str | None = Field(None, description="Host name.")
    registered_domain: str | None = Field(None, description="Registered domain.")
    state: str = Field(..., description="Current state.")
    priority: int = Field(..., description="Queue priority.")
    urgent: bool = Field(..., description="Flagged urgent by a reporter.")
    claimed_category: str | None = Field(None, description="What the first reporter claimed.")
    legality: str | None = Field(None, description="Final legality, once decided.")
    category: str | None = Field(None, description="Final category, once decided.")
    received_at: datetime = Field(..., description="When the first report arrived.")
    lease: LeaseOut | None = Field(None, description="Who holds it now, if anyone.")
    reports: list[ReportView] = Field(..., description="Every report joined to the case.")
    trace: TraceView = Field(..., description="The latest trace.")
    earlier_cases: list[RelatedCase] = Field(
        ..., description="Other cases of the same URL or the same site, newest first."
    )
    assessments: list[AssessmentOut] = Field(..., description="Every assessment, oldest first.")
    history: list[HistoryEntry] = Field(..., description="The case's audit events, in order.")
    notices: list[NoticeView] = Field(
        default_factory=list, description="Every notice of the case, in the order planned.")
    takedown: list[TakedownStage] = Field(
        default_factory=list, description="The takedown timeline, stage by stage in the "
        "INHOPE order (null times: not yet).")


class UserIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._@-]+$",
                      description="Login name.")
    role: str = Field(..., pattern="^(analyst|supervisor|admin|auditor)$",
                      description="analyst, supervisor, admin or auditor.")


class UserOut(BaseModel):
    name: str = Field(..., description="Login name.")
    role: str = Field(..., description="The user's role.")
    active: bool = Field(..., description="Whether the user may sign in.")
    created_at: datetime = Field(..., description="When the user was added.")
    one_time_password: str | None = Field(
        None, description="Shown once when the user is created; must be changed at first login."
    )


class TokenIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    scope: str = Field(..., pattern="^(analyst|partner|police|provider)$",
                       description="What the token may be used for.")
    label: str = Field(..., min_length=1, max_length=120,
                       description="Who it is for (the user, a partner hotline's name...).")
    user: str | None = Field(None, description="The user an analyst token acts as.")
    expires_days: int | None = Field(None, ge=1, le=3650, description="Lifetime in days.")


class TokenOut(BaseModel):
    token: str = Field(..., description="The token itself: shown once, stored only hashed.")
    prefix: str = Field(..., description="Its first characters, to tell tokens apart.")
    scope: str = Field(..., description="Its scope.")
    expires_at: datetime | None = Field(None, description="When it stops working.")
