"""The app's settings, read from the environment and validated once at start-up.

`get_settings()` caches one `Settings` per process; tests build their own `Settings(...)` and pass
it to `create_app`, or call `get_settings.cache_clear()`. `python -m app migrate` reads only
`DatabaseSettings`, the part about PostgreSQL and logging: it needs no Redis and no keys.

Each credential (DATABASE_URL, REDIS_URL, SECRET_KEY, API_KEYS) can instead come from the file
its `<NAME>_FILE` names, the convention of the official images, so that a platform delivering
secrets as files (Docker) keeps them out of the environment; setting both is refused.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from limits import RateLimitItem, parse
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app import __version__

MIN_PRODUCTION_SECRET_LENGTH = 32
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_DATABASE_SCHEMES = ("postgresql", "postgresql+psycopg", "postgresql+asyncpg")
_REDIS_SCHEMES = ("redis", "rediss", "unix")

CsvList = Annotated[list[str], NoDecode]


def _from_file(value: object, info: ValidationInfo, *, required: bool) -> object:
    """The setting's value, or the content of the file its `<NAME>_FILE` names (trailing line
    breaks dropped, as the images' `$(< file)` does); refuses both, and neither when required.
    The `_file` field is declared just before, so its value is in `info.data`."""
    field = info.field_name or ""
    name = field.upper()
    path = info.data.get(f"{field}_file")
    given = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not path:  # empty, as in a copy of .env.example, is unset
        if required and not given:
            raise ValueError(f"is required but not set (set {name} or {name}_FILE)")
        return value
    if given:
        raise ValueError(f"is set and so is {name}_FILE; set only one of them")
    try:
        content = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ValueError(f"{name}_FILE={path} cannot be read: {reason}") from None
    if required and not content:
        raise ValueError(f"{name}_FILE={path} is empty")
    return content


class DatabaseSettings(BaseSettings):
    """What reaching PostgreSQL and migrating it needs, and how to log.
    `.env.example` at the repository root documents each one."""

    # Production rules on later fields read app_env from `info.data`, so it must stay first.
    app_env: Literal["development", "staging", "production"] = "development"
    debug: bool = False
    version: str = Field(
        default=__version__, validation_alias=AliasChoices("APP_VERSION", "VERSION", "version")
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    database_url_file: str | None = None
    database_url: str = Field(default="", repr=False)

    migrate_on_startup: bool = True
    startup_db_wait_seconds: float = Field(default=30.0, gt=0)
    startup_db_max_attempts: int = Field(default=10, ge=1)

    db_connect_timeout_seconds: int = Field(default=3, ge=1)
    db_statement_timeout_ms: int = Field(default=5000, ge=0)

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", validate_default=True, validate_by_name=True
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("debug")
    @classmethod
    def _no_debug_in_production(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("app_env") == "production":
            raise ValueError("must be false in production")
        return value

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_url_file(cls, value: object, info: ValidationInfo) -> object:
        return _from_file(value, info, required=True)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        # Messages never echo the URL: it carries the password.
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "is not a valid URL (expected postgresql://user:pass@host/db)"
            ) from None
        if url.drivername not in _DATABASE_SCHEMES:
            raise ValueError("must start with postgresql://")
        if not url.database:
            raise ValueError("must name a database (postgresql://user:pass@host:5432/<db>)")
        return value

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def postgres_dsn(self) -> str:
        """DATABASE_URL as the plain postgresql:// DSN asyncpg takes (any driver suffix dropped)."""
        url = make_url(self.database_url).set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    @property
    def postgres_location(self) -> str:
        """Host, port and database, for messages: never the credentials."""
        url = make_url(self.database_url)
        return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"


class Settings(DatabaseSettings):
    """Every knob the app has. `.env.example` at the repository root documents each one."""

    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    forwarded_allow_ips: str = "127.0.0.1"
    max_header_bytes: int = Field(default=32_768, ge=1024)
    max_body_bytes: int = Field(default=1_048_576, ge=1)

    redis_url_file: str | None = None
    redis_url: str = Field(default="", repr=False)
    secret_key_file: str | None = None
    secret_key: SecretStr = SecretStr("")
    allowed_origins: CsvList = []
    api_keys_file: str | None = None
    api_keys: CsvList = Field(default=[], repr=False)

    # A fixed pool of connections per worker process, all opened at start-up; a request waits
    # up to db_pool_timeout_seconds for one to be free.
    db_pool_size: int = Field(default=8, ge=1)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)

    redis_socket_timeout_seconds: float = Field(default=0.5, gt=0)
    redis_connect_timeout_seconds: float = Field(default=0.5, gt=0)
    health_check_timeout_seconds: float = Field(default=1.0, gt=0)

    # One breaker per dependency (PostgreSQL, Redis), in each worker process.
    circuit_breaker_failures: int = Field(default=5, ge=1, le=1000)
    circuit_breaker_cooldown_seconds: float = Field(default=5.0, gt=0, le=300)

    # GET answers' Cache-Control max-age (0: no-cache, revalidate each time).
    http_cache_max_age_seconds: int = Field(default=0, ge=0, le=86_400)

    rate_limit_enabled: bool = True
    rate_limit: str = "100/minute"
    rate_limit_fail_open: bool = True

    shutdown_delay_seconds: float = Field(default=3.0, ge=0)
    shutdown_drain_seconds: float = Field(default=20.0, ge=0)

    # OpenTelemetry tracing, by the standard variables of the OpenTelemetry specification
    # (SDK environment variables); see tracing_enabled.
    otel_sdk_disabled: bool = False
    otel_traces_exporter: Literal["otlp", "console", "none"] | None = None
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_traces_endpoint: str | None = None
    otel_exporter_otlp_protocol: str = "http/protobuf"
    otel_exporter_otlp_traces_protocol: str | None = None
    otel_service_name: str = Field(default="safeguard-app", min_length=1)
    otel_traces_sampler: Literal[
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    ] = "parentbased_always_on"
    otel_traces_sampler_arg: float = Field(default=1.0, ge=0, le=1)

    @field_validator(
        "otel_traces_exporter",
        "otel_exporter_otlp_endpoint",
        "otel_exporter_otlp_traces_endpoint",
        "otel_exporter_otlp_traces_protocol",
        mode="before",
    )
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("otel_exporter_otlp_endpoint", "otel_exporter_otlp_traces_endpoint")
    @classmethod
    def _otlp_endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("otel_exporter_otlp_protocol", "otel_exporter_otlp_traces_protocol")
    @classmethod
    def _otlp_protocol(cls, value: str | None) -> str | None:
        if value is not None and value != "http/protobuf":
            raise ValueError(
                f"{value!r} is not supported: the app ships the OTLP exporter over HTTP only, "
                "use http/protobuf (a collector listens for it on port 4318)"
            )
        return value

    @field_validator("redis_url", "secret_key", "api_keys", mode="before")
    @classmethod
    def _credential_file(cls, value: object, info: ValidationInfo) -> object:
        value = _from_file(value, info, required=info.field_name == "redis_url")
        return cls._split_csv(value) if info.field_name == "api_keys" else value

    @field_validator("allowed_origins", "api_keys", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in _REDIS_SCHEMES:
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        length = len(value.get_secret_value())
        if info.data.get("app_env") == "production" and length < MIN_PRODUCTION_SECRET_LENGTH:
            raise ValueError(
                f"must be at least {MIN_PRODUCTION_SECRET_LENGTH} characters in production "
                f"(it has {length}); generate one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies(cls, value: str, info: ValidationInfo) -> str:
        # uvicorn takes an entry it cannot parse as a host name and trusts nothing for it, so
        # a typo would silently turn the proxy headers off; refuse it instead.
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        if "*" in entries and info.data.get("app_env") == "production":
            raise ValueError("'*' is refused in production: name the proxy's addresses")
        bad = []
        for entry in entries:
            try:
                if entry != "*":
                    ipaddress.ip_network(entry)
            except ValueError:
                bad.append(entry)
        if bad:
            raise ValueError(f"not an IP address or network: {', '.join(bad)}")
        return ",".join(entries)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if "*" in value and info.data.get("app_env") == "production":
            raise ValueError("'*' is refused in production: list the exact origins")
        bad = [origin for origin in value if origin != "*" and not _ORIGIN.match(origin)]
        if bad:
            raise ValueError(f"not an origin (scheme://host[:port], no path): {', '.join(bad)}")
        return value

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError("must look like '100/minute' or '10/second'") from None
        return value

    @property
    def rate_limit_item(self) -> RateLimitItem:
        return parse(self.rate_limit)

    @property
    def tracing_enabled(self) -> bool:
        """On when OTEL_TRACES_EXPORTER names an exporter or an OTLP endpoint is set; off by
        default, and whenever OTEL_SDK_DISABLED is true or OTEL_TRACES_EXPORTER is none."""
        if self.otel_sdk_disabled or self.otel_traces_exporter == "none":
            return False
        return self.otel_traces_exporter is not None or bool(
            self.otel_exporter_otlp_endpoint or self.otel_exporter_otlp_traces_endpoint
        )

    @property
    def otlp_traces_endpoint(self) -> str:
        """Where spans are sent, as the specification derives it from the two endpoints."""
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        base = self.otel_exporter_otlp_endpoint or "http://localhost:4318"
        return f"{base.rstrip('/')}/v1/traces"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, built from the environment on first use."""
    return Settings()  # type: ignore[call-arg]  # required fields come from the environment


@lru_cache(maxsize=1)
def get_database_settings() -> DatabaseSettings:
    """The database part of the settings alone, for the migrations."""
    return DatabaseSettings()  # type: ignore[call-arg]  # required fields come from the environment


def describe_errors(error: ValidationError) -> str:
    """One message listing every invalid setting by its environment variable name."""
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        name = str(item["loc"][0]).upper() if item["loc"] else "SETTINGS"
        if item["type"] == "missing":
            message = "is required but not set"
        elif item["type"] == "value_error":
            message = str(item["ctx"]["error"])
        else:
            message = item["msg"]
        lines.append(f"  - {name}: {message}")
    count = len(lines)
    header = f"safeguard: invalid settings ({count} problem{'s' if count != 1 else ''}):"
    return "\n".join([header, *lines])
