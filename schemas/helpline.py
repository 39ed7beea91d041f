"""What crosses the helpline's boundary: contacts and helpline cases coming
in from counsellors, and the views going out to them.

The caller's and the child's data are special-category personal data: only the
fields described as such may hold them, they are encrypted at rest, and they never
appear in statistics or in notices (but a referral to an institution allowed to
receive them).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ContactChannel(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    CONTACT_FORM = "contact_form"
    CHAT = "chat"
    SOCIAL_MEDIA = "social_media"
    IN_PERSON = "in_person"


class CallerType(StrEnum):
    CHILD = "child"
    PARENT = "parent"
    TEACHER = "teacher"
    OTHER = "other"


class CaseType(StrEnum):
    SEXTORTION = "sextortion"
    GROOMING = "grooming"
    CYBERBULLYING = "cyberbullying"
    HATE_SPEECH = "hate_speech"
    CSAM = "csam"
    SELF_HARM = "self_harm"
    OTHER = "other"


class Topic(StrEnum):
    SEXTORTION = "sextortion"
    GROOMING = "grooming"
    CYBERBULLYING = "cyberbullying"
    HATE_SPEECH = "hate_speech"
    CSAM = "csam"
    SELF_HARM = "self_harm"
    OTHER = "other"
    ONLINE_SAFETY = "online_safety"
    PRIVACY = "privacy"
    INFORMATION = "information"


class AgeGroup(StrEnum):
    UNDER_10 = "under_10"
    AGE_10_13 = "10_13"
    AGE_14_15 = "14_15"
    AGE_16_17 = "16_17"
    ADULT = "adult"
    UNKNOWN = "unknown"


class Relation(StrEnum):
    """Who the caller is to the child."""

    SELF = "self"
    PARENT = "parent"
    SIBLING = "sibling"
    FRIEND = "friend"
    TEACHER = "teacher"
    STRANGER = "stranger"
    OTHER = "other"
    UNKNOWN = "unknown"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CaseIn(_In):
    """A helpline case formed from a contact."""

    case_type: CaseType = Field(..., description="What the case is about.")
    urgent: bool = Field(False, description="A child is in danger now (helpline rules may "
                         "page the police at once).")
    child_age_group: AgeGroup | None = Field(None, description="The child's age group only.")
    relation: Relation | None = Field(None, description="Who the caller is to the child.")
    accounts: str | None = Field(
        None, description="Accounts, platforms and profiles involved, one per line "
        "(special-category data: encrypted, never in statistics).")
    notes: str | None = Field(None, description="The counsellor's notes (encrypted).")
    urls: list[str] = Field(
        default_factory=list, description="URLs involved (a profile, a post, an image link): "
        "each enters the URL pipeline as a report linked to the case.")


class ContactIn(_In):
    """One communication, as the counsellor records it."""

    channel: ContactChannel = Field(ContactChannel.PHONE, description="How it came in.")
    received_at: datetime | None = Field(None, description="When (default: now).")
    duration_minutes: float | None = Field(None, ge=0, le=24 * 60,
                                           description="How long it lasted, in minutes.")
    language: str | None = Field(
        "sr", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
        description="Language of the conversation, a BCP 47 tag (sr, sr-Latn, en).")
    caller_type: CallerType = Field(..., description="Who got in touch.")
    topic: Topic = Field(..., description="What it was about.")
    anonymous: bool = Field(True, description="The caller gave no contact.")
    caller_contact: str | None = Field(
        None, max_length=320, description="How to reach the caller, only when not anonymous "
        "(special-category data: encrypted, never forwarded but to an institution allowed "
        "to receive it).")
    summary: str | None = Field(None, description="A short summary (encrypted).")
    case: CaseIn | None = Field(None, description="Form a new helpline case from this contact.")
    join_case: str | None = Field(None, max_length=32,
                                  description="Or join the existing case with this reference.")

    @model_validator(mode="after")
    def _consistent(self) -> ContactIn:
        if self.anonymous and self.caller_contact:
            raise ValueError("caller_contact: an anonymous contact has no caller contact "
                             "(set anonymous to false)")
        if self.case is not None and self.join_case:
            raise ValueError("case, join_case: form a new case or join one, not both")
        return self


class TakeUpIn(_In):
    """A counsellor takes up a contact that came in by itself (public form, mailbox) or
    was recorded without a case: who it was, what about, and a case formed or joined."""

    caller_type: CallerType = Field(..., description="Who got in touch.")
    topic: Topic = Field(..., description="What it was about.")
    case: CaseIn | None = Field(None, description="Form a new helpline case from the "
                                "contact (its URLs become reports linked to the case).")
    join_case: str | None = Field(None, max_length=32,
                                  description="Or join the existing case with this reference.")

    @model_validator(mode="after")
    def _one_case(self) -> TakeUpIn:
        if self.case is not None and self.join_case:
            raise ValueError("case, join_case: form a new case or join one, not both")
        return self


class TaskIn(_In):
    title: str = Field(..., min_length=1, max_length=200,
                       description="What to do (no personal data: the case holds it).")
    due_at: datetime = Field(..., description="By when (ISO 8601 with zone).")


class ReferIn(_In):
    destinations: list[str] = Field(
        ..., min_length=1, description="Keys of institutions in rules/destinations.yaml "
        "(helpline_referral: true).")


class ReplyIn(_In):
    destination: str = Field(..., description="The institution that replied.")
    reference: str | None = Field(None, max_length=120,
                                  description="The institution's own reference.")
    text: str | None = Field(None, description="What it said (encrypted).")

    @model_validator(mode="after")
    def _something(self) -> ReplyIn:
        if not (self.reference or self.text):
            raise ValueError("reference, text: give the institution's reference or its reply")
        return self


class UrlsIn(_In):
    urls: list[str] = Field(..., min_length=1, description="URLs involved in the case.")


class ContactOut(BaseModel):
    ref: str = Field(..., description="The contact's reference.")
    channel: str = Field(..., description="How it came in.")
    received_at: datetime = Field(..., description="When.")
    duration_seconds: int | None = Field(..., description="How long.")
    language: str | None = Field(..., description="Language.")
    caller_type: str = Field(..., description="Who got in touch.")
    topic: str = Field(..., description="What about.")
    anonymous: bool = Field(..., description="No caller contact given.")
    caller_contact: str | None = Field(..., description="How to reach the caller.")
    summary: str | None = Field(..., description="The summary.")
    counsellor: str = Field(..., description="Who recorded it.")
    source: str = Field(..., description="console, mailbox or form.")
    case_ref: str | None = Field(..., description="The helpline case it formed or joined.")


class TaskOut(BaseModel):
    id: int = Field(..., description="Task id.")
    title: str = Field(..., description="What to do.")
    due_at: datetime = Field(..., description="By when.")
    done_at: datetime | None = Field(..., description="When done.")
    overdue: bool = Field(..., description="Past due and not done.")


class ReferralOut(BaseModel):
    destination: str = Field(..., description="Institution key.")
    name: str = Field(..., description="Institution name.")
    paged: bool = Field(..., description="Paged at once by the urgency rule.")
    personal_data_included: bool = Field(..., description="The referral carried the "
                                         "caller's and child's data.")
    notice_state: str | None = Field(..., description="Delivery state of the referral.")
    referred_at: datetime = Field(..., description="When referred.")
    evidence_sha256: str | None = Field(..., description="SHA-256 of the bundle's manifest.")
    reply_reference: str | None = Field(..., description="The institution's reference.")
    reply_text: str | None = Field(..., description="Its reply.")
    replied_at: datetime | None = Field(..., description="When it replied.")
    reminders: int = Field(..., description="Reminders sent.")


class LinkedReportOut(BaseModel):
    report_ref: str = Field(..., description="The URL report's reference.")
    url: str = Field(..., description="The URL as given.")
    report_state: str = Field(..., description="The report's state.")
    case_ref: str | None = Field(..., description="The URL case it joined or opened.")
    case_state: str | None = Field(..., description="Where that URL case is "
                                   "(traced, assessed, notified, removed...).")


class HelplineCaseOut(BaseModel):
    ref: str = Field(..., description="The helpline case's reference.")
    case_type: str = Field(..., description="What it is about.")
    urgent: bool = Field(..., description="A child in danger now.")
    child_age_group: str | None = Field(..., description="The child's age group.")
    relation: str | None = Field(..., description="Who the caller is to the child.")
    accounts: str | None = Field(..., description="Accounts and platforms involved.")
    notes: str | None = Field(..., description="Notes.")
    state: str = Field(..., description="open, advisory, referred, answered, closed.")
    outcome: str | None = Field(..., description="advisory or referred.")
    counsellor: str = Field(..., description="Who formed it.")
    opened_at: datetime | None = Field(..., description="When formed.")
    rules: list[dict[str, object]] = Field(..., description="Helpline rules hit and missed.")
    contacts: list[ContactOut] = Field(..., description="Its contacts, oldest first.")
    tasks: list[TaskOut] = Field(..., description="Its tasks.")
    referrals: list[ReferralOut] = Field(..., description="Its referrals.")
    reports: list[LinkedReportOut] = Field(..., description="Its URL reports and their state.")
    legal_hold: bool = Field(..., description="A legal hold stops the retention purge.")


class RecordedOut(BaseModel):
    contact: str = Field(..., description="The contact's reference.")
    case: str | None = Field(..., description="The helpline case formed or joined.")
    paged: list[str] = Field(..., description="Institutions paged at once by a rule.")
    reports: list[str] = Field(..., description="URL reports made from the case's URLs.")


class CounsellorWelfare(BaseModel):
    """How many calls about abuse a counsellor has taken today."""

    user: str = Field(..., description="The counsellor's user name.")
    day: str = Field(..., description="The day counted (ISO date in the configured zone).")
    abuse_contacts: int = Field(..., description="Contacts about abuse today.")
    contacts: int = Field(..., description="All contacts today.")
    minutes_on_contacts: float = Field(..., description="Their recorded durations, summed.")
    abuse_soft_limit: int = Field(..., description="The configured daily soft limit.")
    take_a_break: bool = Field(..., description="True once the soft limit is reached.")
