"""Settings parsing and validation, in-process (the subprocess tests cover the exit path)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import DatabaseSettings, Settings, describe_errors, get_settings

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
        ({"CIRCUIT_BREAKER_FAILURES": "0"}, "CIRCUIT_BREAKER_FAILURES"),
        ({"CIRCUIT_BREAKER_COOLDOWN_SECONDS": "0"}, "CIRCUIT_BREAKER_COOLDOWN_SECONDS"),
        ({"HTTP_CACHE_MAX_AGE_SECONDS": "-1"}, "HTTP_CACHE_MAX_AGE_SECONDS"),
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_SERVICE_NAME": ""}, "OTEL_SERVICE_NAME"),
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


# --- credentials from files (<NAME>_FILE), as the dev stack delivers them -------------------


def test_each_credential_can_come_from_the_file_its_name_file_names(
    environment: MakeSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    files = {
        "DATABASE_URL": "postgresql://u:from-file@db:5432/app\n",
        "REDIS_URL": "redis://:from-file@cache:6379/0\r\n",
        "SECRET_KEY": "k" * 40 + "\n",
        "API_KEYS": "key-one, key-two\n",
    }
    for name, content in files.items():
        (tmp_path / name).write_text(content)
        monkeypatch.delenv(name, raising=False)
    for name in files:
        monkeypatch.setenv(f"{name}_FILE", str(tmp_path / name))
    monkeypatch.setattr("tests.app.test_settings.BASE", {})

    settings = environment()

    assert settings.database_url == "postgresql://u:from-file@db:5432/app"
    assert settings.redis_url == "redis://:from-file@cache:6379/0"
    assert settings.secret_key.get_secret_value() == "k" * 40
    assert settings.api_keys == ["key-one", "key-two"]
    assert "from-file" not in repr(settings) and "key-one" not in repr(settings)
    # The migrations read only the database part, from the same file.
    assert DatabaseSettings().database_url == settings.database_url


@pytest.mark.parametrize("name", ["DATABASE_URL", "REDIS_URL", "SECRET_KEY", "API_KEYS"])
def test_a_credential_set_both_ways_is_refused_naming_both(
    environment: MakeSettings, tmp_path: Path, name: str
) -> None:
    (tmp_path / "value").write_text(BASE.get(name, "something"))
    with pytest.raises(ValidationError) as caught:
        environment(**{name: BASE.get(name, "something"), f"{name}_FILE": str(tmp_path / "value")})

    assert f"  - {name}: is set and so is {name}_FILE; set only one of them" in describe_errors(
        caught.value
    )


def test_an_unreadable_or_empty_file_is_named_with_its_path(
    environment: MakeSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "empty").write_text("\n")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setattr("tests.app.test_settings.BASE", {})

    with pytest.raises(ValidationError) as caught:
        environment(
            DATABASE_URL_FILE=str(tmp_path / "missing"), REDIS_URL_FILE=str(tmp_path / "empty")
        )

    message = describe_errors(caught.value)
    assert (
        f"  - DATABASE_URL: DATABASE_URL_FILE={tmp_path / 'missing'} cannot be read: "
        "No such file or directory"
    ) in message
    assert f"  - REDIS_URL: REDIS_URL_FILE={tmp_path / 'empty'} is empty" in message


def test_a_required_credential_set_neither_way_names_both(
    environment: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr("tests.app.test_settings.BASE", {"REDIS_URL": BASE["REDIS_URL"]})

    with pytest.raises(ValidationError) as caught:
        environment()

    assert (
        "  - DATABASE_URL: is required but not set (set DATABASE_URL or DATABASE_URL_FILE)"
        in describe_errors(caught.value)
    )


def test_an_empty_file_variable_counts_as_unset(environment: MakeSettings) -> None:
    # A copy of .env.example leaves DATABASE_URL_FILE= empty beside DATABASE_URL.
    settings = environment(DATABASE_URL_FILE="", SECRET_KEY_FILE="")
    assert settings.database_url == BASE["DATABASE_URL"]
