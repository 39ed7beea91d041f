"""What crosses the intake boundary: reports coming in, references going out."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.guards import InputModel


class Channel(StrEnum):
    WEB = "web"
    EMAIL = "email"
    PHONE = "phone"
    PARTNER = "partner"
    IMPORT = "import"
    API = "api"
    APP = "app"
    SOCIAL = "social"
    OTHER = "other"


class Category(StrEnum):
    """Content categories (claimed by reporters, decided by analysts)."""

    CSAM = "csam"
    SELF_GENERATED_CSAM = "self_generated_csam"
    CHILD_EROTICA = "child_erotica"
    GROOMING = "grooming"
    SEXTORTION = "sextortion"
    HATE_SPEECH = "hate_speech"
    RACISM_XENOPHOBIA = "racism_xenophobia"
    TERRORIST_CONTENT = "terrorist_content"
    PHISHING = "phishing"
    OTHER = "other"


class FoundOn(StrEnum):
    """Where the reporter came across the content."""

    WEBSITE = "website"
    SOCIAL_NETWORK = "social_network"
    MESSAGING = "messaging"  # chat or messaging app
    GAME = "game"  # online game or gaming platform
    EMAIL = "email"
    FILE_SHARING = "file_sharing"  # file sharing, cloud storage, peer to peer
    FORUM = "forum"
    OTHER = "other"


class ReportIn(InputModel):
    """One reported URL."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: str = Field(..., min_length=1, description="The reported URL, as the reporter gave it.")
    channel: Channel = Field(Channel.WEB, description="How the report reached the hotline.")
    claimed_category: Category | None = Field(
        None, description="What the reporter says the content is."
    )
    description: str | None = Field(None, description="The reporter's own words.")
    reporter_contact: str | None = Field(
        None, description="How to reach the reporter, if they chose to say. Never forwarded."
    )
    received_at: datetime | None = Field(
        None, description="When the hotline received it (default: now). ISO 8601 with zone."
    )
    language: str | None = Field(
        None, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
        description="Language of the report as a BCP 47 tag (e.g. sr, sr-Latn, en).",
    )
    urgent: bool = Field(
        False, description="The reporter says a child is in immediate danger."
    )
    found_on: FoundOn | None = Field(
        None, description="Where the reporter came across it: website, social_network, "
        "messaging, game, email, file_sharing, forum, other."
    )

    @field_validator("received_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a time zone (e.g. 2026-01-05T09:00:00Z)")
        return value


class ReportBatchIn(InputModel):
    """Several reports in one request (a submission with several URLs)."""

    model_config = ConfigDict(extra="forbid")

    reports: list[ReportIn] = Field(..., min_length=1, description="The reports, in order.")


class ReportAccepted(BaseModel):
    reference: str = Field(..., description="Tracking reference of this report.")
    url: str = Field(..., description="The URL as received.")
    status_url: str = Field(..., description="Where the reporter can see the report's status.")


class IntakeResponse(BaseModel):
    submission: str = Field(..., description="Reference shared by the reports of one request.")
    reports: list[ReportAccepted] = Field(..., description="One entry per report, in order.")


class PublicStatus(StrEnum):
    """The status of a report as its reporter sees it (`pipeline.stages.intake.public_status`)."""

    RECEIVED = "received"  # stored, not yet processed
    IN_PROGRESS = "in_progress"  # being processed or waiting for an analyst
    REJECTED = "rejected"  # the address could not be processed
    ACTION_TAKEN = "action_taken"  # assessed and passed on for action
    CONTENT_REMOVED = "content_removed"  # the content is gone
    CLOSED = "closed"  # assessed; nothing to act on (not illegal, out of remit, gone)


class ReportStatus(BaseModel):
    """What a reporter may know about their report: no internal detail."""

    reference: str = Field(..., description="The report's tracking reference.")
    received_at: datetime = Field(..., description="When the hotline received it.")
    status: PublicStatus = Field(..., description="received, in_progress, rejected, "
                                 "action_taken, content_removed, or closed.")
    explanation: str = Field(..., description="The status in plain words.")
