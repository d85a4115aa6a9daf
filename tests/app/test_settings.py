"""Settings parsing and validation, in-process (the subprocess tests cover the exit path)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings, describe_errors, get_settings

MakeSettings = Callable[..., Settings]

BASE = {"DATABASE_URL": "postgresql://u:p@db:5432/app", "REDIS_URL": "redis://cache:6379/0"}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Settings]]:
    def apply(**values: str) -> Settings:
        for name, value in {**BASE, **values}.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return get_settings()

    yield apply
    get_settings.cache_clear()


def test_comma_separated_lists_come_from_plain_strings(
    environment: MakeSettings,
) -> None:
    settings = environment(
        ALLOWED_ORIGINS=" https://a.example , https://b.example:8443,", API_KEYS="k1,k2"
    )
    assert settings.allowed_origins == ["https://a.example", "https://b.example:8443"]
    assert settings.api_keys == ["k1", "k2"]
    assert get_settings() is settings, "settings are built once per process"


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg", "postgresql+asyncpg"])
def test_database_url_becomes_a_plain_dsn_for_asyncpg(
    environment: MakeSettings, scheme: str
) -> None:
    settings = environment(DATABASE_URL=f"{scheme}://u:p%40ss@db:5432/app?sslmode=require")
    assert settings.postgres_dsn == "postgresql://u:p%40ss@db:5432/app?sslmode=require"
    assert settings.postgres_location == "db:5432/app"
    assert "p@" not in repr(environment()), "the URL's password must not appear in repr"


def test_defaults_document_the_decisions(environment: MakeSettings) -> None:
    settings = environment()
    assert settings.rate_limit_fail_open is True
    assert settings.migrate_on_startup is True
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)


def test_production_accepts_a_safe_configuration(environment: MakeSettings) -> None:
    settings = environment(
        APP_ENV="production", ALLOWED_ORIGINS="https://app.example", SECRET_KEY="s" * 32
    )
    assert settings.is_production


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"DATABASE_URL": "sqlite:///x.db"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://u:p@db"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://cache"}, "REDIS_URL"),
        ({"RATE_LIMIT": "lots"}, "RATE_LIMIT"),
        ({"ALLOWED_ORIGINS": "https://a.example/path"}, "ALLOWED_ORIGINS"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
        ({"DB_POOL_SIZE": "0"}, "DB_POOL_SIZE"),
        ({"APP_ENV": "production", "SECRET_KEY": "s" * 31}, "SECRET_KEY"),
        # uvicorn would read these as names and believe no proxy, silently.
        ({"FORWARDED_ALLOW_IPS": "10.0.0.1/8"}, "FORWARDED_ALLOW_IPS"),
        ({"FORWARDED_ALLOW_IPS": "127.0.0.1,nginx"}, "FORWARDED_ALLOW_IPS"),
        (
            {"APP_ENV": "production", "SECRET_KEY": "s" * 32, "FORWARDED_ALLOW_IPS": "*"},
            "FORWARDED_ALLOW_IPS",
        ),
    ],
)
def test_invalid_values_are_named(
    environment: MakeSettings, values: dict[str, str], variable: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        environment(**values)
    assert f"  - {variable}:" in describe_errors(caught.value)


def test_wildcards_are_fine_outside_production(environment: MakeSettings) -> None:
    assert environment(ALLOWED_ORIGINS="*").allowed_origins == ["*"]
    assert environment(FORWARDED_ALLOW_IPS="*").forwarded_allow_ips == "*"
    proxies = environment(FORWARDED_ALLOW_IPS=" 10.0.0.0/8, 2001:db8::1 ,").forwarded_allow_ips
    assert proxies == "10.0.0.0/8,2001:db8::1"


def test_env_example_documents_every_setting() -> None:
    text = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    settings = {name.upper() for name in Settings.model_fields} - {"VERSION"} | {"APP_VERSION"}
    assert documented == settings
