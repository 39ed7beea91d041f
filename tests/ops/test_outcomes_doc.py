"""docs/operators/outcomes.md explains every trace outcome, report, case and notice
state: a new one added to the code without a line there fails here."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.adapters.tracing import dns as tdns
from pipeline.adapters.tracing import tracer
from pipeline.stages import trace as stage
from pipeline.store.states import CaseState, NoticeState, ReportState

DOC = Path(__file__).resolve().parents[2] / "docs" / "operators" / "outcomes.md"


def _documented() -> set[str]:
    return set(re.findall(r"^\| `([a-z_]+)` \|", DOC.read_text(), re.M))


def test_every_trace_outcome_is_explained():
    outcomes = {tracer.TRACED, tracer.BEHIND_CDN, tracer.ONION, tracer.NO_HOST,
                tracer.NOT_PUBLIC, tracer.NETWORK_UNKNOWN, tracer.RDAP_MALFORMED,
                tracer.RDAP_UNAVAILABLE, tracer.REGISTRIES_UNREACHABLE, stage.NOT_TRACED,
                *(v for k, v in vars(tdns).items()
                  if k.isupper() and isinstance(v, str) and k not in ("OK",)
                  and v in tdns.REASONS)}
    assert "not_public_address" in outcomes
    assert outcomes - _documented() == set()


def test_every_report_case_and_notice_state_is_explained():
    states = {*(s.value for s in ReportState), *(s.value for s in CaseState),
              *(s.value for s in NoticeState)}
    assert states - _documented() == set()
