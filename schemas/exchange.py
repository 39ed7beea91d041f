"""The hotline exchange format: how this hotline forwards a case to a partner hotline,
and what it accepts from partner hotlines (POST /api/v1/partner/reports).

A JSON document, version 1:

    {
      "format": "hotline-exchange",
      "version": 1,
      "sender": {"name": "Net Patrola", "country": "RS"},
      "sent_at": "2026-01-05T09:00:00Z",
      "reports": [
        {"reference": "C-7Q2M...", "url": "https://example.de/a",
         "received_at": "2026-01-05T08:00:00Z", "category": "csam",
         "legality": "illegal_international",
         "hosting": {"country": "DE", "asn": 3320, "org": "Example GmbH"},
         "notes": "..."}
      ]
    }

Deliberately absent: anything about the reporter. Unknown keys are refused, so a
reporter's identity cannot travel in an extra field either way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.guards import InputModel
from schemas.intake import Category

FORMAT = "hotline-exchange"
VERSION = 1

Legality = Literal[
    "illegal_international", "illegal_national", "not_illegal", "content_not_available",
    "out_of_remit",
]


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("must carry a time zone (e.g. 2026-01-05T09:00:00Z)")
    return value


class ExchangeSender(InputModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(..., min_length=1, max_length=120,
                      description="The sending hotline's name.")
    country: str = Field(..., pattern=r"^[A-Z]{2}$",
                         description="The sending hotline's ISO 3166 alpha-2 country.")


class ExchangeHosting(InputModel):
    model_config = ConfigDict(extra="forbid")

    country: str | None = Field(None, pattern=r"^[A-Z]{2}$",
                                description="Country where the sender traced the hosting.")
    asn: int | None = Field(None, ge=0, description="Autonomous system number of the host.")
    org: str | None = Field(None, max_length=255, description="Network owner (RDAP).")
    cdn: str | None = Field(None, max_length=120, description="CDN in front, if any.")


class ExchangeReport(InputModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reference: str = Field(..., min_length=1, max_length=64,
                           description="The sender's own reference for this report or case.")
    url: str = Field(..., min_length=1, max_length=65_536, description="The reported URL.")
    received_at: datetime = Field(..., description="When the sender received the report "
                                  "(ISO 8601 with zone); the NTD clock starts here.")
    category: Category | None = Field(None, description="Content category, if assessed.")
    legality: Legality | None = Field(None, description="The sender's assessment, if any.")
    hosting: ExchangeHosting | None = Field(None, description="Where the sender traced it.")
    notes: str | None = Field(None, max_length=4_000,
                              description="The sender analyst's notes (never reporter data).")
    urgent: bool = Field(False, description="A child may be in immediate danger.")

    _received = field_validator("received_at")(_aware)


class ExchangeMessage(InputModel):
    """One exchange document: one or more reports from one hotline."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["hotline-exchange"] = Field(
        "hotline-exchange", description="Always hotline-exchange."
    )
    version: Literal[1] = Field(1, description="Format version.")
    sender: ExchangeSender = Field(..., description="Who sends it.")
    sent_at: datetime = Field(..., description="When it was sent (ISO 8601 with zone).")
    reports: list[ExchangeReport] = Field(..., min_length=1, max_length=1_000,
                                          description="The reports, at most 1,000.")

    _sent = field_validator("sent_at")(_aware)


class PartnerAccepted(BaseModel):
    reference: str = Field(..., description="The sender's reference.")
    our_reference: str = Field(..., description="This hotline's tracking reference.")


class PartnerIntakeResponse(BaseModel):
    submission: str = Field(..., description="Reference of the whole submission.")
    reports: list[PartnerAccepted] = Field(..., description="One entry per report, in order.")


def json_schema() -> dict[str, object]:
    """The JSON Schema published as schemas/exchange.schema.json (kept current by a test)."""
    schema: dict[str, object] = ExchangeMessage.model_json_schema()
    schema["$id"] = "https://hotline.example/schemas/hotline-exchange-1.json"
    schema["title"] = "hotline-exchange version 1"
    return schema
