"""What crosses the operations boundary: legal holds, hand-overs to `hotline run`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.guards import InputModel


class LegalHoldIn(InputModel):
    """A supervisor holds a case's data at the police's request."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    requested_by: str = Field(..., min_length=1, max_length=200,
                              description="The police unit that asked, and its reference.")
    reason: str = Field(..., min_length=1, max_length=2_000,
                        description="Why the data must be kept (no personal data).")


class LegalHoldLiftIn(InputModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(..., min_length=1, max_length=2_000, description="Why the hold ends.")


class LegalHoldOut(BaseModel):
    id: int = Field(..., description="The hold's number.")
    case: str = Field(..., description="Reference of the held case.")
    requested_by: str = Field(..., description="The police unit that asked.")
    reason: str = Field(..., description="Why the data is kept.")
    set_by: str = Field(..., description="The supervisor who set the hold.")
    set_at: datetime = Field(..., description="When the hold was set.")
    lifted_by: str | None = Field(None, description="The supervisor who lifted it.")
    lifted_at: datetime | None = Field(None, description="When it was lifted (none: active).")
    lift_reason: str | None = Field(None, description="Why it was lifted.")


# The option of `hotline submit` that gives each field of a report: its refusals name
# the option, wherever the command runs (the command's own process or a running hotline).
SUBMIT_OPTIONS = {"url": "URL", "channel": "--channel", "claimed_category": "--category",
                  "description": "--description"}


class CommandSubmitIn(BaseModel):
    """The arguments of a `hotline submit`, for the running system to take the reports
    in as the command would (each URL validated as a report there)."""

    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(..., min_length=1, description="The URLs, one report each.")
    channel: str = Field("api", description="How the reports came in (--channel).")
    claimed_category: str | None = Field(None, description="The claimed category "
                                         "(--category).")
    description: str | None = Field(None, description="The reporter's words (--description).")
    language: str = Field("", description="The shell's LANGUAGE or LANG: the language the "
                          "refusals are said in.")


class EnqueueIn(BaseModel):
    """Ids stored by another `hotline` command, for the running system to queue."""

    model_config = ConfigDict(extra="forbid")

    stage: Literal["normalise", "dedupe", "trace", "route", "dispatch"] = Field(
        ..., description="The stage whose queue the ids go on.")
    ids: list[int] = Field(..., max_length=1_000_000,
                           description="Report ids (normalise, dedupe), case ids (trace, "
                           "route) or notice ids (dispatch), stored already.")
