"""Configuration: `config.yaml`, overridden by `HOTLINE_<SECTION>__<KEY>` variables.

`HOTLINE_CONFIG` names another YAML file. Every key is described in the shipped
`config.yaml`; this module is the validating model. A bad value stops start-up with
one line per problem naming the key (see `ConfigError`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from pipeline.errors import ConfigError

DEFAULT_CONFIG_FILE = "config.yaml"


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
        60_000, ge=1_000, description="After this, a dead worker's messages are requeued."
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
    threads: int = Field(4, ge=1, le=64, description="Worker threads per worker process.")
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
        "http://127.0.0.1:8080", description="Base URL used in links sent to people."
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest request body accepted."
    )


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
        1_000, ge=1, description="Reports committed per transaction by `hotline import`."
    )


class ReconcilerSection(Section):
    interval_seconds: float = Field(
        30, gt=0, description="How often the scheduler looks for stuck reports and cases."
    )
    stage_deadline_seconds: float = Field(
        120, gt=0, description="A report or case waiting longer than this in a stage is "
        "enqueued again.",
    )
    max_ids_per_run: int = Field(50_000, ge=1, description="Most items re-enqueued per run.")


class LoggingSection(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    format: Literal["text", "json"] = Field("text", description="text or json lines.")


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
    reconciler: ReconcilerSection = ReconcilerSection()
    logging: LoggingSection = LoggingSection()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get("HOTLINE_CONFIG") or DEFAULT_CONFIG_FILE
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if Path(path).is_file():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)

    @property
    def redis_url(self) -> str | None:
        """The Redis the project's own keys live in, if any."""
        if self.redis.url:
            return self.redis.url
        return self.broker.url if self.broker.is_redis else None

    @property
    def data_path(self) -> Path:
        return Path(self.app.data_dir)


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
