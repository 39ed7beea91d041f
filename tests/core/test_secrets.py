"""Secrets: read from a setting or a file, refused when unreadable, never logged."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from pipeline.core.errors import ConfigError
from pipeline.core.secrets import read_secret, register_settings_secrets


def test_a_secret_read_from_a_file_never_reaches_a_log_line(tmp_path, json_log):
    path = tmp_path / "smtp-password"
    path.write_text("s3cret-Pa55word-XYZ\n")
    secret = read_secret(None, str(path), key="dispatch.smtp_password")
    assert secret == "s3cret-Pa55word-XYZ"
    logging.getLogger("pipeline.smtp").error("Login failed with password %s", secret)
    assert "s3cret-Pa55word-XYZ" not in json_log.getvalue()


def test_a_value_given_directly_wins_over_the_file_and_is_redacted(tmp_path, json_log):
    path = tmp_path / "key"
    path.write_text("from-the-file-value-1\n")
    secret = read_secret(SecretStr("  direct-Value-9Kq2  "), str(path), key="privacy.key")
    assert secret == "direct-Value-9Kq2"
    logging.getLogger("pipeline.test").warning("Key is %s", secret)
    assert "direct-Value-9Kq2" not in json_log.getvalue()


def test_a_blank_value_falls_back_to_the_file(tmp_path):
    path = tmp_path / "key"
    path.write_text("file-value-Ab12cd\n")
    assert read_secret(SecretStr("   "), str(path), key="privacy.key") == "file-value-Ab12cd"


def test_nothing_given_is_none():
    assert read_secret(None, None, key="privacy.key") is None
    assert read_secret(SecretStr(""), "", key="privacy.key") is None


def test_an_unreadable_file_is_a_config_error_naming_the_setting(tmp_path):
    with pytest.raises(ConfigError) as caught:
        read_secret(None, str(tmp_path / "missing"), key="dispatch.smtp_password")
    assert caught.value.problems[0].startswith("dispatch.smtp_password_file: cannot read")


def test_an_empty_file_is_a_config_error(tmp_path):
    path = tmp_path / "empty"
    path.write_text("  \n")
    with pytest.raises(ConfigError, match="privacy.key_file: .* is empty"):
        read_secret(None, str(path), key="privacy.key")


def test_a_secret_file_inside_the_repository_is_warned_about(caplog):
    # This very file lives inside the repository (a git checkout).
    with caplog.at_level(logging.WARNING, logger="pipeline.core.secrets"):
        read_secret(None, __file__, key="privacy.key")
    assert any("inside the project folder" in r.getMessage() for r in caplog.records)


def test_a_secret_file_outside_the_repository_is_not_warned_about(tmp_path, caplog):
    path = tmp_path / "key"
    path.write_text("outside-Value-77xy\n")
    with caplog.at_level(logging.WARNING, logger="pipeline.core.secrets"):
        read_secret(None, str(path), key="privacy.key")
    assert not [r for r in caplog.records if r.name == "pipeline.core.secrets"]


def test_passwords_in_service_urls_and_secret_settings_are_redacted(settings_factory,
                                                                     json_log):
    settings = settings_factory(
        database={"url": "postgresql+psycopg://app:db-Pa55-Zx91@127.0.0.1/hotline"},
        broker={"url": "redis://:mq-Pa55-Lk33@127.0.0.1:6379/0"},
        privacy={"encryption_key": "enc-Key-Value-Pp42"},
    )
    register_settings_secrets(settings)
    logging.getLogger("pipeline.test").error("Could not log in with db-Pa55-Zx91 nor "
                                             "mq-Pa55-Lk33 to 127.0.0.1 (key enc-Key-Value-Pp42).")
    text = json_log.getvalue()
    assert "db-Pa55-Zx91" not in text and "mq-Pa55-Lk33" not in text
    assert "enc-Key-Value-Pp42" not in text
    assert "127.0.0.1" in text  # the rest of the line stays readable
