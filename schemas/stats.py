"""The statistics export (`hotline stats export`, GET /api/v1/stats).

Aggregates only: no URL, no reporter, no case reference ever appears here. Each figure
counts the events whose own time falls in the period (reports by their received
time, assessments by their assessed time, notices by their sent time, durations by the
time their stage ended). Counts withheld under the suppression threshold are null, and
so are the durations of a group so small.

The JSON Schema of this shape is published as `schemas/stats.schema.json`
(`hotline stats schema` prints it).
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Count(_Model):
    key: str = Field(..., description="The group: a channel, category, country, kind...")
    count: int | None = Field(..., description="How many; null when withheld (small).")


class Durations(_Model):
    median_hours: float | None = Field(..., description="Median, in hours.")
    p90_hours: float | None = Field(..., description="90th percentile (linear "
                                    "interpolation, as PostgreSQL's percentile_cont), hours.")
    share_within_1_day: float | None = Field(..., description="Share (0-1) done within 1 "
                                             "day (working time: 1 average working day).")
    share_within_3_days: float | None = Field(..., description="Share done within 3 days.")
    share_within_7_days: float | None = Field(..., description="Share done within 7 days.")


class Timing(_Model):
    key: str = Field("", description="The group (empty for the overall figure).")
    count: int | None = Field(..., description="How many durations; null when withheld.")
    calendar: Durations = Field(..., description="In calendar time.")
    working: Durations = Field(..., description="In working time (worktime section).")


class ReportFigures(_Model):
    total: int | None = Field(..., description="Reports received in the period.")
    by_channel: list[Count] = Field(..., description="Reports by intake channel.")
    by_claimed_category: list[Count] = Field(
        ..., description="Reports by the category the reporter claimed ('none': not given).")
    unique_urls: int | None = Field(..., description="Distinct URLs (after normalisation) "
                                    "among the reports of the period.")
    duplicates: int | None = Field(..., description="Reports that joined a case already "
                                   "open for the same URL.")
    re_uploads: int | None = Field(..., description="Cases opened in the period for a URL "
                                   "whose earlier case had ended (content back online).")


class AssessmentFigures(_Model):
    total: int | None = Field(..., description="Cases assessed in the period.")
    by_legality: list[Count] = Field(..., description="Assessed cases by legality.")
    by_category: list[Count] = Field(..., description="Assessed cases by content category "
                                     "('none': no category).")


class NoticeFigures(_Model):
    total: int | None = Field(..., description="Notices sent in the period.")
    by_destination_kind: list[Count] = Field(
        ..., description="Sent notices by destination kind (police, provider, hotline...).")
    by_kind: list[Count] = Field(..., description="Sent notices by kind (notice, reminder, "
                                 "escalation).")


class RemovalFigures(_Model):
    overall: Timing = Field(..., description="Time from report received to content removed, "
                            "for content removed in the period.")
    by_hosting_country: list[Timing] = Field(..., description="By hosting country.")
    by_provider: list[Timing] = Field(..., description="By hosting provider (network owner).")
    by_partner_hotline: list[Timing] = Field(
        ..., description="By the partner hotline notified (cases sent abroad).")
    gone_before_notice: int | None = Field(
        None, description="Cases closed in the period because their content was "
        "unreachable before the first notice (the trace found no reachable host and no "
        "check ever saw it): shown apart, never counted in the removal times above.")


class StageTiming(_Model):
    stage: str = Field(..., description="Name of the stage.")
    start: str = Field(..., description="The stage time it starts at.")
    end: str = Field(..., description="The stage time it ends at (in the period).")
    timing: Timing = Field(..., description="Its durations.")


class Period(_Model):
    start: date = Field(..., description="First day (UTC), included.")
    end: date = Field(..., description="Last day (UTC), included.")


class HelplineFigures(_Model):
    """The helpline side: communications, helpline cases and their outcomes.
    Counts only: no caller, no child, no account, no case reference."""

    communications: int | None = Field(..., description="Contacts received in the period.")
    communications_by_channel: list[Count] = Field(
        ..., description="Contacts by channel (phone, email, contact_form, chat, "
        "social_media, in_person).")
    communications_by_caller: list[Count] = Field(
        ..., description="Contacts by who got in touch (child, parent, teacher, other).")
    cases: int | None = Field(..., description="Helpline cases formed in the period.")
    cases_by_type: list[Count] = Field(
        ..., description="Cases formed in the period by type (sextortion, grooming, ...).")
    by_outcome: list[Count] = Field(
        ..., description="Cases closed as advisory (by their advisory time) and cases "
        "referred (by their first referral's time) in the period.")
    referred_by_institution: list[Count] = Field(
        ..., description="Referrals made in the period, by institution (its key in the "
        "directory).")


class StatsExport(_Model):
    schema_version: str = Field(SCHEMA_VERSION, description="Version of this shape.")
    hotline: str = Field(..., description="Name of the hotline.")
    country: str = Field(..., description="The hotline's country.")
    period: Period = Field(..., description="The period the figures cover.")
    generated_at: datetime = Field(..., description="When the export was made (UTC).")
    suppressed_below: int = Field(..., description="Counts from 1 to this minus one are "
                                  "withheld (0: nothing withheld).")
    working_day_hours: float = Field(..., description="Length of one average working day, "
                                     "the unit of the working-time shares.")
    reports: ReportFigures
    assessments: AssessmentFigures
    illegal_by_hosting_country: list[Count] = Field(
        ..., description="Cases assessed illegal in the period, by hosting country "
        "('unknown': not traced).")
    notices: NoticeFigures
    removal: RemovalFigures
    stages: list[StageTiming] = Field(..., description="Durations of each stage.")
    helpline: HelplineFigures = Field(..., description="The helpline's communications "
                                      "and cases.")


class IccamRow(_Model):
    """One case in the per-URL exchange export (admins only: it carries URLs)."""

    reference: str = Field(..., description="The case reference.")
    url: str = Field(..., description="The canonical URL.")
    received_at: datetime = Field(..., description="When the first report came in.")
    assessed_at: datetime | None = Field(..., description="When it was assessed.")
    legality: str | None = Field(..., description="The assessment's legality.")
    category: str | None = Field(..., description="The content category.")
    hosting_country: str | None = Field(..., description="Hosting country.")
    hosting_asn: int | None = Field(..., description="Hosting network (AS number).")
    hosting_org: str | None = Field(..., description="Hosting network owner.")
    state: str = Field(..., description="The case's state.")
    removed_at: datetime | None = Field(..., description="When the content was removed.")
