"""The error tree: kinds kept apart, messages a person can read."""

from __future__ import annotations

import pytest

from pipeline.core.errors import (
    BadInput,
    ConfigError,
    FieldError,
    HotlineError,
    IllegalTransition,
    PermanentError,
    RejectedURL,
    RetryLater,
    describe_validation_errors,
)


def test_a_config_error_keeps_each_problem_and_joins_them():
    error = ConfigError(["web.port: too big", "database.url: missing"])
    assert error.problems == ["web.port: too big", "database.url: missing"]
    assert str(error) == "web.port: too big; database.url: missing"


def test_a_field_error_is_bad_input_with_its_sentence_filled_in():
    error = FieldError("url", "%(what)s is longer than %(limit)d characters",
                       what="URL", limit=2048)
    assert isinstance(error, BadInput)
    assert (error.field, error.message) == ("url", "%(what)s is longer than %(limit)d "
                                                   "characters")
    assert error.params == {"what": "URL", "limit": 2048}
    assert str(error) == "URL is longer than 2048 characters"


def test_a_field_error_without_params_keeps_a_percent_sign():
    assert str(FieldError(None, "100% of the fields are empty")) == (
        "100% of the fields are empty")


def test_an_illegal_transition_names_both_states():
    error = IllegalTransition("case", "C-7", "closed", "queued")
    assert (error.kind, error.ref, error.from_state, error.to_state) == (
        "case", "C-7", "closed", "queued")
    assert str(error) == "case C-7 cannot go from closed to queued"
    assert str(IllegalTransition("report", "9", None, "new")) == (
        "report 9 cannot go from nothing to new")


def test_retry_later_carries_its_delay():
    assert RetryLater("429 from RIPE").delay_ms == 5_000
    assert RetryLater("429 from RIPE", delay_ms=60_000).delay_ms == 60_000


@pytest.mark.parametrize("error", [RetryLater("x"), PermanentError("x"), RejectedURL("x"),
                                   ConfigError(["x"])])
def test_every_deliberate_error_is_a_hotline_error(error):
    assert isinstance(error, HotlineError)


def test_the_three_kinds_of_failure_are_kept_apart():
    assert not isinstance(RetryLater("x"), PermanentError | BadInput)
    assert not isinstance(PermanentError("x"), RetryLater | BadInput)
    assert isinstance(RejectedURL("x"), BadInput)


def test_validation_errors_become_one_line_each_without_the_body_prefix():
    errors = [{"loc": ("body", "reports", 3, "url"), "msg": "Field required"},
              {"loc": ("body",), "msg": "Invalid JSON"},
              {"msg": "Something else"}]
    assert describe_validation_errors(errors) == [
        "reports.3.url: Field required", "body: Invalid JSON", "body: Something else"]
